"""Paired comparisons for the gate, from two models' predictions on the same rows. Pure numpy/scipy.

One paired bootstrap (rows resampled once for both models) gives the primary metric and every
per-class F1 from the same confusion counts; accuracy differences (segments, memory holdout) use
the exact paired mean of per-row correctness differences and its standard error; ECE uses its own
paired bootstrap. CIs are 95% percentile (bootstrap) or normal (accuracy).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
from scipy import stats as sps

from pipeline.config import EvaluateConfig
from pipeline.gate import stats
from pipeline.gate.rule import Comparison, GateInput, GateRules, Look, Shift
from pipeline.stats.paired import _confusions, _encode

_CELLS = 4_000_000
Z95 = float(sps.norm.isf(0.025))


def _f1_matrix(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(per-class F1 (R, k), macro-F1 over classes present in the truth (R,)) from confusions (R, k, k)."""
    tp = np.diagonal(cm, axis1=1, axis2=2).astype(float)
    support, predicted = cm.sum(axis=2), cm.sum(axis=1)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    present = support > 0
    return f1, (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)


def _comparison(
    name: str, a: float, b: float, diffs: np.ndarray, n: int, p: float | None = None, keep: bool = False
) -> Comparison:
    """``keep``: carry the bootstrap diffs (a guardrail is tested on them)."""
    low, high = np.percentile(diffs, [2.5, 97.5]) if len(diffs) else (math.nan, math.nan)
    boot = tuple(float(x) for x in diffs) if keep else ()
    return Comparison(
        name, float(a), float(b), float(b - a), stats.standard_error(diffs), float(low), float(high), n, p,
        boot_diffs=boot,
    )  # fmt: skip


def primary_and_classes(
    y_true: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    *,
    metric: str,
    n_resamples: int,
    seed: int,
    permutations: int | None,
) -> tuple[Comparison, list[Comparison]]:
    """The primary comparison (with its one-sided superiority p-value, b better than a; none when
    ``permutations`` is None) and one per class in the truth."""
    (t, a, b), k = _encode(y_true, pred_a, pred_b)
    classes = np.unique(np.asarray(y_true).astype(str))
    all_labels = np.unique(np.concatenate([np.asarray(x).astype(str) for x in (y_true, pred_a, pred_b)]))
    n = len(t)

    def scores(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        fa, ma = _f1_matrix(_confusions(t[idx], a[idx], k))
        fb, mb = _f1_matrix(_confusions(t[idx], b[idx], k))
        if metric == "accuracy":
            ma, mb = (a[idx] == t[idx]).mean(axis=1), (b[idx] == t[idx]).mean(axis=1)
        return fa, ma, fb, mb

    fa0, ma0, fb0, mb0 = scores(np.arange(n)[None])
    rng = np.random.default_rng(seed)
    chunk, d_main, d_cls = max(1, _CELLS // max(1, n * 4)), [], []
    for start in range(0, n_resamples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_resamples - start), n))
        fa, ma, fb, mb = scores(idx)
        d_main.append(mb - ma)
        d_cls.append(fb - fa)
    dm, dc = np.concatenate(d_main), np.concatenate(d_cls)
    p = (
        None
        if permutations is None
        else stats.superiority(y_true, pred_a, pred_b, metric=metric, n_resamples=permutations, seed=seed).p_value
    )
    primary = _comparison("primary", ma0[0], mb0[0], dm, n, p)
    per_class = []
    for j, label in enumerate(all_labels):
        if label in classes:
            support = int(np.sum(np.asarray(y_true).astype(str) == label))
            per_class.append(_comparison(f"class:{label}", fa0[0, j], fb0[0, j], dc[:, j], support, keep=True))
    return primary, per_class


