"""When to retrain: the drift policy. Pure: a check's signals and the past decisions in, a decision out.

Rules, each reported with its signal, value, threshold and whether it fired:

- ``first_model``: no champion yet. ``forced``: the caller asked. ``drift_event``: the monitor already
  decided (a retrain run started by its asset event does not decide twice).
- ``season_start``: the business calendar (the seasonal timetable) says a season starts.
- ``new_label``: a label the champion cannot predict was accepted (``validate.new_labels: accept``).
- ``performance_drop``: the champion's accuracy on the newly labelled window is below its accuracy at
  registration (or its recent windows' mean) by more than ``perf_margin`` AND the upper end of the
  window's confidence interval is below that baseline, i.e. the drop's CI excludes zero. With no
  labels, CBPE's estimate stands in (no CI: the margin alone decides).
- ``distribution_drift``: some distribution signal (text, embedding, label prior, prediction) is on
  in at least ``persist_k`` of the last ``persist_m`` checks since the reference last changed. A
  signal is on when its p-value is below ``alpha`` and its effect is at least its floor; once on, it
  stays on while p < alpha^(1-h) and effect ≥ floor·(1-h) (hysteresis ``h``), so a score hovering at
  the threshold does not flap. A *strong* signal (p < alpha² and effect ≥ ``strong_multiple`` × its
  floor, measured from the null) counts as persistent at once: a season change should not wait a
  window for its second check, while noise almost never gets that far.
- ``performance_holds`` (a veto on distribution drift alone, ``performance_veto``): when the window
  is labelled and the champion's accuracy is shown *non-inferior* to every baseline (the CI's lower
  end is above baseline − ``perf_margin``), the world moved but the model copes: distribution drift
  is reported, not retrained on. A wide CI (a small window) proves nothing, so it vetoes nothing;
  a CBPE estimate never vetoes. New labels, season starts and performance drops are not vetoed.
- ``no_headroom`` (a veto on ``performance_drop`` and ``distribution_drift``, ``min_headroom``):
  the labelled window's headroom (:mod:`pipeline.monitoring.headroom`: a probe that saw the window,
  on rows it did not see, against the champion or against a probe that did not see the window) says
  whether a retrain on this window can be expected to help. ``headroom_rule`` sets the burden of
  proof: ``not_ruled_out`` vetoes when the CI's upper end is below ``min_headroom`` (a gain is ruled
  out); ``shown`` retrains only when the CI's lower end reaches ``min_headroom`` (a gain of that size
  is shown: compute goes where the gate can be expected to promote); ``adaptive`` asks for
  ``not_ruled_out`` while the latest retrain's model is the champion, and for ``shown`` once a
  retrain's challenger was not promoted (rejected, or still standing): the drift the policy just
  answered without success fires again only with evidence that another retrain would do better.
  A promoted retrain (or a champion moved by a standing challenger's promotion) lowers the bar
  again. Either way the drift is reported, not retrained on (a harder season is not a reason to
  spend compute). No headroom measured (no labels, too few rows): no veto.

Guards: after a retrain (promoted or not, the reference moves to the window it answered), the
drift rules (performance, distribution, new label) are suppressed for ``cooldown_days``; an
optional ``budget`` caps drift-started retrains per ``budget_days``. Season starts, forced runs and
first models are never suppressed. The decision says which guard held it back and until when.

Scope: a retrain's decision says how much it trains (:mod:`pipeline.monitoring.scope`): ``full``,
unless ``incremental`` is on and drift alone started it (then an ``incremental`` update of the
champion, except after an incremental retrain that lost or with a headroom showing ``full_headroom``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Literal

from pipeline.monitoring import scope as scopes

DISTRIBUTION_SIGNALS = ("text", "embedding", "label_prior", "prediction")
ALWAYS_RULES = ("first_model", "forced", "drift_event", "season_start")


@dataclass(frozen=True)
class SignalTest:
    """One distribution signal at one check: a p-value and an effect size with its floor."""

    signal: str
    p_value: float
    effect: float
    effect_floor: float
    detail: str = ""


@dataclass(frozen=True)
class PerformanceCheck:
    """The champion's accuracy on the window (with CI) and the baselines it is held to."""

    value: float
    low: float
    high: float
    baseline: float | None  # at registration
    recent: float | None = None  # mean over the champion's recent windows
    estimated: bool = False  # CBPE: no labels, no CI
    metric: str = "accuracy"
    headroom: tuple[float, float, float] | None = None  # (gain, CI low, CI high) of a model that saw the window
    headroom_view: str = "accuracy vs the champion"  # what the headroom compares, for the reasons


