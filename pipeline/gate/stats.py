"""The promotion gate's statistics. Pure: arrays in, numbers out; seeded wherever random.

- :func:`superiority` — the primary test, one-sided and used once: exact McNemar (a one-sided
  binomial test on the discordant pairs) for accuracy, a paired permutation test
  (``scipy.stats.permutation_test``, ``permutation_type="samples"``: each row's two predictions
  swap or not) for macro-F1. H1: the challenger is better.
- :func:`non_inferiority` — a guardrail: H0 diff ≤ −margin, z from the bootstrap standard error.
- :func:`power_one_sided` / :func:`mde` — normal-approximation power at an effect, and the effect a
  test can see at a given power, from the same standard error.
- :func:`msprt_p_value` — an always-valid p-value over a sequence of independent estimates (one per
  window): a one-sided mixture SPRT with a half-normal mixing prior (scale ``tau``). Under H0 (no
  gain, or a loss) the mixture likelihood ratio is a non-negative supermartingale, so by Ville's
  inequality P(ever ≥ 1/α) ≤ α: looking after every window does not inflate the error.
- :func:`z_test_mean` — repeated evaluation runs against a known baseline mean and σ.
- :func:`expected_calibration_error` and :func:`disparate_impact`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from pipeline.stats.paired import _encode, _vectorized

_MAX_CHUNK_CELLS = 4_000_000


@dataclass(frozen=True)
class TestResult:
    statistic: float  # the observed difference metric(b) − metric(a), or the z statistic
    p_value: float
    method: str


def superiority(
    y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, *, metric: str, n_resamples: int, seed: int
) -> TestResult:
    """One-sided paired test of H1: metric(b) > metric(a)."""
    (t, a, b), k = _encode(y_true, pred_a, pred_b)
    if metric == "accuracy":
        ca, cb = a == t, b == t
        b01, b10 = int(np.sum(~ca & cb)), int(np.sum(ca & ~cb))
        diff = (b01 - b10) / max(1, len(t))
        if b01 + b10 == 0:
            return TestResult(0.0, 1.0, "mcnemar_exact_one_sided")
        p = sps.binomtest(b01, b01 + b10, 0.5, alternative="greater").pvalue
        return TestResult(diff, float(p), "mcnemar_exact_one_sided")

    def statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        x2, y2 = np.atleast_2d(x), np.atleast_2d(y)
        tt = np.broadcast_to(t, x2.shape)
        return _vectorized(metric, tt, y2, k) - _vectorized(metric, tt, x2, k)

    res = sps.permutation_test(
        (a, b),
        statistic,
        permutation_type="samples",
        vectorized=True,
        n_resamples=n_resamples,
        alternative="greater",
        batch=max(1, _MAX_CHUNK_CELLS // max(1, len(t))),
        rng=np.random.default_rng(seed),
    )
    return TestResult(float(np.ravel(res.statistic)[0]), float(res.pvalue), "paired_permutation_one_sided")


def standard_error(diffs: np.ndarray) -> float:
    return float(np.std(diffs, ddof=1)) if len(diffs) > 1 else math.inf


def non_inferiority(diff: float, se: float, margin: float) -> TestResult:
    """H0: true diff ≤ −margin; small p = non-inferior. A zero SE decides by the point estimate."""
    if se <= 0 or not math.isfinite(se):
        return TestResult(diff, 0.0 if diff > -margin else 1.0, "non_inferiority_z")
    z = (diff + margin) / se
    return TestResult(z, float(sps.norm.sf(z)), "non_inferiority_z")


def power_one_sided(effect: float, se: float, alpha: float) -> float:
    """Power of a one-sided level-alpha z test to detect ``effect`` when the estimate's SE is ``se``."""
    if not math.isfinite(se) or se <= 0:
        return 0.0 if not math.isfinite(se) else 1.0
    return float(sps.norm.sf(sps.norm.isf(alpha) - effect / se))


