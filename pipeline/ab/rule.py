"""The online A/B decision: champion against challenger on live feedback. Pure: no I/O.

Input: the cumulative feedback of each variant at each look (:class:`Look`), however often someone
looks. Method: the normal-mixture mSPRT and its confidence sequence on θ = accuracy(challenger) −
accuracy(champion) (:mod:`pipeline.stats.sequential`; Johari et al. 2022). The sequence is
intersected over looks (still valid: every one covers θ at once), so a decision once reached
stays reached.

Outcomes (:func:`decide`), checked in this order at each look:

- ``continue`` while either arm has fewer than ``min_per_arm`` judged predictions (the plug-in
  variance needs some rows), and while nothing below applies;
- ``stop_harm``: the whole sequence lies below 0 (the challenger is worse);
- ``promote``: the whole sequence lies above 0 (the challenger is better);
- ``stop_futility``: the sequence lies below ``min_effect`` (a gain worth having is ruled out);
- ``inconclusive``: ``max_samples`` judged predictions or ``max_days`` reached.

Error control, stated: under no difference, P(ever promote) ≤ α/2 and P(ever stop for harm) ≤ α/2
for any looking schedule (the sequence is two-sided at α), asymptotically in the arms' sizes.
``benchmarks/ab.py`` measures it with a look after every 50 feedback events.

The **guard** after a promotion (:func:`guard`) runs the same sequence with the new champion as
challenger and the ``previous`` version (a small share of traffic) as champion: ``rollback`` when
the sequence lies wholly below 0, ``keep`` when the guard period (``guard_days`` or
``max_samples``) ends without one, ``continue`` otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from pipeline.stats.sequential import Arm, difference, half_width, log_mixture_lr

Outcome = Literal["continue", "promote", "stop_harm", "stop_futility", "inconclusive"]
GuardOutcome = Literal["continue", "rollback", "keep"]


@dataclass(frozen=True)
class AbRules:
    alpha: float = 0.05
    tau: float = 0.03  # the mixing prior's scale: the test is most powerful near effects this size
    min_effect: float = 0.02  # futility: stop once a gain this large is ruled out
    min_per_arm: int = 100
    max_samples: int = 50_000  # judged predictions over both arms
    max_days: float = 28.0
    guard_days: float = 7.0


@dataclass(frozen=True)
class Look:
    """Cumulative feedback at one look: per variant, judged predictions and how many were right."""

    champion: Arm
    challenger: Arm
    elapsed_days: float = 0.0


@dataclass(frozen=True)
class State:
    """What carries from one look to the next: the intersected sequence and the running p-value."""

    looks: int = 0
    low: float = -math.inf
    high: float = math.inf
    p_value: float = 1.0


@dataclass(frozen=True)
class AbDecision:
    outcome: str
    estimate: float  # θ̂ at this look
    low: float  # the (intersected) confidence sequence
    high: float
    p_value: float  # always-valid, two-sided
    champion_accuracy: float
    challenger_accuracy: float
    n_champion: int
    n_challenger: int
    looks: int
    reason: str

    @property
    def summary(self) -> str:
        return (
            f"{self.outcome.upper()} (look {self.looks}): accuracy {self.champion_accuracy:.4f} "
            f"({self.n_champion}) -> {self.challenger_accuracy:.4f} ({self.n_challenger}), diff "
            f"{self.estimate:+.4f}, CS [{self.low:+.4f}, {self.high:+.4f}], always-valid p={self.p_value:.4g}: "
            f"{self.reason}"
        )


def looks_from(events: Sequence[tuple[float, str, bool]], every: int, *, now_days: float | None = None) -> list[Look]:
    """Looks from feedback events (days since the test began, variant, right?) in arrival order:
    one after every ``every`` events, one after the last, and one at ``now_days`` (so that
    ``max_days`` ends a test that stopped receiving feedback)."""
    out: list[Look] = []
    na = sa = nb = sb = 0
    for i, (days, variant, correct) in enumerate(events, start=1):
        if variant == "challenger":
            nb, sb = nb + 1, sb + int(correct)
        else:
            na, sa = na + 1, sa + int(correct)
        if i % every == 0 or i == len(events):
            out.append(Look(Arm(na, sa), Arm(nb, sb), days))
    if now_days is not None and (not out or now_days > out[-1].elapsed_days):
        out.append(Look(Arm(na, sa), Arm(nb, sb), now_days))
    return out


def step(state: State, look: Look, rules: AbRules) -> tuple[State, AbDecision]:
    """One look: the updated state and the decision at this look."""
    a, b = look.champion, look.challenger
    theta, var = difference(a, b)
    warm = min(a.n, b.n) >= rules.min_per_arm
    st = replace(state, looks=state.looks + 1)
    if warm:
        hw = half_width(var, rules.tau, rules.alpha)
        p = min(state.p_value, math.exp(-max(0.0, log_mixture_lr(theta, var, rules.tau))))
        st = replace(st, low=max(state.low, theta - hw), high=min(state.high, theta + hw), p_value=p)
    total = a.n + b.n

    def out(outcome: Outcome, reason: str) -> tuple[State, AbDecision]:
        return st, AbDecision(outcome, theta, st.low, st.high, st.p_value, a.rate, b.rate, a.n, b.n, st.looks, reason)

    if warm and st.high < 0:
        return out("stop_harm", "the challenger is worse (the confidence sequence is below 0)")
    if warm and st.low > 0:
        return out("promote", "the challenger is better (the confidence sequence is above 0)")
    if warm and st.high < rules.min_effect:
        return out("stop_futility", f"a gain of {rules.min_effect:+.3f} or more is ruled out")
    if total >= rules.max_samples or look.elapsed_days >= rules.max_days:
        limit = f"{total} judged predictions" if total >= rules.max_samples else f"{look.elapsed_days:g} days"
        return out("inconclusive", f"the test ran out ({limit}) without a decision")
    if not warm:
        return out("continue", f"warming up: {min(a.n, b.n)} of {rules.min_per_arm} judged predictions per arm")
    return out("continue", "not decided yet")


def trace(looks: Iterable[Look], rules: AbRules) -> list[AbDecision]:
    """The decision at every look, up to and including the first decisive one (for charts)."""
    st, out = State(), []
    for look in looks:
        st, d = step(st, look, rules)
        out.append(d)
        if d.outcome != "continue":
            break
    return out


def decide(looks: Iterable[Look], rules: AbRules) -> AbDecision:
    """The decision at the last look, given every look so far (in order). The first decisive look
    ends the test: later looks do not change its outcome."""
    steps = trace(looks, rules)
    if not steps:
        raise ValueError("decide needs at least one look")
    return steps[-1]


def guard(looks: Iterable[Look], rules: AbRules) -> tuple[GuardOutcome, AbDecision]:
    """After a promotion: ``look.challenger`` is the new champion, ``look.champion`` the previous
    version. ``rollback`` on a significant regression; ``keep`` once the guard period ends."""
    st, last = State(), None
    for look in looks:
        st, last = step(st, look, replace(rules, min_effect=-math.inf, max_days=math.inf))
        if last.outcome == "stop_harm":
            return "rollback", last
        if look.elapsed_days >= rules.guard_days or look.champion.n + look.challenger.n >= rules.max_samples:
            return "keep", last
    if last is None:
        raise ValueError("guard needs at least one look")
    return "continue", last