@dataclass(frozen=True)
class CheckInput:
    day: date
    trigger: str = "manual"
    has_champion: bool = True
    forced: bool = False
    season_start: bool = False
    tests: tuple[SignalTest, ...] = ()
    performance: PerformanceCheck | None = None
    new_labels: tuple[str, ...] = ()
    champion_version: str | None = None  # the model in service (adaptive headroom: did the last retrain win?)


@dataclass(frozen=True)
class PastRecord:
    day: date
    kind: Literal["check", "retrain"]
    signals_on: tuple[str, ...] = ()
    retrain: bool = False
    model_version: str | None = None  # a retrain's challenger (None: unknown, or no version registered)
    scope: str | None = None  # full / incremental (pipeline.monitoring.scope); None: unknown or no retrain


@dataclass(frozen=True)
class Rules:
    alpha: float = 0.01
    hysteresis: float = 0.25
    persist_k: int = 2
    persist_m: int = 3
    strong_multiple: float | None = 3.0
    perf_margin: float = 0.03
    cooldown_days: int = 14
    budget: int | None = None
    budget_days: int = 90
    on_season_start: bool = True
    on_new_label: bool = True
    performance_veto: bool = True
    min_headroom: float | None = 0.02
    headroom_rule: Literal["not_ruled_out", "shown", "adaptive"] = "adaptive"
    incremental: bool = False  # drift-started retrains are incremental (pipeline.monitoring.scope)
    full_headroom: float | None = 0.05  # ... unless the headroom shows a gain this large (CI low)


@dataclass(frozen=True)
class Reason:
    signal: str
    value: float | None
    threshold: float | None
    rule: str
    fired: bool


@dataclass(frozen=True)
class Decision:
    retrain: bool
    rule: str  # the rule that decided, "none", or the suppressed rule
    reasons: tuple[Reason, ...]
    signals_on: tuple[str, ...]
    suppressed_by: str | None = None
    cooldown_until: date | None = None
    summary: str = ""
    fired: tuple[str, ...] = field(default=())
    held_by_headroom: str | None = None  # a drift rule fired and the headroom held it: "not shown" / "ruled out"
    scope: str | None = None  # a retrain's scope, full / incremental (pipeline.monitoring.scope); None: no retrain


def _off_alpha(alpha: float, h: float) -> float:
    return float(alpha ** (1 - h))


def signals_on(
    tests: Sequence[SignalTest], previously_on: Sequence[str], rules: Rules
) -> tuple[list[str], list[Reason]]:
    """Which distribution signals are on now (with hysteresis), and a reason line per test."""
    on, reasons = [], []
    for t in tests:
        was_on = t.signal in previously_on
        alpha = _off_alpha(rules.alpha, rules.hysteresis) if was_on else rules.alpha
        floor = t.effect_floor * (1 - rules.hysteresis) if was_on else t.effect_floor
        fired = t.p_value < alpha and t.effect >= floor
        if fired:
            on.append(t.signal)
        rule = f"p < {alpha:.3g} and effect ≥ {floor:.3g}" + (" (hysteresis: on at the last check)" if was_on else "")
        reasons.append(
            Reason(
                t.signal,
                t.p_value,
                alpha,
                rule + (f"; effect {t.effect:.3g}" if t.detail == "" else f"; {t.detail}"),
                fired,
            )
        )
    return on, reasons


def performance_rule(perf: PerformanceCheck | None, rules: Rules) -> tuple[bool, list[Reason]]:
    """Fired when the drop from a baseline exceeds the margin and the window's CI excludes no drop."""
    if perf is None:
        return False, []
    out, fired = [], False
    for name, base in (("registration", perf.baseline), ("recent", perf.recent)):
        if base is None or not math.isfinite(base):
            continue
        drop = base - perf.value
        hit = drop > rules.perf_margin and (perf.estimated or perf.high < base)
        fired |= hit
        kind = "CBPE estimate" if perf.estimated else f"CI [{perf.low:.3f}, {perf.high:.3f}]"
        out.append(
            Reason(
                "performance" if not perf.estimated else "performance_estimate",
                perf.value,
                base - rules.perf_margin,
                f"{perf.metric} {perf.value:.3f} ({kind}) vs {base:.3f} at {name}: drop {drop:+.3f} must exceed "
                f"{rules.perf_margin:.3f}" + ("" if perf.estimated else " with the CI below the baseline"),
                hit,
            )
        )
    return fired, out


def performance_holds(perf: PerformanceCheck | None, rules: Rules) -> tuple[bool, Reason | None]:
    """True when labelled accuracy is non-inferior to every baseline: CI low ≥ baseline − margin."""
    if not rules.performance_veto or perf is None or perf.estimated:
        return False, None
    bases = [b for b in (perf.baseline, perf.recent) if b is not None and math.isfinite(b)]
    if not bases:
        return False, None
    bar = max(bases) - rules.perf_margin
    holds = perf.low >= bar
    return holds, Reason(
        "performance_holds",
        perf.low,
        bar,
        f"{perf.metric} CI low {perf.low:.3f} vs baseline {max(bases):.3f} − margin {rules.perf_margin:.3f}: "
        + ("non-inferior, distribution drift alone does not retrain" if holds else "not shown non-inferior"),
        holds,
    )


