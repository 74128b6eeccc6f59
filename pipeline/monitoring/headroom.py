"""Would a retrain help? The headroom of a labelled window over the champion.

Drift says the world moved; it does not say that training on the new rows would serve users
better. A harder season, noisier labels, or a shift the model already copes with all drift, and a
retrain on them is compute spent on a challenger the gate will reject. The headroom estimates the
gain directly and cheaply: on the champion's own (frozen, mean-pooled) embeddings, a linear probe
is trained on the reference rows plus part of the window, and scored against the champion on the
window rows it did not see (K-fold cross-fitting: every labelled row is scored once). The paired
per-row correctness difference (probe − champion) gives the gain in accuracy, its standard error
and a normal CI. Positive: a model that saw the window would beat the champion on it (a learnable
shift, or an undertrained champion); clearly negative: retraining on this window is not expected
to help, whatever the drift.

Pure: arrays in, numbers out (scikit-learn's logistic regression; no files, no model loading).
The policy (:mod:`pipeline.monitoring.policy`) reads it: drift-started retrains wait while the CI's
upper end is below ``policy.min_headroom``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps


@dataclass(frozen=True)
class Headroom:
    gain: float  # accuracy(probe that saw the window) − accuracy(champion), on window rows the probe did not see
    se: float
    low: float
    high: float
    n: int
    champion_accuracy: float
    probe_accuracy: float


def estimate(
    current: np.ndarray,
    current_labels: np.ndarray,
    champion_pred: np.ndarray,
    reference: np.ndarray,
    reference_labels: np.ndarray,
    *,
    folds: int = 2,
    confidence: float = 0.95,
    seed: int = 0,
    min_rows: int = 40,
) -> Headroom | None:
    """The headroom of the window (``current`` embeddings, labels and the champion's predictions)
    given the reference rows; None when a side has fewer than ``min_rows`` rows, or the training
    rows have fewer than two labels."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold

    y_cur, y_ref = np.asarray(current_labels).astype(str), np.asarray(reference_labels).astype(str)
    if len(y_cur) < min_rows or len(y_ref) < min_rows or len(set(y_ref) | set(y_cur)) < 2:
        return None
    x_cur, x_ref = _scale(np.asarray(current, dtype=float)), _scale(np.asarray(reference, dtype=float))
    champion_right = np.asarray(champion_pred).astype(str) == y_cur
    probe_right = np.zeros(len(y_cur), dtype=bool)
    for train, test in KFold(n_splits=folds, shuffle=True, random_state=seed).split(x_cur):
        x, y = np.vstack([x_ref, x_cur[train]]), np.concatenate([y_ref, y_cur[train]])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings on small folds: the estimate is what it is
            probe = LogisticRegression(max_iter=300).fit(x, y)
        probe_right[test] = probe.predict(x_cur[test]) == y_cur[test]
    d = probe_right.astype(float) - champion_right.astype(float)
    n = len(d)
    se = float(np.std(d, ddof=1) / math.sqrt(n))
    z = float(sps.norm.isf((1 - confidence) / 2))
    gain = float(d.mean())
    return Headroom(gain, se, gain - z * se, gain + z * se, n, float(champion_right.mean()), float(probe_right.mean()))


def _scale(x: np.ndarray) -> np.ndarray:
    """Rows to unit length: mean-pooled embeddings differ in norm, a linear probe should not care."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)
