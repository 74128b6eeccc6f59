"""The gate's paired comparisons: the per-class shift between the new window and the pool's older rows."""

from __future__ import annotations

import numpy as np

from pipeline.config import load_config
from pipeline.gate import compare, rule


def _pair(rng, n, labels=("a", "b", "c")):
    """Truth of ``n`` rows, and a predictor that gets class ``on`` right with chance ``acc`` (others always)."""
    y = rng.choice(labels, n)
    wrong = {lab: [x for x in labels if x != lab] for lab in labels}

    def predict(acc, on):
        return np.array([t if (t != on or rng.random() < acc) else rng.choice(wrong[t]) for t in y], dtype=object)

    return y, predict


def test_a_challenger_worse_on_a_class_only_in_the_older_rows_shows_a_shift():
    rng = np.random.default_rng(0)
    # older rows: the champion knows class "a", the challenger does not; new rows: the other way round
    y_old, pr_old = _pair(rng, 600)
    y_new, pr_new = _pair(rng, 300)
    y = np.concatenate([y_old, y_new])
    champ = np.concatenate([pr_old(0.9, "a"), pr_new(0.4, "a")])
    chall = np.concatenate([pr_old(0.4, "a"), pr_new(0.9, "a")])
    recent = np.r_[np.zeros(600, bool), np.ones(300, bool)]
    shifts = compare.class_shift(y, champ, chall, recent, n_resamples=500, seed=1)
    a = shifts["a"]
    assert a.gap > 0.3 and a.gap_p < 0.01 and a.current.diff > 0.2 and a.current.n == int(np.sum(y_new == "a"))
    assert a.gap > 2 * shifts["b"].gap  # b moved only by the a rows predicted as b
    assert a.share_p > 0.01  # the class's share did not change
    ev = load_config().evaluate
    inp = compare.build_input(ev, y_true=y, segments=None, memory=np.zeros(900, bool), challenger=(chall, np.full(900, 0.5)),
                              champion=(champ, np.full(900, 0.5)), latency_p95_ms={}, recent=recent)  # fmt: skip
    a = next(g for g in inp.guardrails if g.name == "class:a")
    assert a.diff < -0.1 and a.shift is not None and a.shift.gap_p < 0.01
    check = next(c for c in rule.guardrail_checks(inp.guardrails, compare.rules_from(ev)) if c.name == "class:a")
    assert check.status == "pass" and "labels moved" in check.detail


def test_a_class_lost_in_both_periods_shows_no_shift_and_still_blocks():
    rng = np.random.default_rng(2)
    y, pr = _pair(rng, 900)
    champ, chall = pr(0.9, "a"), pr(0.4, "a")
    recent = np.r_[np.zeros(600, bool), np.ones(300, bool)]
    s = compare.class_shift(y, champ, chall, recent, n_resamples=500, seed=1)["a"]
    assert s.gap_p > 0.05 and abs(s.gap) < 0.15 and s.share_p > 0.05
    ev = load_config().evaluate
    inp = compare.build_input(ev, y_true=y, segments=None, memory=np.zeros(900, bool), challenger=(chall, np.full(900, 0.5)),
                              champion=(champ, np.full(900, 0.5)), latency_p95_ms={}, recent=recent)  # fmt: skip
    check = next(c for c in rule.guardrail_checks(inp.guardrails, compare.rules_from(ev)) if c.name == "class:a")
    assert check.status == "fail" and "labels moved" not in check.detail


def test_no_older_rows_means_no_shift():
    y = np.array(["a", "b"] * 10, dtype=object)
    assert compare.class_shift(y, y, y, np.ones(20, bool), n_resamples=100, seed=0) == {}


def test_a_class_whose_share_fell_is_seen_by_fishers_exact_test():
    y = np.array(["a"] * 120 + ["b"] * 380 + ["a"] * 3 + ["b"] * 130, dtype=object)
    recent = np.r_[np.zeros(500, bool), np.ones(133, bool)]
    s = compare.class_shift(y, y, y, recent, n_resamples=200, seed=0)["a"]
    assert s.share_older == 0.24 and s.share_recent == 3 / 133 and s.share_p < 1e-6 and s.current.n == 3


def test_a_class_gone_from_the_window_moved_by_its_share_and_is_not_gated():
    y = np.array(["a"] * 120 + ["b"] * 380 + ["b"] * 133, dtype=object)
    recent = np.r_[np.zeros(500, bool), np.ones(133, bool)]
    pred = np.where(recent, y, np.where(y == "a", "b", y))  # the challenger misses every old "a"
    s = compare.class_shift(y, y, pred, recent, n_resamples=200, seed=0)["a"]
    assert s.current.n == 0 and s.gap_p == 1.0 and s.share_recent == 0.0 and s.share_p < 1e-6
    ev = load_config().evaluate
    inp = compare.build_input(ev, y_true=y, segments=None, memory=np.zeros(633, bool), challenger=(pred, np.full(633, 0.5)),
                              champion=(y, np.full(633, 0.5)), latency_p95_ms={}, recent=recent)  # fmt: skip
    check = next(c for c in rule.guardrail_checks(inp.guardrails, compare.rules_from(ev)) if c.name == "class:a")
    assert check.status == "reported" and "24.0% -> 0.0%" in check.detail