def burden(rules: Rules, check: CheckInput, last_retrain: PastRecord | None) -> tuple[str, str]:
    """The headroom's burden of proof at this check, ``not_ruled_out`` or ``shown``, and why."""
    if rules.headroom_rule != "adaptive":
        return rules.headroom_rule, f"headroom_rule {rules.headroom_rule}"
    if last_retrain is None or last_retrain.model_version is None or check.champion_version is None:
        return "not_ruled_out", "adaptive: no earlier retrain's outcome to learn from"
    if last_retrain.model_version == check.champion_version:
        return "not_ruled_out", f"adaptive: the last retrain's version {last_retrain.model_version} is the champion"
    return "shown", (
        f"adaptive: the last retrain's version {last_retrain.model_version} was not promoted "
        f"(champion {check.champion_version}), so another retrain must be shown to help"
    )


def no_headroom(
    perf: PerformanceCheck | None, rules: Rules, mode: tuple[str, str] = ("not_ruled_out", "")
) -> tuple[bool, Reason | None]:
    """True when the window's headroom does not carry the burden ``mode`` sets (:func:`burden`): its CI
    lies below ``min_headroom`` (``not_ruled_out``), or does not reach it (``shown``)."""
    if rules.min_headroom is None or perf is None or perf.headroom is None:
        return False, None
    gain, low, high = perf.headroom
    if not all(math.isfinite(v) for v in perf.headroom):
        return False, None  # this view was not measured (a record from before it existed): no veto
    shown = mode[0] == "shown"
    vetoed = low < rules.min_headroom if shown else high < rules.min_headroom
    need = (
        f"CI low must reach {rules.min_headroom:+.3f} (a gain shown)"
        if shown
        else f"CI high must reach {rules.min_headroom:+.3f} (a gain not ruled out)"
    )
    return vetoed, Reason(
        "headroom",
        gain,
        rules.min_headroom,
        f"a model that saw the window, {perf.headroom_view}: {gain:+.3f} (CI [{low:+.3f}, {high:+.3f}]); {need}"
        + (f" ({mode[1]})" if mode[1] else "")
        + ": "
        + ("a retrain is not expected to help, drift alone does not retrain" if vetoed else "a gain is in reach"),
        vetoed,
    )


def _headroom_low(perf: PerformanceCheck | None) -> float | None:
    if perf is None or perf.headroom is None or not math.isfinite(perf.headroom[1]):
        return None
    return perf.headroom[1]


def since_reference(history: Sequence[PastRecord]) -> tuple[list[PastRecord], PastRecord | None]:
    """Checks after the latest retrain (oldest first), and that retrain (None when there was none)."""
    ordered = sorted(history, key=lambda r: (r.day, r.kind == "retrain"))
    last_retrain = next((r for r in reversed(ordered) if r.kind == "retrain"), None)
    checks = [r for r in ordered if r.kind == "check" and (last_retrain is None or r.day > last_retrain.day)]
    return checks, last_retrain


