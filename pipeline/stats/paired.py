"""Paired comparisons of two classifiers scored on the same examples.

Both helpers take per-example arrays in the same order for both models, so every comparison is
paired: the McNemar test looks only at the examples where the two models disagree on correctness,
and the bootstrap resamples example indices once for both models.

Naming convention (used across the pipeline): model ``a`` is the reference (the champion), model
``b`` the candidate (the challenger); a positive difference means ``b`` is better.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from statsmodels.stats.contingency_tables import mcnemar

# Bounds the index matrix of one bootstrap chunk (rows x resamples) to about 40 MB of int64.
_MAX_CHUNK_CELLS = 5_000_000

MetricName = str
Metric = MetricName | Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class McNemarResult:
    """Discordant counts and the exact two-sided McNemar test.

    ``b01``: examples ``a`` got wrong and ``b`` got right (``b`` fixes them).
    ``b10``: examples ``a`` got right and ``b`` got wrong (``b`` breaks them).
    ``statistic`` is ``min(b01, b10)``, the binomial statistic of the exact test.
    """

    b01: int
    b10: int
    statistic: float
    p_value: float

    @property
    def b_better(self) -> bool:
        """``b`` makes fewer errors than ``a`` on the discordant examples."""
        return self.b01 > self.b10


@dataclass(frozen=True)
class BootstrapResult:
    """``diff`` = metric(b) - metric(a) on the full sample; ``[ci_low, ci_high]`` its percentile CI."""

    diff: float
    ci_low: float
    ci_high: float


def mcnemar_exact(correct_a: Sequence[bool] | np.ndarray, correct_b: Sequence[bool] | np.ndarray) -> McNemarResult:
    """Exact (binomial) two-sided McNemar test on per-example correctness of two models.

    With no discordant pair the p-value is 1: the models cannot be told apart.
    """
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"correct_a and correct_b must be 1-d and the same length, got {a.shape} and {b.shape}")
    b01 = int(np.sum(~a & b))
    b10 = int(np.sum(a & ~b))
    table = np.array([[int(np.sum(a & b)), b10], [b01, int(np.sum(~a & ~b))]])
    res = mcnemar(table, exact=True)
    return McNemarResult(b01=b01, b10=b10, statistic=float(res.statistic), p_value=float(min(res.pvalue, 1.0)))


def _encode(*arrays: Any) -> tuple[list[np.ndarray], int]:
    """Integer codes over the union of labels of all arrays, and the number of distinct labels."""
    values = [np.asarray(x).astype(str) for x in arrays]
    classes, inverse = np.unique(np.concatenate(values), return_inverse=True)
    out, start = [], 0
    for v in values:
        out.append(inverse[start : start + len(v)])
        start += len(v)
    return out, len(classes)


def _confusions(t: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    """Confusion counts per resample: ``t``/``p`` are (R, n) label codes, result is (R, k, k)."""
    r = t.shape[0]
    cell = (np.arange(r)[:, None] * (k * k) + t * k + p).ravel()
    return np.bincount(cell, minlength=r * k * k).reshape(r, k, k)


def _macro_f1_from_confusions(cm: np.ndarray) -> np.ndarray:
    """Macro-F1 per resample, averaged over the labels present in that resample's true labels."""
    tp = np.diagonal(cm, axis1=1, axis2=2).astype(float)
    support = cm.sum(axis=2)
    predicted = cm.sum(axis=1)
    denom = support + predicted  # 2tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    present = support > 0
    return (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)


def _vectorized(metric: str, t: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    if metric == "accuracy":
        return (t == p).mean(axis=1)
    if metric == "macro_f1":
        return _macro_f1_from_confusions(_confusions(t, p, k))
    raise ValueError(f"unknown metric {metric!r}; expected 'accuracy', 'macro_f1' or a callable")


def paired_bootstrap_diff(
    y_true: Sequence[Any] | np.ndarray,
    pred_a: Sequence[Any] | np.ndarray,
    pred_b: Sequence[Any] | np.ndarray,
    *,
    metric: Metric,
    n_resamples: int,
    seed: int,
    confidence: float = 0.95,
) -> BootstrapResult:
    """Paired percentile bootstrap of ``metric(y_true, pred_b) - metric(y_true, pred_a)``.

    Each resample draws example indices with replacement once and scores both models on them, so
    the CI reflects the correlation between the two models' errors. ``metric`` is ``"accuracy"`` or
    ``"macro_f1"`` (vectorized over resamples; macro over the labels present in the resample's
    ``y_true``), or any callable ``(y_true, y_pred) -> float`` (evaluated resample by resample).
    The same ``seed`` gives the same interval.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    (t, a, b), k = _encode(y_true, pred_a, pred_b)
    n = len(t)
    if n == 0 or len(a) != n or len(b) != n:
        raise ValueError(f"y_true, pred_a and pred_b must be non-empty and the same length ({n}, {len(a)}, {len(b)})")

    def score(ti: np.ndarray, pi: np.ndarray) -> np.ndarray:
        if callable(metric):
            return np.array([metric(ti[j], pi[j]) for j in range(ti.shape[0])], dtype=float)
        return _vectorized(metric, ti, pi, k)

    full = score(t[None, :], b[None, :]) - score(t[None, :], a[None, :])
    rng = np.random.default_rng(seed)
    chunk = max(1, _MAX_CHUNK_CELLS // n)
    diffs = []
    for start in range(0, n_resamples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_resamples - start), n))
        diffs.append(score(t[idx], b[idx]) - score(t[idx], a[idx]))
    d = np.concatenate(diffs)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(d, [tail, 100 - tail])
    return BootstrapResult(diff=float(full[0]), ci_low=float(low), ci_high=float(high))
