"""A window's drift signals, computed from frames and the champion (no files, no MLflow).

``distribution_tests`` compares a current window with one reference: text (Evidently's domain
classifier AUC, with the Mann-Whitney p-value of its held-out split) and label prior (chi-square).
``model_signals`` runs the champion on both: embedding drift (MMD permutation test on mean-pooled
embeddings), prediction drift (chi-square on predicted labels), the champion's realised
performance on the labelled window (with its headroom: would a model that saw the window beat
the champion on it?) and the CBPE estimate. Each test is a plain dict
``{"p_value", "effect", "effect_floor", ...}`` that the policy reads as a :class:`~policy.SignalTest`.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections import Counter
from typing import Any, Protocol

import numpy as np
import pandas as pd

from pipeline.config import DriftConfig
from pipeline.monitoring import headroom, stats
from pipeline.monitoring.policy import SignalTest

EVIDENTLY_SPLIT_SEED = 42  # Evidently's domain classifier splits 50/50 with random_state=42


class Prober(Protocol):
    labels: list[str]

    def probe(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]: ...


def text_auc(current: pd.Series, reference: pd.Series) -> float:
    """Evidently's ``abs_text_content_drift`` score: ROC AUC of its TF-IDF domain classifier."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from evidently.legacy.utils.data_drift_utils import calculate_text_drift_score
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        auc, _ = calculate_text_drift_score(reference.astype(str), current.astype(str), bootstrap=False)
    return float(auc)