def decide(check: CheckInput, history: Sequence[PastRecord], rules: Rules) -> Decision:
    """The retrain decision for one check. ``history`` holds earlier records only, any order."""
    checks, last_retrain = since_reference([r for r in history if r.day <= check.day])
    previously_on = checks[-1].signals_on if checks else ()
    on, reasons = signals_on(check.tests, previously_on, rules)
    perf_hit, perf_reasons = performance_rule(check.performance, rules)
    reasons += perf_reasons

    window = [*checks[-(rules.persist_m - 1) :], None] if rules.persist_m > 1 else [None]
    persisting = sum(1 for r in window if (r is None and on) or (r is not None and r.signals_on))
    strong = [
        t.signal
        for t in check.tests
        if rules.strong_multiple is not None
        and t.p_value < rules.alpha**2
        and t.effect_floor > 0
        and t.effect >= rules.strong_multiple * t.effect_floor
    ]
    dist_signal = bool(on) and (persisting >= rules.persist_k or bool(strong))
    holds, holds_reason = performance_holds(check.performance, rules)
    mode = burden(rules, check, last_retrain)
    flat, flat_reason = no_headroom(check.performance, rules, mode)
    dist_hit = dist_signal and not holds and not flat
    perf_vetoed = perf_hit and flat
    perf_hit = perf_hit and not flat
    reasons.append(
        Reason(
            "distribution_drift",
            float(persisting),
            float(rules.persist_k),
            f"some signal on in {persisting} of the last {len(window)} checks since the reference changed "
            f"(need {rules.persist_k} of {rules.persist_m}); on now: {', '.join(on) or 'none'}"
            + (f"; strong at once: {', '.join(strong)}" if strong else "")
            + ("; vetoed: performance holds" if dist_signal and holds else "")
            + ("; vetoed: no headroom" if dist_signal and flat and not holds else ""),
            dist_hit,
        )
    )
    if holds_reason is not None:
        reasons.append(holds_reason)
    if flat_reason is not None:
        reasons.append(flat_reason)
    if perf_vetoed:
        reasons.append(Reason("performance_drop", None, None, "fired, vetoed: no headroom", False))

    candidates: list[str] = []
    if not check.has_champion:
        candidates.append("first_model")
    if check.forced:
        candidates.append("forced")
    if check.trigger == "drift":
        candidates.append("drift_event")
    if rules.on_season_start and (check.season_start or check.trigger == "schedule"):
        candidates.append("season_start")
    drift_rules = []
    if rules.on_new_label and check.new_labels:
        drift_rules.append("new_label")
        reasons.append(Reason("new_labels", float(len(check.new_labels)), 0.0, ", ".join(check.new_labels), True))
    if perf_hit:
        drift_rules.append("performance_drop")
    if dist_hit:
        drift_rules.append("distribution_drift")

    cooldown_end = None if last_retrain is None else last_retrain.day + timedelta(days=rules.cooldown_days)
    suppressed = None
    if drift_rules and not candidates:
        if last_retrain is not None and cooldown_end is not None and check.day < cooldown_end:
            suppressed = f"cooldown until {cooldown_end.isoformat()} (retrained {last_retrain.day.isoformat()})"
        elif rules.budget is not None:
            since = check.day - timedelta(days=rules.budget_days)
            spent = sum(1 for r in history if r.kind == "retrain" and since < r.day <= check.day)
            if spent >= rules.budget:
                suppressed = f"budget: {spent} retrains in the last {rules.budget_days} days (max {rules.budget})"

    fired = tuple(candidates + drift_rules)
    retrain = bool(candidates) or (bool(drift_rules) and suppressed is None)
    rule = fired[0] if fired else "none"
    scope = None
    if retrain:
        emitting = next((r for r in reversed(checks) if r.retrain), None)
        scope, why = scopes.choose(
            fired if not suppressed else tuple(candidates),
            incremental=rules.incremental,
            champion_version=check.champion_version,
            last_retrain=last_retrain,
            emitting_check=emitting,
            headroom_low=_headroom_low(check.performance),
            full_headroom=rules.full_headroom,
        )
        reasons.append(Reason("scope", None, None, why, True))
    until = check.day + timedelta(days=rules.cooldown_days) if retrain else (
        cooldown_end if cooldown_end is not None and check.day < cooldown_end else None
    )  # fmt: skip
    decision = Decision(
        retrain=retrain,
        rule=rule,
        reasons=tuple(reasons),
        signals_on=tuple(on),
        suppressed_by=suppressed,
        cooldown_until=until,
        fired=fired,
        held_by_headroom=(
            ("not shown" if mode[0] == "shown" else "ruled out")
            if flat and ((dist_signal and not holds) or perf_vetoed)
            else None
        ),
        scope=scope,
    )
    return dataclasses.replace(decision, summary=summarize(check, decision))


def summarize(check: CheckInput, d: Decision) -> str:
    """One readable line: the verdict, the rule, and every signal's number."""
    head = ("RETRAIN" if d.retrain else "no retrain") + f" ({d.rule}" + (f", {d.scope})" if d.scope else ")")
    if d.suppressed_by:
        head += f", held back by {d.suppressed_by}"
    if d.held_by_headroom and not d.retrain:
        head += f", drift held back: a gain is {d.held_by_headroom} by the headroom"
    parts = []
    for t in check.tests:
        parts.append(f"{t.signal} p={t.p_value:.3g} effect={t.effect:.3g}{'*' if t.signal in d.signals_on else ''}")
    if check.performance is not None:
        p = check.performance
        base = "–" if p.baseline is None else f"{p.baseline:.3f}"
        ci = "est." if p.estimated else f"[{p.low:.3f}, {p.high:.3f}]"
        parts.append(f"{p.metric} {p.value:.3f} {ci} vs {base}")
        if p.headroom is not None:
            parts.append(
                f"headroom ({p.headroom_view}) {p.headroom[0]:+.3f} [{p.headroom[1]:+.3f}, {p.headroom[2]:+.3f}]"
            )
    if check.new_labels:
        parts.append("new labels " + ",".join(check.new_labels))
    return f"{check.day.isoformat()}: {head}" + (": " + "; ".join(parts) if parts else "")