def mde(se: float, alpha: float, power: float) -> float:
    """The smallest effect a one-sided level-alpha test detects with ``power``."""
    return float((sps.norm.isf(alpha) + sps.norm.ppf(power)) * se)


def msprt_log_lr(estimates: Sequence[float], variances: Sequence[float], tau: float) -> float:
    """Log mixture likelihood ratio of independent Gaussian estimates; half-normal(tau) prior on θ > 0."""
    s = sum(x / v for x, v in zip(estimates, variances, strict=True) if v > 0)
    info = sum(1.0 / v for v in variances if v > 0)
    if info == 0:
        return 0.0
    scale = 1.0 + tau * tau * info
    return float(
        math.log(2.0)
        - 0.5 * math.log(scale)
        + tau * tau * s * s / (2 * scale)
        + sps.norm.logcdf(tau * s / math.sqrt(scale))
    )


def msprt_p_value(estimates: Sequence[float], variances: Sequence[float], tau: float) -> float:
    """Always-valid p-value after the last estimate: min over looks of 1/Λ (looks = prefixes)."""
    best = 0.0
    for n in range(1, len(estimates) + 1):
        best = max(best, msprt_log_lr(estimates[:n], variances[:n], tau))
    return float(min(1.0, math.exp(-best)))


def z_test_mean(mean: float, baseline: float, sigma: float, n: int) -> TestResult:
    """One-sided z test of n runs averaging ``mean`` against a known ``baseline`` and ``sigma``.

    The worked example: 5 runs averaging 40 against 37 with σ 3.2 give z = 2.10, p = 0.018.
    """
    if n < 1 or sigma <= 0:
        raise ValueError(f"z_test_mean needs n >= 1 and sigma > 0, got n={n}, sigma={sigma}")
    z = (mean - baseline) / (sigma / math.sqrt(n))
    return TestResult(float(z), float(sps.norm.sf(z)), "z_test_one_sided")


def expected_calibration_error(correct: np.ndarray, confidence: np.ndarray, bins: int = 10) -> float:
    """Debiased ℓ2 calibration error over equal-mass confidence bins; NaN when no confidence is known.

    sqrt(Σ_b w_b·[(acc_b − conf_b)² − acc_b(1 − acc_b)/(n_b − 1)]), clipped at 0 (Kumar, Liang & Ma
    2019, "Verified uncertainty calibration"; equal-mass bins as Roelofs et al. 2022 advise). The
    plug-in, equal-width ECE is biased upward by each bin's sampling noise, more for a model whose
    confidences spread over many bins: it made a sharper, better challenger look worse calibrated
    than a champion whose confidences sit in two bins, and hid the champion's own miscalibration
    inside wide bins. Subtracting the noise term removes the bias; equal-mass bins keep every bin's
    noise the same size.
    """
    ok = np.isfinite(confidence)
    if not ok.any():
        return math.nan
    c, conf = np.asarray(correct, dtype=float)[ok], np.clip(np.asarray(confidence, dtype=float)[ok], 0, 1)
    n = len(c)
    order = np.argsort(conf, kind="stable")
    edges = np.linspace(0, n, min(bins, n) + 1).astype(int)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if hi <= lo:
            continue
        idx = order[lo:hi]
        acc, k = c[idx].mean(), hi - lo
        gap = (acc - conf[idx].mean()) ** 2
        if k > 1:
            gap -= acc * (1 - acc) / (k - 1)
        total += k / n * gap
    return float(math.sqrt(max(total, 0.0)))


def disparate_impact(rates: dict[str, float]) -> float:
    """min/max of per-segment rates (1.0 is parity; the four-fifths rule asks ≥ 0.8)."""
    vals = [v for v in rates.values() if math.isfinite(v)]
    if len(vals) < 2 or max(vals) <= 0:
        return 1.0
    return float(min(vals) / max(vals))