def held_out_sizes(n_reference: int, n_current: int) -> tuple[int, int]:
    """(current, reference) rows in the domain classifier's held-out half, exactly as Evidently splits."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(n_reference + n_current)
    _, test = train_test_split(idx, test_size=0.5, random_state=EVIDENTLY_SPLIT_SEED, shuffle=True)
    n_pos = int(np.sum(test >= n_reference))
    return n_pos, len(test) - n_pos


def text_test(current: pd.Series, reference: pd.Series, floor: float, auc: float | None = None) -> dict[str, Any]:
    auc = text_auc(current, reference) if auc is None else auc
    n_pos, n_neg = held_out_sizes(len(reference), len(current))
    return {  # effect and floor are measured from the null AUC 0.5, so hysteresis scales them sensibly
        "p_value": stats.auc_p_value(auc, n_pos, n_neg),
        "effect": auc - 0.5,
        "effect_floor": floor - 0.5,
        "value": auc,
        "held_out": [n_pos, n_neg],
        "what": "domain-classifier ROC AUC (Evidently abs_text_content_drift)",
    }


def label_test(current: pd.Series, reference: pd.Series, floor: float, new_labels: set[str]) -> dict[str, Any]:
    ref = Counter(str(x) for x in reference if str(x) not in new_labels)
    cur = Counter(str(x) for x in current if str(x) not in new_labels)
    shift = stats.chi2_shift(ref, cur)
    return {
        "p_value": shift.p_value,
        "effect": shift.js_distance,
        "effect_floor": floor,
        "value": shift.js_distance,
        "chi2": shift.statistic,
        "what": "label shares: chi-square p, Jensen-Shannon distance",
    }


def distribution_tests(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    cfg: DriftConfig,
    new_labels: set[str],
    *,
    labels: pd.Series | None = None,
    auc: float | None = None,
) -> dict[str, Any]:
    """Text and label-prior tests of ``current`` against ``reference``. ``labels``: the label column to
    count (the whole window, when ``current`` is a sample); ``auc``: a score Evidently already computed."""
    return {
        "text": text_test(current["text"], reference["text"], cfg.text_drift_threshold, auc),
        "label_prior": label_test(
            current["label"] if labels is None else labels, reference["label"], cfg.label_drift_threshold, new_labels
        ),
    }


def model_signals(
    model: Prober,
    current: pd.DataFrame,
    reference: pd.DataFrame,
    cfg: DriftConfig,
    *,
    temperature: float = 1.0,
) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any]]:
    """(tests, performance, estimate) of the champion on the current window vs the reference.

    Embeddings and predictions use ``model_sample_size`` rows per side; performance and CBPE use
    every current row (already capped by ``max_current_rows``).
    """
    rng = np.random.default_rng(cfg.seed)
    k = cfg.model_sample_size
    cur_idx = np.sort(rng.choice(len(current), size=min(k, len(current)), replace=False))
    ref_idx = np.sort(rng.choice(len(reference), size=min(k, len(reference)), replace=False))
    logits, emb = model.probe(current["text"].astype(str).tolist())
    ref_logits, ref_emb = model.probe(reference["text"].iloc[ref_idx].astype(str).tolist())
    labels = list(model.labels)
    mmd = stats.mmd_test(emb[cur_idx], ref_emb, permutations=cfg.mmd_permutations, seed=cfg.seed)
    pred = np.asarray(labels, dtype=object)[logits.argmax(axis=1)]
    ref_pred = np.asarray(labels, dtype=object)[ref_logits.argmax(axis=1)]
    shift = stats.chi2_shift(Counter(ref_pred.tolist()), Counter(pred[cur_idx].tolist()))
    tests = {
        "embedding": {
            "p_value": mmd.p_value,
            "effect": mmd.mmd2,
            "effect_floor": cfg.embedding_drift_threshold,
            "value": mmd.mmd2,
            "what": f"MMD² of mean-pooled champion embeddings, {mmd.permutations} permutations",
        },
        "prediction": {
            "p_value": shift.p_value,
            "effect": shift.js_distance,
            "effect_floor": cfg.prediction_drift_threshold,
            "value": shift.js_distance,
            "what": "champion's predicted-label shares: chi-square p, Jensen-Shannon distance",
        },
    }
    probs = stats.softmax(logits, temperature)
    est = stats.cbpe(probs)
    estimate = {"accuracy": est.accuracy, "macro_f1": est.macro_f1, "rows": est.rows, "temperature": temperature}
    performance = None
    truth = current["label"].astype(str).to_numpy()
    known = np.isin(truth, labels)
    if known.any():
        index = {lab: i for i, lab in enumerate(labels)}
        y = np.array([index[t] for t in truth[known]])
        perf = stats.performance(
            y,
            logits[known].argmax(axis=1),
            confidence=cfg.confidence,
            resamples=cfg.performance_resamples,
            seed=cfg.seed,
        )
        performance = {**perf.__dict__, "unknown_label_rows": int((~known).sum())}
        performance["headroom"] = _headroom(emb, truth, pred, ref_emb, reference.iloc[ref_idx], cfg)
    return tests, performance, estimate


def _headroom(
    emb: np.ndarray, truth: np.ndarray, pred: np.ndarray, ref_emb: np.ndarray, ref_rows: pd.DataFrame, cfg: DriftConfig
) -> dict[str, Any] | None:
    """Would a model that saw this window beat the champion on it? (:mod:`pipeline.monitoring.headroom`)"""
    if "label" not in ref_rows.columns:
        return None
    labelled = ref_rows["label"].notna().to_numpy()
    h = headroom.estimate(
        emb, truth, pred, ref_emb[labelled], ref_rows["label"].to_numpy()[labelled],
        confidence=cfg.confidence, seed=cfg.seed,
    )  # fmt: skip
    return None if h is None else dataclasses.asdict(h)


def calibration_temperature(model: Prober, calibration: pd.DataFrame | None) -> float:
    """Temperature fitted on labelled rows the champion was not trained on (its evaluation split)."""
    if calibration is None or calibration.empty:
        return 1.0
    labels = list(model.labels)
    rows = calibration[calibration["label"].astype(str).isin(labels)]
    if len(rows) < 10:
        return 1.0
    logits, _ = model.probe(rows["text"].astype(str).tolist())
    index = {lab: i for i, lab in enumerate(labels)}
    return stats.fit_temperature(logits, np.array([index[str(v)] for v in rows["label"]]))


def as_tests(tests: dict[str, dict[str, Any]]) -> tuple[SignalTest, ...]:
    """The policy's view of recorded tests (any order in, signal order out)."""
    order = ("text", "embedding", "label_prior", "prediction")
    out = []
    for name in sorted(tests, key=lambda n: order.index(n) if n in order else len(order)):
        t = tests[name]
        out.append(SignalTest(name, float(t["p_value"]), float(t["effect"]), float(t["effect_floor"])))
    return tuple(out)
