"""The promotion rule. Pure: paired comparisons in, an outcome with every check's numbers out.

Outcomes: ``promote``; ``insufficient_evidence`` (the challenger keeps the ``challenger`` alias and
is scored again on the next window); ``reject``.

Error control, stated:

- **Primary metric** (macro-F1 by default): one one-sided paired test (H1: the challenger is
  better), used once, in a group-sequential design over at most ``max_looks`` looks (the first
  look, then each later window's new, disjoint rows). Alpha is spent by look index:
  ``alpha·(1 − sequential_share)`` at the first look (the fixed-sample permutation / McNemar test),
  the rest in equal parts over the later looks, whose test is the cumulative z of the
  precision-weighted estimate against a boundary solved from the information seen
  (:func:`stats.group_sequential`). The chance of ever promoting a challenger that is not better
  is ≤ alpha over all its looks.
- **Futility**: when the primary is not significant, the outcome is ``reject`` if the CI's upper
  end (at later looks: of the precision-weighted estimate over all looks) is below ``min_effect``
  (the data rule out a gain worth having), or after ``max_looks`` looks; otherwise
  ``insufficient_evidence`` (non-binding: stopping early only lowers the error). Power at
  ``min_effect`` is reported with each look.
- **Guardrails** (per-class F1, per-segment accuracy, memory-holdout accuracy, calibration error
  (debiased ℓ2 over equal-mass bins, :func:`stats.expected_calibration_error`)): each is a
  paired difference with a margin. Reported: the non-inferiority p-value (H0: diff ≤ −margin) and
  the power of that test. Gated: a guardrail blocks when the regression is both significant (its
  one-sided harm p-value, H0: diff ≥ 0, survives Holm's step-down across the gated guardrails at
  ``guardrail_alpha``, so an A/A pair is blocked with probability ≤ guardrail_alpha) and larger
  than its margin (point estimate < −margin); with ``guardrail_test: beyond_margin``, when the
  drop is significantly larger than the margin (H0: diff ≥ −margin). The harm p-value of a
  bootstrapped comparison (per-class F1, ECE) is the percentile bootstrap's, so it agrees with the
  reported CI; accuracy differences (exact paired means) use the z test. A guardrail with fewer than ``min_support`` rows is
  too small to test: reported, not gated. A class whose labels moved between the pool's older rows
  and the new window (at ``class_shift_alpha``: the challenger's F1 gap significantly larger on the
  window, or the class's share changed) is judged on the window's rows alone (:func:`_current`);
  this can only let a block go, so the false-promotion bound is untouched.
- **Fairness**: the disparate-impact ratio (min/max per-segment accuracy) must be ≥
  ``min_disparate_impact``, unless the champion is already below it and the challenger is not
  worse (promotion must not be blocked for improving a bad situation).
- **Latency**: the challenger's p95 may be at most ``max_latency_ratio`` × the champion's (it blocks
  only when the median is that much slower too, and by at least 1 ms: one stall of a loaded machine
  moves the p95 of a few dozen timings).
- **A newer challenger against the standing one** (:func:`replaces_standing`): both are scored
  on the same rows; the newer takes the ``challenger`` alias unless the standing one is
  significantly better (one-sided paired test at ``alpha``). Freshness breaks ties: the newer has
  seen the newest data. This moves no ``champion``: every candidate that stands must still pass
  the primary test against the champion itself, so the bound above holds per candidate.
- **Floors**: a first model needs ``first_model_min`` on the primary metric; a challenger that
  cannot predict a label the champion can (``lost_labels``) is rejected. ``alpha`` None: never
  promote over a champion (fails closed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from statsmodels.stats.multitest import multipletests

from pipeline.gate import stats

Outcome = Literal["promote", "insufficient_evidence", "reject"]


@dataclass(frozen=True)
class GateRules:
    metric: str = "macro_f1"
    alpha: float | None = 0.05
    sequential_share: float = 0.25
    min_effect: float = 0.02
    target_power: float = 0.8
    max_looks: int = 4
    guardrail_alpha: float = 0.05
    guardrail_test: Literal["harm", "beyond_margin"] = "harm"
    class_shift_alpha: float | None = 0.01
    margins: dict[str, float] = field(
        default_factory=lambda: {"class": 0.05, "segment": 0.03, "memory": 0.03, "ece": 0.03}
    )
    min_support: int = 20
    min_disparate_impact: float | None = 0.8
    max_latency_ratio: float | None = 1.5
    first_model_min: float | None = 0.6


@dataclass(frozen=True)
class Comparison:
    """One paired quantity: champion and challenger on the same rows; diff = challenger − champion."""

    name: str  # "primary", "class:<label>", "segment:<name>", "memory", "ece"
    champion: float
    challenger: float
    diff: float
    se: float
    ci_low: float
    ci_high: float
    n: int
    p_value: float | None = None  # the primary's superiority test
    higher_is_better: bool = True  # False for ECE: its diff is flipped by the caller so that > 0 is better
    # the paired bootstrap's diffs (per-class F1, ECE): a guardrail is then tested on them, as its CI is
    boot_diffs: tuple[float, ...] = field(default=(), repr=False, compare=False)
    shift: Shift | None = field(default=None, repr=False, compare=False)  # per-class F1: window vs older rows


@dataclass(frozen=True)
class Shift:
    """How a class moved between the pool's older rows and the new window's rows.

    ``gap``: the challenger's F1 gap on the window minus its gap on the older rows (> 0: the
    challenger is worse only on the older rows: it learned where the labels lie now), with its
    one-sided p; ``share_*``: the class's share of each period's rows, with the two-sided p of their
    difference (Fisher's exact test). ``current``: the class's comparison on the window's rows alone."""

    current: Comparison
    gap: float
    gap_p: float
    share_recent: float
    share_older: float
    share_p: float


@dataclass(frozen=True)
class Look:
    """An earlier look at the same challenger against the same champion, on rows disjoint from later ones."""

    estimate: float
    variance: float
    n: int
    window: str = ""


@dataclass(frozen=True)
class GateInput:
    first_model: bool
    challenger_primary: float
    primary: Comparison | None = None
    earlier_looks: tuple[Look, ...] = ()
    guardrails: tuple[Comparison, ...] = ()
    segment_accuracy: dict[str, dict[str, float]] = field(default_factory=dict)  # role -> segment -> accuracy
    latency_p95_ms: dict[str, float] = field(default_factory=dict)  # role -> ms
    lost_labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Check:
    name: str
    status: Literal["pass", "fail", "inconclusive", "reported"]
    detail: str
    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    threshold: float | None = None
    p_value: float | None = None
    power: float | None = None


@dataclass(frozen=True)
class GateDecision:
    outcome: Outcome
    checks: tuple[Check, ...]
    look: int
    reasons: tuple[str, ...]
    summary: str

    @property
    def promote(self) -> bool:
        return self.outcome == "promote"


def _margin(rules: GateRules, name: str) -> float:
    return rules.margins.get(name.split(":", 1)[0], 0.05)


def primary_check(inp: GateInput, rules: GateRules) -> tuple[Check, bool, bool]:
    """(check, significant, futile) for the primary metric at this look."""
    p = inp.primary
    assert p is not None and rules.alpha is not None
    look = len(inp.earlier_looks) + 1
    spend = stats.spending(rules.alpha, 1 - rules.sequential_share, rules.max_looks)
    looks = [*inp.earlier_looks, Look(p.diff, p.se * p.se, p.n)]
    gs = stats.group_sequential([x.estimate for x in looks], [x.variance for x in looks], spend)
    p_fixed = p.p_value if (look == 1 and p.p_value is not None) else None
    level = spend[0] if look == 1 else gs.alpha_spent  # a look without information spends nothing
    p_used = p_fixed if p_fixed is not None else gs.p_value
    significant = p_used < level
    if look == 1:
        power = stats.power_one_sided(rules.min_effect, p.se, level)
        mde80 = stats.mde(p.se, level, 0.8)
        test = f"one-sided p={p_used:.4g} vs {level:.4g}"
        high = p.ci_high
    else:  # everything seen so far: the precision-weighted estimate of all looks and its boundary
        power = stats.power_at_boundary(rules.min_effect, gs.se, gs.boundary)
        mde80 = stats.mde_at_boundary(gs.se, gs.boundary, 0.8)
        high = gs.estimate + 1.96 * gs.se
        test = (
            f"all looks {gs.estimate:+.4f} (CI high {high:+.4f}), z={gs.z:.2f} vs boundary {gs.boundary:.2f}: "
            f"group-sequential p={p_used:.4g} vs {level:.4g} spent"
        )
    futile = not significant and (high < rules.min_effect or look >= rules.max_looks)
    detail = (
        f"primary {rules.metric} {p.champion:.4f} -> {p.challenger:.4f} (diff {p.diff:+.4f}, CI [{p.ci_low:+.4f}, "
        f"{p.ci_high:+.4f}], {p.n} rows, look {look} of {rules.max_looks}): {test}; "
        f"power {power:.0%} at +{rules.min_effect:g} (80% power at +{mde80:.3f})"
    )
    status: Literal["pass", "fail", "inconclusive"] = "pass" if significant else ("fail" if futile else "inconclusive")
    check = Check(
        "primary",
        status,
        detail,
        value=p.diff,
        ci_low=p.ci_low,
        ci_high=p.ci_high,
        threshold=rules.min_effect,
        p_value=p_used,
        power=power,
    )
    return check, significant, futile


def _harm_p(g: Comparison, threshold: float) -> float:
    """One-sided p of H0: diff ≥ threshold. On a bootstrapped comparison, the percentile bootstrap's
    (the share of resampled diffs at or above the threshold, +1 smoothed), so the test agrees with the
    reported percentile CI: a skewed estimator (the debiased ECE of a near-uniform champion sits at
    its floor of 0) made the normal z block a +10-point challenger whose ECE CI held 0. Otherwise
    (accuracy: an exact paired mean) the z test on the standard error."""
    if g.boot_diffs:
        d = np.asarray(g.boot_diffs)
        return float((1 + np.sum(d >= threshold)) / (1 + len(d)))
    return stats.non_inferiority(-g.diff, g.se, threshold).p_value  # H0: −diff ≤ −threshold


def _current(g: Comparison, rules: GateRules) -> tuple[Comparison, str]:
    """The comparison a guardrail is judged on, and why: a class whose labels moved (at
    ``class_shift_alpha``: its F1 gap grew on the new window, or its share of the rows changed) is
    judged on the new window's rows alone, the labels as users give them now; the pool's older rows
    of it describe a class that is no longer there. Everything else on all its rows."""
    a, s = rules.class_shift_alpha, g.shift
    if a is None or s is None:
        return g, ""
    why = []
    if s.gap_p < a:
        why.append(f"its F1 gap is {s.gap:+.3f} larger on the new window than on the older rows (p={s.gap_p:.3g})")
    if s.share_p < a:
        why.append(f"its share of the rows went {s.share_older:.1%} -> {s.share_recent:.1%} (p={s.share_p:.3g})")
    if not why:
        return g, ""
    note = (
        f" [labels moved: {'; '.join(why)} < {a:g}: judged on the window's rows; all rows gave {g.diff:+.4f} on {g.n}]"
    )
    return replace(s.current, name=g.name), note


def guardrail_checks(guards: tuple[Comparison, ...], rules: GateRules) -> list[Check]:
    judged = [_current(g, rules) for g in guards]
    guards, notes = tuple(j[0] for j in judged), {j[0].name: j[1] for j in judged}
    gated = [g for g in guards if g.n >= rules.min_support]
    beyond = rules.guardrail_test == "beyond_margin"
    # harm: H0 diff ≥ 0 (then the point estimate must pass the margin); beyond_margin: H0 diff ≥ −margin
    harm = [_harm_p(g, -_margin(rules, g.name) if beyond else 0.0) for g in gated]
    if harm:
        holm = multipletests(harm, alpha=rules.guardrail_alpha, method="holm")
        significant = dict(zip([g.name for g in gated], holm[0], strict=True))
        adjusted = dict(zip([g.name for g in gated], holm[1], strict=True))
    else:
        significant, adjusted = {}, {}
    out = []
    for g in guards:
        m = _margin(rules, g.name)
        ni = stats.non_inferiority(g.diff, g.se, m)
        power = stats.power_one_sided(m, g.se, rules.guardrail_alpha)
        head = (
            f"{g.name} {g.champion:.4f} -> {g.challenger:.4f} (diff {g.diff:+.4f}, CI [{g.ci_low:+.4f}, "
            f"{g.ci_high:+.4f}], margin {m:g}, {g.n} rows){notes[g.name]}"
        )
        if g.n < rules.min_support:
            out.append(Check(g.name, "reported", head + f": too small to test (< {rules.min_support} rows), not gated",
                             g.diff, g.ci_low, g.ci_high, -m, ni.p_value, power))  # fmt: skip
            continue
        blocked = bool(significant.get(g.name)) and g.diff < -m
        note = (
            f": regression {'significantly ' if beyond else ''}beyond the margin, Holm p={adjusted[g.name]:.4g} "
            f"< {rules.guardrail_alpha}"
            if blocked
            else f": no significant regression{' beyond the margin' if beyond else ''} (Holm p={adjusted[g.name]:.4g}); "
            f"non-inferiority p={ni.p_value:.3g}, power {power:.0%}"
        )
        out.append(Check(g.name, "fail" if blocked else "pass", head + note, g.diff, g.ci_low, g.ci_high, -m,
                         float(adjusted[g.name]), power))  # fmt: skip
    return out


def fairness_check(seg: dict[str, dict[str, float]], rules: GateRules) -> Check | None:
    if rules.min_disparate_impact is None or len(seg.get("challenger", {})) < 2:
        return None
    di_b = stats.disparate_impact(seg["challenger"])
    di_a = stats.disparate_impact(seg["champion"]) if seg.get("champion") else None
    floor = rules.min_disparate_impact
    ok = di_b >= floor or (di_a is not None and di_a < floor and di_b >= di_a)
    was = "" if di_a is None else f" (champion {di_a:.3f})"
    return Check("fairness", "pass" if ok else "fail",
                 f"disparate impact of segment accuracy {di_b:.3f}{was} vs floor {floor:g}", di_b, threshold=floor)  # fmt: skip


def latency_check(lat: dict[str, float], rules: GateRules) -> Check | None:
    if rules.max_latency_ratio is None or "champion" not in lat or "challenger" not in lat:
        return None
    a, b = lat["champion"], lat["challenger"]
    ratio = b / a if a > 0 else 1.0
    # the median must be slower too: a p95 of a few dozen timings moves with one stall of the machine
    a50, b50 = lat.get("champion_p50", a), lat.get("challenger_p50", b)
    typical = b50 / a50 if a50 > 0 else 1.0
    slower = ratio > rules.max_latency_ratio and typical > rules.max_latency_ratio and b - a >= 1.0  # ≥ 1 ms apart
    return Check("latency_p95", "fail" if slower else "pass",
                 f"p95 latency {a:.2f} -> {b:.2f} ms (x{ratio:.2f}; median x{typical:.2f}; max x{rules.max_latency_ratio:g})",
                 ratio, threshold=rules.max_latency_ratio)  # fmt: skip


def replaces_standing(newer_vs_standing: Comparison, rules: GateRules) -> Check:
    """May a newer challenger take the standing one's place? ``newer_vs_standing``: champion = the
    standing challenger, challenger = the newer one, ``p_value`` = one-sided p that the *standing*
    one is better (the test run with the roles swapped). ``pass``: the newer replaces it."""
    c = newer_vs_standing
    keep = rules.alpha is None or (c.p_value is not None and c.p_value < rules.alpha)
    why = (
        f"the standing challenger is significantly better (one-sided p={c.p_value:.4g} < {rules.alpha})"
        if keep and rules.alpha is not None
        else "gate not configured: alpha"
        if keep
        else f"the standing challenger is not significantly better (one-sided p={c.p_value:.4g}); the newer is fresher"
    )
    detail = (
        f"newer vs standing {rules.metric} {c.champion:.4f} -> {c.challenger:.4f} (diff {c.diff:+.4f}, "
        f"CI [{c.ci_low:+.4f}, {c.ci_high:+.4f}], {c.n} rows): {why}"
    )
    return Check("replaces_standing", "fail" if keep else "pass", detail, c.diff, c.ci_low, c.ci_high,
                 rules.alpha, c.p_value)  # fmt: skip


def decide(inp: GateInput, rules: GateRules) -> GateDecision:
    checks: list[Check] = []
    if inp.lost_labels:
        checks.append(Check("label_coverage", "fail", f"the challenger cannot predict {sorted(inp.lost_labels)}, "
                            "which the champion can", float(len(inp.lost_labels)), threshold=0.0))  # fmt: skip
    look = len(inp.earlier_looks) + 1
    if inp.first_model:
        floor = rules.first_model_min
        ok = floor is not None and inp.challenger_primary >= floor
        detail = (
            "gate not configured: first_model_min_macro_f1" if floor is None
            else f"first model: {rules.metric} {inp.challenger_primary:.4f} {'>=' if ok else '<'} floor {floor:g}"
        )  # fmt: skip
        checks.append(Check("first_model", "pass" if ok else "fail", detail, inp.challenger_primary, threshold=floor))
    elif rules.alpha is None or inp.primary is None:
        checks.append(Check("primary", "fail", "gate not configured: alpha (no promotion over a champion without it)"))
    else:
        checks.append(primary_check(inp, rules)[0])
        checks += guardrail_checks(inp.guardrails, rules)
        for extra in (fairness_check(inp.segment_accuracy, rules), latency_check(inp.latency_p95_ms, rules)):
            if extra is not None:
                checks.append(extra)
    outcome: Outcome
    if any(c.status == "fail" for c in checks):
        outcome = "reject"
    elif any(c.status == "inconclusive" for c in checks):
        outcome = "insufficient_evidence"
    else:
        outcome = "promote"
    reasons = tuple(c.detail for c in checks if c.status in ("fail", "inconclusive"))
    head = {"promote": "PROMOTE", "insufficient_evidence": "INSUFFICIENT EVIDENCE", "reject": "REJECT"}[outcome]
    first = checks[0].detail if checks else ""
    prim = next((c for c in checks if c.name in ("primary", "first_model")), None)
    summary = f"{head} (look {look}): " + (prim.detail if prim is not None else first)
    return GateDecision(outcome, tuple(checks), look, reasons, summary)


def markdown(d: GateDecision) -> str:
    """The decision as a Markdown table: per check its value, CI, threshold, p, power and status."""

    def f(x: float | None, fmt: str = "{:+.4f}") -> str:
        return "" if x is None or (isinstance(x, float) and not math.isfinite(x)) else fmt.format(x)

    rows = ["| check | status | value | CI | threshold | p | power |", "|---|---|---|---|---|---|---|"]
    for c in d.checks:
        ci = "" if c.ci_low is None else f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}]"
        rows.append(
            f"| {c.name} | {c.status} | {f(c.value)} | {ci} | {f(c.threshold, '{:g}')} | {f(c.p_value, '{:.4g}')} "
            f"| {f(c.power, '{:.0%}')} |"
        )
    return f"**{d.outcome}** — {d.summary}\n\n" + "\n".join(rows) + "\n"
