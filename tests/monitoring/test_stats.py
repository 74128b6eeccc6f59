"""Known answers and calibrated behaviour of the drift statistics (pure functions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from pipeline.monitoring import stats


def test_auc_p_value_matches_mann_whitney_normal_approximation():
    # AUC 0.6 with 50 vs 50 held-out rows: z = 0.1 / sqrt(101 / 30000) = 1.7234
    p = stats.auc_p_value(0.6, 50, 50)
    assert p == pytest.approx(sps.norm.sf(0.1 / math.sqrt(101 / 30000)), rel=1e-9)
    assert p == pytest.approx(0.0424, abs=1e-3)
    assert stats.auc_p_value(0.5, 10, 10) == pytest.approx(0.5)
    assert stats.auc_p_value(0.9, 0, 10) == 1.0


def test_auc_null_is_size_aware():
    """Under no drift, AUC from random scores gives p < 0.05 about 5% of the time at any size."""
    rng = np.random.default_rng(0)
    for n in (20, 200):
        hits = 0
        for _ in range(2000):
            y = np.r_[np.ones(n), np.zeros(n)]
            s = rng.random(2 * n)
            from sklearn.metrics import roc_auc_score

            hits += stats.auc_p_value(roc_auc_score(y, s), n, n) < 0.05
        assert 0.03 < hits / 2000 < 0.07, (n, hits)


def test_chi2_shift_known_answer_and_effect():
    s = stats.chi2_shift({"a": 50, "b": 50}, {"a": 80, "b": 20})
    res = sps.chi2_contingency(np.array([[50, 50], [80, 20]]), correction=False)
    assert s.p_value == pytest.approx(res.pvalue)
    assert s.statistic == pytest.approx(19.78, abs=0.01)
    assert s.js_distance > 0.1
    same = stats.chi2_shift({"a": 5, "b": 5}, {"a": 5, "b": 5})
    assert same.p_value == pytest.approx(1.0) and same.js_distance == pytest.approx(0.0)
    assert stats.chi2_shift({"a": 5}, {"a": 9}).p_value == 1.0  # one category: nothing to test


def test_label_test_false_alarm_rate_is_alpha_at_every_window_size():
    """The reason for chi-square over a fixed JS cut: small windows no longer false-alarm."""
    rng = np.random.default_rng(1)
    shares = np.array([0.4, 0.3, 0.2, 0.1])
    ref = dict(zip("abcd", rng.multinomial(2000, shares), strict=True))
    for n in (40, 120, 280, 1120):
        alarms = sum(
            stats.chi2_shift(ref, dict(zip("abcd", rng.multinomial(n, shares), strict=True))).p_value < 0.01
            for _ in range(1000)
        )
        assert alarms / 1000 < 0.025, (n, alarms)


def test_cbpe_known_answer():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.3, 0.7]])
    est = stats.cbpe(probs)
    assert est.accuracy == pytest.approx((0.9 + 0.6 + 0.8 + 0.7) / 4)
    # class 0: TP=1.5, FP=0.5, FN=0.5 -> F1 = 3/4; class 1: TP=1.5, FP=0.5, FN=0.5 -> 3/4
    assert est.macro_f1 == pytest.approx(0.75)


def test_cbpe_is_unbiased_when_calibrated():
    rng = np.random.default_rng(2)
    p1 = rng.uniform(0.05, 0.95, size=20000)
    probs = np.c_[1 - p1, p1]
    y = (rng.random(20000) < p1).astype(int)
    est = stats.cbpe(probs)
    realised = float(np.mean(probs.argmax(1) == y))
    assert est.accuracy == pytest.approx(realised, abs=0.01)
    assert est.macro_f1 == pytest.approx(stats.macro_f1(y, probs.argmax(1), [0, 1]), abs=0.01)


def test_fit_temperature_recovers_the_scale():
    rng = np.random.default_rng(3)
    true_logits = rng.normal(size=(4000, 3)) * 2
    y = np.array([rng.choice(3, p=p) for p in stats.softmax(true_logits)])
    t = stats.fit_temperature(true_logits * 3.0, y)  # overconfident by 3x
    assert t == pytest.approx(3.0, rel=0.15)


def test_performance_ci_contains_the_point_and_narrows_with_n():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 400)
    pred = np.where(rng.random(400) < 0.8, y, rng.integers(0, 3, 400))
    small = stats.performance(y[:80], pred[:80], resamples=200)
    big = stats.performance(y, pred, resamples=200)
    assert small.accuracy_low <= small.accuracy <= small.accuracy_high
    assert big.macro_f1_low <= big.macro_f1 <= big.macro_f1_high
    assert (big.accuracy_high - big.accuracy_low) < (small.accuracy_high - small.accuracy_low)


def test_mmd_detects_a_shift_and_not_noise():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(80, 8))
    assert stats.mmd_test(x, rng.normal(size=(80, 8)), permutations=100).p_value > 0.01
    shifted = stats.mmd_test(x, rng.normal(loc=0.8, size=(80, 8)), permutations=100)
    assert shifted.p_value < 0.02 and shifted.mmd2 > 0
