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
The policy (:mod:`pipeline.monitoring.policy`) reads one view of it: drift-started retrains need
its CI to reach ``policy.min_headroom`` in the way ``policy.headroom_rule`` asks.

Two views of the same cross-fitted probes, each in accuracy and in macro-F1 (the gate's metric; a
paired bootstrap CI):

- **against the champion** (``gain``/``f1``): a model that saw the window vs the model in service.
  It also counts how the probe itself compares with the champion's head (a linear head refitted
  on other rows): a little high where the champion is undertrained, low on many rare classes,
  which a linear probe learns worse than a fine-tuned head.
- **what the window adds** (``window``/``window_f1``): the same probe against a probe fitted on the
  reference rows alone, on the same held-out window rows. Only the window's rows differ between the
  two, so the probe's own advantage cancels: positive means the new rows teach something the old
  ones did not (a learnable shift), near zero means the window is different but not new to learn.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

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
    f1: tuple[float, float, float] = (math.nan, math.nan, math.nan)  # macro-F1 gain vs the champion (gain, low, high)
    window: tuple[float, float, float] = (math.nan, math.nan, math.nan)  # accuracy: probe with − without the window
    window_f1: tuple[float, float, float] = (math.nan, math.nan, math.nan)  # the same in macro-F1

    def view(self, basis: str, metric: str) -> tuple[float, float, float]:
        """(gain, CI low, CI high) of one view: ``basis`` champion|window, ``metric`` accuracy|macro_f1."""
        views = {
            ("champion", "accuracy"): (self.gain, self.low, self.high),
            ("champion", "macro_f1"): self.f1,
            ("window", "accuracy"): self.window,
            ("window", "macro_f1"): self.window_f1,
        }
        return views[(basis, metric)]


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
    from sklearn.model_selection import KFold

    y_cur, y_ref = np.asarray(current_labels).astype(str), np.asarray(reference_labels).astype(str)
    if len(y_cur) < min_rows or len(y_ref) < min_rows or len(set(y_ref) | set(y_cur)) < 2:
        return None
    x_cur, x_ref = _scale(np.asarray(current, dtype=float)), _scale(np.asarray(reference, dtype=float))
    champion = np.asarray(champion_pred).astype(str)
    probe = np.empty(len(y_cur), dtype=object)  # the probe that saw the other folds of the window
    blind = _fit(x_ref, y_ref).predict(x_cur).astype(str)  # the probe that saw the reference only
    for train, test in KFold(n_splits=folds, shuffle=True, random_state=seed).split(x_cur):
        fitted = _fit(np.vstack([x_ref, x_cur[train]]), np.concatenate([y_ref, y_cur[train]]))
        probe[test] = fitted.predict(x_cur[test])
    probe = probe.astype(str)
    gain, se, low, high = _paired_accuracy(y_cur, champion, probe, confidence)
    w_gain, _, w_low, w_high = _paired_accuracy(y_cur, blind, probe, confidence)
    return Headroom(
        gain, se, low, high, len(y_cur), float(np.mean(champion == y_cur)), float(np.mean(probe == y_cur)),
        f1=_paired_f1(y_cur, champion, probe, confidence, seed),
        window=(w_gain, w_low, w_high),
        window_f1=_paired_f1(y_cur, blind, probe, confidence, seed),
    )  # fmt: skip


def _fit(x: np.ndarray, y: np.ndarray) -> Any:
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings on small folds: the estimate is what it is
        return LogisticRegression(max_iter=300).fit(x, y)


def _paired_accuracy(
    y: np.ndarray, a: np.ndarray, b: np.ndarray, confidence: float
) -> tuple[float, float, float, float]:
    """accuracy(b) − accuracy(a) on the same rows: (gain, se, low, high), normal CI on the paired differences."""
    d = (b == y).astype(float) - (a == y).astype(float)
    se = float(np.std(d, ddof=1) / math.sqrt(len(d)))
    z = float(sps.norm.isf((1 - confidence) / 2))
    gain = float(d.mean())
    return gain, se, gain - z * se, gain + z * se


def _paired_f1(y: np.ndarray, a: np.ndarray, b: np.ndarray, confidence: float, seed: int) -> tuple[float, float, float]:
    """macro-F1(b) − macro-F1(a) on the same rows, with its paired percentile-bootstrap CI."""
    from pipeline.stats.paired import paired_bootstrap_diff

    r = paired_bootstrap_diff(y, a, b, metric="macro_f1", n_resamples=400, seed=seed, confidence=confidence)
    return r.diff, r.ci_low, r.ci_high


def _scale(x: np.ndarray) -> np.ndarray:
    """Rows to unit length: mean-pooled embeddings differ in norm, a linear probe should not care."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)
