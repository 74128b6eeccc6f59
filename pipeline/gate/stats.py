"""The promotion gate's statistics. Pure: arrays in, numbers out; seeded wherever random.

- :func:`superiority` — the primary test, one-sided and used once: exact McNemar (a one-sided
  binomial test on the discordant pairs) for accuracy, a paired permutation test
  (``scipy.stats.permutation_test``, ``permutation_type="samples"``: each row's two predictions
  swap or not) for macro-F1. H1: the challenger is better.
- :func:`non_inferiority` — a guardrail: H0 diff ≤ −margin, z from the bootstrap standard error.
- :func:`power_one_sided` / :func:`mde` — normal-approximation power at an effect, and the effect a
  test can see at a given power, from the same standard error.
- :func:`spending` / :func:`group_sequential` — the group-sequential test over a standing
  challenger's looks (one independent estimate per window): the cumulative z statistic of the
  precision-weighted estimate, error spending by look index (Lan & DeMets 1983), each look's
  boundary from the observed information (corr(Z_i, Z_j) = sqrt(I_i / I_j); recursive numerical
  integration), and the stage-wise ordering p-value. Under H0
  the chance of crossing at any look is the alpha spent, however the windows' sizes fall.
- :func:`z_test_mean` — repeated evaluation runs against a known baseline mean and σ.
- :func:`expected_calibration_error` and :func:`disparate_impact`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize
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
    return power_at_boundary(effect, se, float(sps.norm.isf(alpha)))


def mde(se: float, alpha: float, power: float) -> float:
    """The smallest effect a one-sided level-alpha test detects with ``power``."""
    return mde_at_boundary(se, float(sps.norm.isf(alpha)), power)


def power_at_boundary(effect: float, se: float, boundary: float) -> float:
    """P(Z ≥ boundary) when the estimate's true value is ``effect`` and its SE ``se``."""
    if not math.isfinite(se) or not math.isfinite(boundary):
        return 0.0
    return float(sps.norm.sf(boundary - effect / se)) if se > 0 else 1.0  # no noise: any gain crosses


def mde_at_boundary(se: float, boundary: float, power: float) -> float:
    """The smallest effect that crosses ``boundary`` with ``power``."""
    return float((boundary + sps.norm.ppf(power)) * se)


def spending(alpha: float, first_share: float, max_looks: int) -> list[float]:
    """Cumulative alpha spent by looks 1..max_looks: ``alpha·first_share`` at the first look, the rest
    in equal parts over the later ones (linear in the look index). One look spends all of alpha."""
    if max_looks <= 1:
        return [alpha]
    rest = alpha * (1 - first_share)
    return [alpha * first_share + rest * k / (max_looks - 1) for k in range(max_looks)]


@dataclass(frozen=True)
class SequentialResult:
    z: float  # cumulative z of the precision-weighted estimate over every look
    estimate: float  # that estimate
    se: float  # its standard error, 1 / sqrt(information)
    boundary: float  # this look's efficacy boundary on z (inf: nothing left to spend)
    boundaries: tuple[float, ...]  # every look's, first to this one
    p_value: float  # stage-wise ordering: P_H0(cross earlier, or here with z at least this)
    alpha_spent: float  # cumulative alpha at this look: significant iff p_value < alpha_spent


def _simpson(lo: float, hi: float, step: float, most: int = 2001) -> tuple[np.ndarray, np.ndarray]:
    """An odd grid over [lo, hi] at about ``step`` (at most ``most`` points) and its Simpson weights."""
    m = min(most, max(3, math.ceil((hi - lo) / step) + 1))
    m += 1 - m % 2
    x = np.linspace(lo, hi, m)
    w = np.full(m, 2.0)
    w[1::2], w[0], w[-1] = 4.0, 1.0, 1.0
    return x, w * (x[1] - x[0]) / 3


def group_sequential(
    estimates: Sequence[float], variances: Sequence[float], cumulative_alpha: Sequence[float]
) -> SequentialResult:
    """One-sided group-sequential test of H1: θ > 0 after the last of independent estimates.

    Look k's statistic is Z_k = S_k / sqrt(I_k), S_k = Σ x_i/v_i, I_k = Σ 1/v_i: under H0 (θ = 0)
    S has independent N(0, I_k − I_{k−1}) increments (so corr(Z_i, Z_j) = sqrt(I_i / I_j)). The
    boundaries c_k are solved so that P(Z_1 < c_1, …, Z_{k−1} < c_{k−1}, Z_k ≥ c_k) is the alpha
    spent at look k, by the recursive numerical integration of Armitage, McPherson & Rowe (1969;
    Jennison & Turnbull 2000, ch. 19): the density of S over the paths still running is carried
    from look to look on a Simpson grid. The boundaries depend on the information seen, never on
    the estimates, so recomputing them at every look is the same test. A look with no information
    (variance 0 or infinite) adds nothing; looks past the last planned one spend nothing more.
    """
    pairs = [(x, v) for x, v in zip(estimates, variances, strict=True) if 0 < v < math.inf]
    if not pairs:
        return SequentialResult(0.0, 0.0, math.inf, math.inf, (), 1.0, 0.0)
    k = len(pairs)
    info = np.cumsum([1.0 / v for _, v in pairs])
    sd = np.sqrt(np.diff(info, prepend=0.0))  # each look's increment of S
    spent = [cumulative_alpha[min(i, len(cumulative_alpha) - 1)] for i in range(k)]
    score = float(sum(x / v for x, v in pairs))
    bounds: list[float] = []
    x, wf = np.zeros(1), np.ones(1)  # S = 0 before the first look, with probability 1
    done = 0.0  # probability of having crossed at an earlier look

    def cross(u: float, j: int) -> float:  # P(still running before look j, and S_j ≥ u)
        return float(np.sum(wf * sps.norm.sf((u - x) / sd[j])))

    p_value = 1.0
    for j in range(k):
        spend = spent[j] - done
        if spend <= 1e-12:
            u = math.inf
        else:
            top = float(x.max()) + 12 * sd[j]
            u = float(
                optimize.brentq(lambda c, j=j, a=spend: cross(c, j) - a, float(x.min()) - 12 * sd[j], top, xtol=1e-9)
            )
        bounds.append(u / math.sqrt(info[j]))
        if j == k - 1:
            p_value = done + cross(score, j)
            break
        done += 0.0 if u == math.inf else cross(u, j)
        step = min(sd[j], sd[j + 1]) / 8  # resolve both this look's and the next look's kernel
        lo, hi = -9 * math.sqrt(info[j]), min(u, 9 * math.sqrt(info[j]))
        t, wt = _simpson(lo, hi, step)
        dens = np.exp(-0.5 * ((t[:, None] - x[None, :]) / sd[j]) ** 2) @ wf / (sd[j] * math.sqrt(2 * math.pi))
        x, wf = t, wt * dens
    est = score / info[-1]
    z = score / math.sqrt(info[-1])
    return SequentialResult(z, est, 1 / math.sqrt(info[-1]), bounds[-1], tuple(bounds),
                            float(min(1.0, max(0.0, p_value))), spent[-1])  # fmt: skip


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