def class_shift(
    y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, recent: np.ndarray, *, n_resamples: int, seed: int
) -> dict[str, Shift]:
    """Per class present in the older rows (the pool): how it moved between them and the recent rows
    (the new window) (:class:`rule.Shift`; a class gone from the window moved by its share alone).

    The gap is the model × period interaction of the class's F1 difference: (b − a on recent rows) −
    (b − a on older rows). A challenger trained on the new window that is worse on a class only on
    the older rows has learned where the class's labels now lie: the gap is positive. A challenger
    that lost the class is worse in both periods: no gap. Rows are resampled within each period
    (independent bootstraps); p = the share of resampled gaps ≤ 0, +1 smoothed (H0: gap ≤ 0). The
    share test is Fisher's exact test on the class's counts in the two periods (scipy)."""
    (t, a, b), k = _encode(y_true, pred_a, pred_b)
    labels = np.unique(np.concatenate([np.asarray(x).astype(str) for x in (y_true, pred_a, pred_b)]))
    recent = np.asarray(recent, dtype=bool)
    parts = {name: np.flatnonzero(m) for name, m in (("recent", recent), ("older", ~recent))}
    if any(len(ix) == 0 for ix in parts.values()):
        return {}
    rng = np.random.default_rng(seed)
    gaps: dict[str, np.ndarray] = {}
    point: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, ix in parts.items():
        draws = ix[rng.integers(0, len(ix), size=(n_resamples, len(ix)))]
        fa, _ = _f1_matrix(_confusions(t[draws], a[draws], k))
        fb, _ = _f1_matrix(_confusions(t[draws], b[draws], k))
        gaps[name] = fb - fa
        pa, _ = _f1_matrix(_confusions(t[ix][None], a[ix][None], k))
        pb, _ = _f1_matrix(_confusions(t[ix][None], b[ix][None], k))
        point[name] = (pa[0], pb[0])
    n_recent, n_older = len(parts["recent"]), len(parts["older"])
    out = {}
    for j, label in enumerate(labels):
        c_recent, c_older = int(np.sum(t[parts["recent"]] == j)), int(np.sum(t[parts["older"]] == j))
        if c_older == 0:  # a class new in the window: its rows are all recent already
            continue
        gap = gaps["recent"][:, j] - gaps["older"][:, j]
        (ra, rb), (oa, ob) = point["recent"], point["older"]
        share_p = sps.fisher_exact([[c_recent, n_recent - c_recent], [c_older, n_older - c_older]]).pvalue
        current = _comparison(f"class:{label}", ra[j], rb[j], gaps["recent"][:, j], c_recent, keep=True)
        out[str(label)] = Shift(  # a class gone from the window: no gap to test, only its share
            current=current,
            gap=float((rb[j] - ra[j]) - (ob[j] - oa[j])) if c_recent else 0.0,
            gap_p=float((1 + np.sum(gap <= 0)) / (1 + len(gap))) if c_recent else 1.0,
            share_recent=c_recent / n_recent,
            share_older=c_older / n_older,
            share_p=float(share_p),
        )
    return out


def newer_vs_standing(y_true: np.ndarray, newer: np.ndarray, standing: np.ndarray, ev: EvaluateConfig) -> Comparison:
    """The newer challenger against the standing one on the same rows: diff = newer − standing, and
    the one-sided p-value that the standing one is better (for :func:`rule.replaces_standing`)."""
    c, _ = primary_and_classes(  # the CI only: the test needed runs the other way round
        y_true, standing, newer, metric=ev.metric, n_resamples=min(ev.bootstrap_samples, 500), seed=ev.seed,
        permutations=None,
    )  # fmt: skip
    p_standing_better = stats.superiority(
        y_true, newer, standing, metric=ev.metric, n_resamples=ev.permutations, seed=ev.seed
    ).p_value
    return Comparison("newer_vs_standing", c.champion, c.challenger, c.diff, c.se, c.ci_low, c.ci_high, c.n,
                      p_standing_better)  # fmt: skip


