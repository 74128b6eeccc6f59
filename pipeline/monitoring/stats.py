"""Size-aware statistics behind the drift signals. Pure functions: arrays in, numbers out.

Every distribution test returns a p-value, so one threshold (``alpha``) means the same false-alarm
rate at 40 rows as at 40 000; an effect floor on top keeps a huge window from alarming on a
difference too small to matter.

- :func:`auc_p_value`: a domain classifier's ROC AUC on held-out rows against the Mann-Whitney null
  (under no drift the held-out scores are independent of the domain, so AUC is a scaled U statistic).
- :func:`chi2_shift`: label-prior or prediction shift, a chi-square test of homogeneity on counts,
  with the Jensen-Shannon distance of the shares as the effect size.
- :func:`performance`: accuracy (Wilson CI, statsmodels) and macro-F1 (percentile bootstrap, scipy).
- :func:`cbpe`: confidence-based performance estimation (expected accuracy and macro-F1 from
  calibrated probabilities, as NannyML's CBPE does), and :func:`fit_temperature` to calibrate.
- :func:`mmd_test`: maximum mean discrepancy between two embedding samples, RBF kernel with the
  median-distance bandwidth, permutation p-value.

Why not the libraries the issue names (checked with ``pip install --dry-run -c constraints.txt``):
NannyML 0.13 would install, but pulls xgboost with ``nvidia-nccl-cu12`` (a CUDA wheel), lightgbm,
s3fs/gcsfs with the Google and AWS clients, and a telemetry client, ~30 packages for one formula;
alibi-detect resolves to an old release that needs ``dask<2022`` and fails to build ``creme``.
Evidently's ``MMDDriftMethod`` gives a score and a bootstrap of the reference against itself, no
p-value. So CBPE and the MMD test are small functions here, each with a known-answer test.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats
from scipy.spatial.distance import jensenshannon


def auc_p_value(auc: float, n_pos: int, n_neg: int, *, two_sided: bool = False) -> float:
    """P-value of a held-out ROC AUC under "the classes cannot be told apart" (normal approximation
    of the Mann-Whitney U: mean 1/2, variance (n_pos + n_neg + 1) / (12 n_pos n_neg))."""
    if n_pos < 1 or n_neg < 1:
        return 1.0
    sd = math.sqrt((n_pos + n_neg + 1) / (12.0 * n_pos * n_neg))
    z = (auc - 0.5) / sd
    p = float(stats.norm.sf(abs(z) if two_sided else z))
    return min(1.0, 2 * p) if two_sided else p


@dataclass(frozen=True)
class Shift:
    """A categorical shift: chi-square statistic and p-value, Jensen-Shannon distance (effect)."""

    statistic: float
    p_value: float
    js_distance: float
    categories: int


def chi2_shift(reference: Mapping[str, int], current: Mapping[str, int]) -> Shift:
    """Chi-square test of homogeneity of two count vectors over the union of their categories.

    Categories seen in neither are dropped; with fewer than two categories there is nothing to
    test (p = 1). The JS distance (natural log, 0 to 0.83) says how large the shift is.
    """
    keys = sorted(k for k in set(reference) | set(current) if reference.get(k, 0) + current.get(k, 0) > 0)
    ref = np.array([reference.get(k, 0) for k in keys], dtype=float)
    cur = np.array([current.get(k, 0) for k in keys], dtype=float)
    if len(keys) < 2 or ref.sum() == 0 or cur.sum() == 0:
        return Shift(0.0, 1.0, 0.0, len(keys))
    js = float(jensenshannon(ref / ref.sum(), cur / cur.sum()))
    res = stats.chi2_contingency(np.vstack([ref, cur]), correction=False)
    return Shift(float(res.statistic), float(res.pvalue), js if math.isfinite(js) else 0.0, len(keys))


@dataclass(frozen=True)
class Performance:
    rows: int
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    macro_f1: float
    macro_f1_low: float
    macro_f1_high: float


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[int]) -> float:
    """Macro-F1 over ``labels`` (the classes present in ``y_true``); 0 for an empty input."""
    if len(y_true) == 0:
        return 0.0
    scores = []
    for c in labels:
        tp = float(np.sum((y_pred == c) & (y_true == c)))
        fp = float(np.sum((y_pred == c) & (y_true != c)))
        fn = float(np.sum((y_pred != c) & (y_true == c)))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def performance(
    y_true: np.ndarray, y_pred: np.ndarray, *, confidence: float = 0.95, resamples: int = 400, seed: int = 0
) -> Performance:
    """Accuracy with a Wilson interval and macro-F1 with a seeded percentile bootstrap (paired rows)."""
    from statsmodels.stats.proportion import proportion_confint

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    n = len(y_true)
    if n == 0:
        raise ValueError("performance: no rows")
    hits = int(np.sum(y_true == y_pred))
    lo, hi = proportion_confint(hits, n, alpha=1 - confidence, method="wilson")
    lo, hi = min(float(lo), hits / n), max(float(hi), hits / n)  # Wilson's bound at 0 or n is off by float error
    labels = sorted(set(y_true.tolist()))
    f1 = macro_f1(y_true, y_pred, labels)
    if n < 2:
        return Performance(n, hits / n, float(lo), float(hi), f1, 0.0, 1.0)
    res = stats.bootstrap(
        (y_true, y_pred),
        lambda t, p: macro_f1(t, p, labels),
        paired=True,
        vectorized=False,
        n_resamples=resamples,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    f_lo, f_hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(f_lo) and math.isfinite(f_hi)):  # degenerate resamples (one class): no spread
        f_lo = f_hi = f1
    return Performance(n, hits / n, float(lo), float(hi), f1, min(f_lo, f1), max(f_hi, f1))


@dataclass(frozen=True)
class Estimate:
    """CBPE's expected accuracy and macro-F1 of a model on unlabelled rows."""

    rows: int
    accuracy: float
    macro_f1: float


