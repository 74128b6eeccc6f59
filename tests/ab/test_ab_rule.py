"""The online A/B rule: each outcome, the guard, and its error rate under continuous peeking."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.ab.rule import AbRules, Look, decide, guard
from pipeline.stats.sequential import Arm

RULES = AbRules()


def looks(rate_a: float, rate_b: float, n_per_look: int, count: int, days_per_look: float = 0.0) -> list[Look]:
    """Looks whose cumulative feedback matches the given rates exactly (no noise)."""
    return [
        Look(
            Arm(k * n_per_look, round(k * n_per_look * rate_a)),
            Arm(k * n_per_look, round(k * n_per_look * rate_b)),
            k * days_per_look,
        )  # fmt: skip
        for k in range(1, count + 1)
    ]


def test_warming_up_continues():
    d = decide(looks(0.5, 0.9, 10, 5), RULES)
    assert d.outcome == "continue" and "warming up" in d.reason


def test_a_clear_gain_promotes_and_a_clear_loss_stops_for_harm():
    assert decide(looks(0.80, 0.90, 500, 10), RULES).outcome == "promote"
    assert decide(looks(0.90, 0.80, 500, 10), RULES).outcome == "stop_harm"


def test_equal_arms_stop_for_futility_once_a_gain_is_ruled_out():
    d = decide(looks(0.85, 0.85, 2000, 20), RULES)
    assert d.outcome == "stop_futility" and d.high < RULES.min_effect and d.low < 0


def test_a_small_gain_runs_out_as_inconclusive():
    d = decide(looks(0.800, 0.815, 100, 30, days_per_look=1.0), RULES)
    assert d.outcome == "inconclusive" and "28 days" in d.reason


def test_the_first_decisive_look_ends_the_test():
    first = looks(0.80, 0.90, 500, 4)
    later = [Look(Arm(10**6, 9 * 10**5), Arm(10**6, 7 * 10**5))]  # would be harm if it were looked at
    assert decide(first + later, RULES).outcome == "promote"


def test_guard_rolls_back_a_regression_and_keeps_a_sound_champion():
    outcome, d = guard(looks(0.90, 0.80, 500, 10), RULES)
    assert outcome == "rollback" and d.high < 0
    outcome, _ = guard(looks(0.85, 0.85, 300, 10, days_per_look=1.0), RULES)
    assert outcome == "keep"
    assert guard(looks(0.85, 0.85, 300, 2, days_per_look=1.0), RULES)[0] == "continue"


def _aa(trials: int, peek_every: int, events: int, share: float, seed: int) -> tuple[float, float]:
    """(sequential false-promotion rate, naive fixed-horizon one-sided z peeked the same way)."""
    rng = np.random.default_rng(seed)
    seq = naive = 0
    for _ in range(trials):
        on_b = rng.random(events) < share
        right = rng.random(events) < 0.8
        na, nb = np.cumsum(~on_b), np.cumsum(on_b)
        sa, sb = np.cumsum(right & ~on_b), np.cumsum(right & on_b)
        idx = np.arange(peek_every - 1, events, peek_every)
        seq += decide((Look(Arm(int(na[i]), int(sa[i])), Arm(int(nb[i]), int(sb[i]))) for i in idx),
                      AbRules(max_samples=events)).outcome == "promote"  # fmt: skip
        ok = (na[idx] > 30) & (nb[idx] > 30)
        pa, pb = sa[idx] / np.maximum(na[idx], 1), sb[idx] / np.maximum(nb[idx], 1)
        pool = (sa[idx] + sb[idx]) / (na[idx] + nb[idx])
        z = (pb - pa) / np.sqrt(pool * (1 - pool) * (1 / np.maximum(na[idx], 1) + 1 / np.maximum(nb[idx], 1)))
        naive += bool(np.any(ok & (z > 1.645)))
    return seq / trials, naive / trials


def test_no_difference_rarely_promotes_however_often_one_looks():
    """300 A/A tests, a look after every 50 events up to 5,000: the sequential rule promotes in at
    most α/2 + 3 standard errors of the trials; the naive z-test peeked the same way far more."""
    seq, naive = _aa(300, 50, 5000, 0.5, seed=5)
    alpha_half = RULES.alpha / 2
    assert seq <= alpha_half + 3 * np.sqrt(alpha_half * (1 - alpha_half) / 300)
    assert naive > 0.15
    assert seq < naive / 3


@pytest.mark.parametrize("share", [0.1, 0.5])
def test_a_real_gain_is_found_at_either_traffic_share(share):
    rng = np.random.default_rng(1)
    events = 40_000
    on_b = rng.random(events) < share
    right = rng.random(events) < np.where(on_b, 0.85, 0.80)
    na, nb = np.cumsum(~on_b), np.cumsum(on_b)
    sa, sb = np.cumsum(right & ~on_b), np.cumsum(right & on_b)
    d = decide((Look(Arm(int(na[i]), int(sa[i])), Arm(int(nb[i]), int(sb[i]))) for i in range(99, events, 100)),
               AbRules(max_samples=events))  # fmt: skip
    assert d.outcome == "promote" and d.low > 0


def test_looks_from_events_counts_each_arm_and_adds_a_look_now():
    from pipeline.ab.rule import looks_from

    events = [(0.1 * i, "challenger" if i % 2 else "champion", i % 3 == 0) for i in range(7)]
    ls = looks_from(events, 3, now_days=5.0)
    assert [(x.champion.n, x.challenger.n) for x in ls] == [(2, 1), (3, 3), (4, 3), (4, 3)]
    assert [x.champion.successes + x.challenger.successes for x in ls] == [1, 2, 3, 3]
    assert ls[-1].elapsed_days == 5.0 and ls[-2].elapsed_days == pytest.approx(0.6)


def test_a_guard_applies_only_while_running_and_previous_is_what_it_guards_against():
    from datetime import UTC, datetime

    from pipeline.ab.guard import from_tags, start_tags

    since = datetime(2026, 5, 1, tzinfo=UTC)
    tags = start_tags("3", since)
    g = from_tags("4", tags, previous_alias="3")
    assert g is not None and (g.champion, g.previous, g.since) == ("4", "3", since)
    assert from_tags("4", tags, previous_alias="2") is None  # previous moved on: another promotion
    assert from_tags("3", tags, previous_alias="3") is None  # rolled back: champion is previous
    assert from_tags("4", {**tags, "guard.state": "kept"}, previous_alias="3") is None
    assert from_tags("4", {**tags, "guard.since": "not a date"}, previous_alias="3") is None
    assert from_tags("4", {}, previous_alias="3") is None  # the first champion has no guard
