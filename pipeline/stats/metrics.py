"""Classification summaries and confusion plots for the evaluation step.

Macro-F1 is averaged over the labels present in ``y_true``: a champion that never predicts a new
intent scores F1 0 on it (its rows count against it), while a label that only appears in the
predictions does not dilute the average with an undefined F1.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support


def _as_str(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    return np.asarray(values).astype(str)


def macro_f1(y_true: Sequence[Any] | np.ndarray, y_pred: Sequence[Any] | np.ndarray) -> float:
    """Macro-F1 over the labels present in ``y_true`` (0.0 for an empty input)."""
    t, p = _as_str(y_true), _as_str(y_pred)
    if len(t) == 0:
        return 0.0
    present = sorted(set(t.tolist()))
    return float(f1_score(t, p, labels=present, average="macro", zero_division=0))


def classification_summary(
    y_true: Sequence[Any] | np.ndarray,
    y_pred: Sequence[Any] | np.ndarray,
    labels: Sequence[str],
    segments: Sequence[Any] | np.ndarray | None = None,
) -> dict[str, Any]:
    """Plain-value summary of one model's predictions (JSON-ready).

    Returns ``{"rows", "accuracy", "macro_f1", "per_class": {label: {precision, recall, f1,
    support}}, "per_segment": {segment: {rows, accuracy, macro_f1}}}``. ``per_class`` covers
    ``labels`` plus any label seen in ``y_true`` or ``y_pred``; ``per_segment`` is empty without
    ``segments``, and rows whose segment is null are left out of it.
    """
    t, p = _as_str(y_true), _as_str(y_pred)
    if len(t) != len(p):
        raise ValueError(f"y_true and y_pred differ in length ({len(t)} != {len(p)})")
    all_labels = list(dict.fromkeys([*labels, *sorted(set(t.tolist()) | set(p.tolist()))]))
    summary: dict[str, Any] = {
        "rows": len(t),
        "accuracy": float(accuracy_score(t, p)) if len(t) else 0.0,
        "macro_f1": macro_f1(t, p),
        "per_class": {},
        "per_segment": {},
    }
    if len(t):
        prec, rec, f1, support = precision_recall_fscore_support(t, p, labels=all_labels, average=None, zero_division=0)
        summary["per_class"] = {
            label: {"precision": float(pr), "recall": float(rc), "f1": float(f), "support": int(s)}
            for label, pr, rc, f, s in zip(all_labels, prec, rec, f1, support, strict=True)
        }
    if segments is not None:
        import pandas as pd

        seg = np.asarray(segments, dtype=object)
        if len(seg) != len(t):
            raise ValueError(f"segments and y_true differ in length ({len(seg)} != {len(t)})")
        known = ~pd.isna(seg).astype(bool)
        seg_str = np.where(known, seg.astype(str), "")
        for name in sorted(set(seg_str[known].tolist())):
            mask = known & (seg_str == name)
            summary["per_segment"][name] = {
                "rows": int(mask.sum()),
                "accuracy": float(np.mean(t[mask] == p[mask])),
                "macro_f1": macro_f1(t[mask], p[mask]),
            }
    return summary


def plot_confusion(
    y_true: Sequence[Any] | np.ndarray,
    y_pred: Sequence[Any] | np.ndarray,
    labels: Sequence[str],
    path: str | Path,
    title: str,
) -> Path:
    """Write a confusion-matrix PNG (rows: true label, columns: predicted) and return its path.

    Uses the Agg canvas directly, so it never touches pyplot's global backend or figure state.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from sklearn.metrics import confusion_matrix

    t, p = _as_str(y_true), _as_str(y_pred)
    names = list(dict.fromkeys([*labels, *sorted(set(t.tolist()) | set(p.tolist()))]))
    cm = confusion_matrix(t, p, labels=names)
    size = max(4.0, 0.6 * len(names) + 2)
    fig = Figure(figsize=(size + 1, size))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(len(names)), labels=names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), labels=names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                color = "white" if cm[i, j] > threshold else "black"
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7, color=color)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out