def cbpe(probs: np.ndarray) -> Estimate:
    """Confidence-based performance estimation from calibrated class probabilities (rows × classes).

    With ``p_i`` the probability row ``i`` belongs to each class and ``k_i`` its predicted class,
    the expected confusion counts are, per class ``c``: TP_c = Σ_{k_i=c} p_ic, FP_c = Σ_{k_i=c}
    (1 - p_ic), FN_c = Σ_{k_i≠c} p_ic. Expected accuracy is the mean top probability; expected F1_c
    is 2TP/(2TP + FP + FN), averaged over classes with any expected support or prediction.
    """
    probs = np.asarray(probs, dtype=float)
    if probs.ndim != 2 or len(probs) == 0:
        raise ValueError("cbpe: probabilities must be a non-empty rows × classes array")
    pred = probs.argmax(axis=1)
    scores = []
    for c in range(probs.shape[1]):
        is_pred = pred == c
        tp = float(probs[is_pred, c].sum())
        fp = float((1 - probs[is_pred, c]).sum())
        fn = float(probs[~is_pred, c].sum())
        if tp + fp + fn > 1e-9:
            scores.append(2 * tp / (2 * tp + fp + fn) if tp > 0 else 0.0)
    return Estimate(len(probs), float(probs.max(axis=1).mean()), float(np.mean(scores)) if scores else 0.0)


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature T > 0 minimising the negative log-likelihood of softmax(logits / T) (Guo et al. 2017)."""
    logits, y = np.asarray(logits, dtype=float), np.asarray(y, dtype=int)
    if len(logits) == 0:
        return 1.0

    def nll(log_t: float) -> float:
        z = logits / math.exp(log_t)
        return float(-(z[np.arange(len(y)), y] - special.logsumexp(z, axis=1)).mean())

    res = optimize.minimize_scalar(nll, bounds=(math.log(0.05), math.log(20.0)), method="bounded")
    return float(math.exp(res.x))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return np.asarray(special.softmax(np.asarray(logits, dtype=float) / temperature, axis=1))


@dataclass(frozen=True)
class Mmd:
    mmd2: float
    p_value: float
    permutations: int


def mmd_test(x: np.ndarray, y: np.ndarray, *, permutations: int = 200, seed: int = 0) -> Mmd:
    """Unbiased MMD² between samples ``x`` and ``y`` (rows are embeddings) and its permutation p-value.

    RBF kernel, bandwidth the median pairwise distance of the pooled sample. The p-value counts the
    observed statistic among the permutations ((b + 1) / (B + 1)), so it is never 0.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        return Mmd(0.0, 1.0, 0)
    z = np.vstack([x, y])
    sq = np.sum(z * z, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * z @ z.T, 0.0)
    med = float(np.median(d2[np.triu_indices(len(z), k=1)]))
    k = np.exp(-d2 / (med if med > 0 else 1.0))
    np.fill_diagonal(k, 0.0)

    def stat(idx: np.ndarray) -> float:
        a, b = idx[:n], idx[n:]
        kxx = k[np.ix_(a, a)].sum() / (n * (n - 1))
        kyy = k[np.ix_(b, b)].sum() / (m * (m - 1))
        kxy = k[np.ix_(a, b)].mean()
        return float(kxx + kyy - 2 * kxy)

    base = np.arange(n + m)
    observed = stat(base)
    rng = np.random.default_rng(seed)
    above = sum(stat(rng.permutation(base)) >= observed for _ in range(permutations))
    return Mmd(observed, (above + 1) / (permutations + 1), permutations)