def accuracy(name: str, y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> Comparison:
    """Paired accuracy difference: mean of per-row correctness differences, normal CI."""
    t = np.asarray(y_true).astype(str)
    ca, cb = np.asarray(pred_a).astype(str) == t, np.asarray(pred_b).astype(str) == t
    d = cb.astype(float) - ca.astype(float)
    n = len(d)
    se = float(np.std(d, ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    diff = float(d.mean()) if n else 0.0
    return Comparison(name, float(ca.mean()), float(cb.mean()), diff, se, diff - Z95 * se, diff + Z95 * se, n)


def calibration(
    y_true: np.ndarray,
    pred_a: np.ndarray,
    conf_a: np.ndarray,
    pred_b: np.ndarray,
    conf_b: np.ndarray,
    *,
    n_resamples: int,
    seed: int,
) -> Comparison | None:
    """ECE(champion) − ECE(challenger) (> 0: the challenger is better calibrated); None without confidences."""
    t = np.asarray(y_true).astype(str)
    ca, cb = np.asarray(pred_a).astype(str) == t, np.asarray(pred_b).astype(str) == t
    if not (np.isfinite(conf_a).any() and np.isfinite(conf_b).any()):
        return None
    ea, eb = stats.expected_calibration_error(ca, conf_a), stats.expected_calibration_error(cb, conf_b)
    rng = np.random.default_rng(seed)
    n = len(t)
    diffs = np.empty(n_resamples)
    for r in range(n_resamples):
        i = rng.integers(0, n, n)
        diffs[r] = stats.expected_calibration_error(ca[i], conf_a[i]) - stats.expected_calibration_error(
            cb[i], conf_b[i]
        )
    low, high = np.percentile(diffs, [2.5, 97.5])
    # stored as "improvement": champion − challenger, so that > 0 is better like every other guardrail
    return Comparison("ece", ea, eb, ea - eb, stats.standard_error(diffs), float(low), float(high), n,
                      higher_is_better=False, boot_diffs=tuple(float(x) for x in diffs))  # fmt: skip


def rules_from(ev: EvaluateConfig) -> GateRules:
    """The pure rule's parameters from the typed config section."""
    return GateRules(
        metric=ev.metric,
        alpha=ev.alpha,
        sequential_share=ev.sequential_share,
        min_effect=ev.min_effect,
        max_looks=ev.max_looks,
        guardrail_alpha=ev.guardrail_alpha,
        guardrail_test=ev.guardrail_test,
        class_shift_alpha=ev.class_shift_alpha,
        margins={
            "class": ev.class_f1_margin,
            "segment": ev.segment_accuracy_margin,
            "memory": ev.memory_accuracy_margin,
            "ece": ev.ece_margin,
        },
        min_support=ev.min_support,
        min_disparate_impact=ev.min_disparate_impact,
        max_latency_ratio=ev.max_latency_ratio,
        first_model_min=ev.first_model_min_macro_f1,
    )


def build_input(
    ev: EvaluateConfig,
    *,
    y_true: np.ndarray,
    segments: np.ndarray | None,
    memory: np.ndarray,
    challenger: tuple[np.ndarray, np.ndarray],
    champion: tuple[np.ndarray, np.ndarray] | None,
    latency_p95_ms: dict[str, float],
    lost_labels: tuple[str, ...] = (),
    earlier_looks: tuple[Look, ...] = (),
    recent: np.ndarray | None = None,
) -> GateInput:
    """Every paired comparison the rule needs. ``memory`` marks memory-holdout rows (not in the primary);
    ``recent`` the new window's rows (the rest of the primary's rows are the pool's older ones): each
    class's F1 comparison then carries its shift between the two (:func:`class_shift`)."""
    ev_rows = ~memory
    y, (pb, cb) = y_true[ev_rows], (challenger[0][ev_rows], challenger[1][ev_rows])
    if champion is None:
        from pipeline.stats.metrics import macro_f1

        yy, bb = np.asarray(y).astype(str), np.asarray(pb).astype(str)
        value = macro_f1(yy, bb) if ev.metric == "macro_f1" else float(np.mean(yy == bb))
        return GateInput(first_model=True, challenger_primary=value, lost_labels=lost_labels)
    pa, ca = champion[0][ev_rows], champion[1][ev_rows]
    primary, classes = primary_and_classes(
        y, pa, pb, metric=ev.metric, n_resamples=ev.bootstrap_samples, seed=ev.seed, permutations=ev.permutations
    )
    if recent is not None and ev.class_shift_alpha is not None:
        shifts = class_shift(
            y, pa, pb, np.asarray(recent, dtype=bool)[ev_rows], n_resamples=ev.bootstrap_samples, seed=ev.seed
        )
        classes = [replace(c, shift=shifts.get(c.name.removeprefix("class:"))) for c in classes]
    guards: list[Comparison] = list(classes)
    seg_acc: dict[str, dict[str, float]] = {"champion": {}, "challenger": {}}
    if segments is not None:
        seg = segments[ev_rows]
        known = ~pd.isna(seg)
        for name in sorted({str(s) for s in seg[known]}):
            m = known & (seg.astype(str) == name)
            c = accuracy(f"segment:{name}", y[m], pa[m], pb[m])
            guards.append(c)
            if c.n >= ev.min_support:
                seg_acc["champion"][name], seg_acc["challenger"][name] = c.champion, c.challenger
    if memory.any():
        guards.append(accuracy("memory", y_true[memory], champion[0][memory], challenger[0][memory]))
    ece = calibration(y, pa, ca, pb, cb, n_resamples=min(ev.bootstrap_samples, 300), seed=ev.seed)
    if ece is not None:
        guards.append(ece)
    return GateInput(
        first_model=False,
        challenger_primary=primary.challenger,
        primary=primary,
        earlier_looks=earlier_looks,
        guardrails=tuple(guards),
        segment_accuracy=seg_acc if len(seg_acc["challenger"]) >= 2 else {},
        latency_p95_ms=latency_p95_ms,
        lost_labels=lost_labels,
    )
