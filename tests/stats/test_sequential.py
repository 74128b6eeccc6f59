"""The normal-mixture mSPRT and its confidence sequence: known answers and their inverse relation."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.stats.sequential import Arm, difference, fixed_horizon_n, half_width, log_mixture_lr


def test_log_mixture_lr_known_answer():
    # θ̂ 0.05, V 0.0004, τ 0.03: ½·ln(0.0004/0.0013) + 0.0009·0.0025 / (2·0.0004·0.0013)
    assert log_mixture_lr(0.05, 0.0004, 0.03) == pytest.approx(-0.589328 + 2.163462, abs=1e-5)
    assert log_mixture_lr(0.0, 0.0004, 0.03) < 0  # no evidence: Λ < 1
    assert log_mixture_lr(math.nan, 0.0004, 0.03) == 0.0


@given(
    theta=st.floats(-0.3, 0.3),
    var=st.floats(1e-6, 1e-2),
    tau=st.floats(0.005, 0.2),
    alpha=st.sampled_from([0.01, 0.05, 0.1]),
)
def test_the_sequence_edge_is_where_the_test_rejects(theta, var, tau, alpha):
    """θ0 on the sequence's edge gives Λ(θ0) = 1/α exactly: the sequence inverts the test."""
    hw = half_width(var, tau, alpha)
    assert log_mixture_lr(theta, var, tau, theta0=theta + hw) == pytest.approx(math.log(1 / alpha), rel=1e-6)


def test_difference_and_its_variance():
    theta, var = difference(Arm(100, 80), Arm(200, 170))
    assert theta == pytest.approx(0.05)
    pa, pb = 80.5 / 101, 170.5 / 201
    assert var == pytest.approx(pa * (1 - pa) / 100 + pb * (1 - pb) / 200)
    assert difference(Arm(50, 50), Arm(50, 50))[1] > 0  # 100% on both arms still has a variance
    assert difference(Arm(0, 0), Arm(10, 5)) == (pytest.approx(math.nan, nan_ok=True), math.inf)


def test_fixed_horizon_n_known_answer():
    # one-sided α 0.05, 80% power: (1.645 + 0.842)² · 0.8·0.2·(2 + 2) / 0.02² = 9,894 at an even split
    assert fixed_horizon_n(0.02, 0.8, 0.05, 0.8, 0.5) == pytest.approx(9894, abs=2)
