"""The gate's statistics: known answers, and error rates by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from pipeline.gate import stats


def test_the_worked_z_test_gives_its_known_answer():
    r = stats.z_test_mean(40, 37, 3.2, 5)
    assert round(r.statistic, 2) == 2.10 and round(r.p_value, 3) == 0.018
    with pytest.raises(ValueError):
        stats.z_test_mean(40, 37, 0.0, 5)


def test_mcnemar_one_sided_is_the_binomial_tail_of_the_discordant_pairs():
    y = np.array(["a"] * 20)
    a = np.array(["a"] * 10 + ["b"] * 10)  # champion wrong on the last 10
    b = np.array(["b"] * 2 + ["a"] * 18)  # challenger fixes 10, breaks 2
    r = stats.superiority(y, a, b, metric="accuracy", n_resamples=100, seed=0)
    # P(X >= 10), X ~ Binomial(12, 0.5) = (1 + 12 + 66) / 4096
    assert r.p_value == pytest.approx(79 / 4096)
    assert stats.superiority(y, b, a, metric="accuracy", n_resamples=100, seed=0).p_value > 0.99  # one-sided


def test_permutation_test_is_seeded_and_one_sided():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400).astype(str)
    a = np.where(rng.random(400) < 0.6, y, "0")
    b = np.where(rng.random(400) < 0.8, y, "0")
    r1 = stats.superiority(y, a, b, metric="macro_f1", n_resamples=500, seed=3)
    assert r1 == stats.superiority(y, a, b, metric="macro_f1", n_resamples=500, seed=3)
    assert r1.p_value < 0.01 and r1.statistic > 0
    assert stats.superiority(y, b, a, metric="macro_f1", n_resamples=500, seed=3).p_value > 0.9


def test_power_and_mde_are_inverse():
    se, alpha = 0.01, 0.05
    effect = stats.mde(se, alpha, 0.8)
    assert stats.power_one_sided(effect, se, alpha) == pytest.approx(0.8)
    assert stats.power_one_sided(0.0, se, alpha) == pytest.approx(alpha)


def test_ece_known_answer_and_disparate_impact():
    correct = np.tile([True, False], 50)
    conf = np.full(100, 0.95)  # accuracy 0.5 at confidence 0.95, ten bins of 10
    # each bin: 0.45² less the noise term 0.25/9, so sqrt(0.2025 − 0.02778)
    assert stats.expected_calibration_error(correct, conf) == pytest.approx(math.sqrt(0.2025 - 0.25 / 9))
    assert math.isnan(stats.expected_calibration_error(correct, np.full(4, np.nan)))
    assert stats.disparate_impact({"a": 0.9, "b": 0.72}) == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (2.178, 2.178),
        (2.797, 1.977),
    ],  # Pocock and O'Brien-Fleming, two equal looks, one-sided 0.025 (Jennison & Turnbull)
)
def test_group_sequential_boundaries_match_the_published_two_look_designs(first, second):
    spent = [float(sps.norm.sf(first)), 0.025]
    r = stats.group_sequential([0.0, 0.0], [1.0, 1.0], spent)
    assert r.boundaries[0] == pytest.approx(first, abs=1e-4)
    assert r.boundaries[1] == pytest.approx(second, abs=0.005)


def test_group_sequential_spends_exactly_alpha_under_the_null_with_uneven_windows():
    """Boundaries from uneven information (the pool, then small and large windows), checked by 200,000
    simulated null sequences: each look crosses with the alpha spent there, the whole with alpha."""
    var = [1 / 12.8, 1.0, 4.0, 1 / 2.0]  # information 12.8, then 1, 0.25, 2 (pool rows vs later windows)
    spent = stats.spending(0.05, 0.75, 4)
    assert spent == pytest.approx([0.0375, 0.0375 + 0.0125 / 3, 0.0375 + 0.025 / 3, 0.05])
    bounds = stats.group_sequential([0.0] * 4, var, spent).boundaries
    rng = np.random.default_rng(5)
    x = rng.normal(0.0, np.sqrt(var), size=(200_000, 4))
    info = np.cumsum(1 / np.array(var))
    z = np.cumsum(x / np.array(var), axis=1) / np.sqrt(info)
    crossed = np.maximum.accumulate(z >= np.array(bounds), axis=1).mean(axis=0)
    assert crossed == pytest.approx(spent, abs=0.002)
    assert stats.spending(0.05, 0.75, 1) == [0.05]


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.lists(st.floats(-0.1, 0.1), min_size=1, max_size=4), st.lists(st.floats(0.005, 0.05), min_size=4, max_size=4))
def test_group_sequential_p_value_is_below_the_alpha_spent_exactly_when_z_crosses(est, sds):
    var = [s * s for s in sds[: len(est)]]
    r = stats.group_sequential(est, var, stats.spending(0.05, 0.75, 4))
    assert 0 <= r.p_value <= 1
    if abs(r.z - r.boundary) > 1e-3:
        assert (r.p_value < r.alpha_spent) == (r.z >= r.boundary)


def test_more_consistent_evidence_crosses_a_boundary_one_window_could_not():
    spent = stats.spending(0.05, 0.75, 4)
    one = stats.group_sequential([0.03], [0.02**2], spent)
    three = stats.group_sequential([0.03] * 3, [0.02**2] * 3, spent)
    assert one.z < one.boundary and three.z > three.boundary and three.p_value < three.alpha_spent


def test_calibration_error_is_not_biased_against_a_sharper_calibrated_model():
    """Two perfectly calibrated models on 600 rows, one with confidences spread over [0.2, 0.95], one
    packed into [0.25, 0.35]: the estimate must be near 0 for both, and the same for both (measured:
    0.015 and 0.012; the plug-in, equal-width ECE gives 0.038 and 0.022)."""
    rng = np.random.default_rng(11)
    spread, packed = [], []
    for _ in range(100):
        for out, (lo, hi) in ((spread, (0.2, 0.95)), (packed, (0.25, 0.35))):
            conf = rng.uniform(lo, hi, 600)
            out.append(stats.expected_calibration_error(rng.random(600) < conf, conf))
    assert np.mean(spread) < 0.02 and np.mean(packed) < 0.02
    assert abs(np.mean(spread) - np.mean(packed)) < 0.01
