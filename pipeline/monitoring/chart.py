"""A PNG of the drift history: signals, the champion's accuracy and the decisions over time."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from pipeline.monitoring.history import Row


def _series(rows: list[Row], path: tuple[str, ...]) -> tuple[list[date], list[float]]:
    xs, ys = [], []
    for r in rows:
        node: Any = r.signals or {}
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, int | float):
            xs.append(date.fromisoformat(r.window_end))
            ys.append(float(node))
    return xs, ys


def draw(rows: list[Row], out: Path, title: str) -> Path:
    """Two panels: distribution signals (text AUC, label JS, embedding MMD² scaled) and accuracy
    (realised with CI, CBPE estimate); retrain decisions as red lines, retrains as green ones."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    checks = [r for r in rows if r.kind == "check"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    for label, path in (
        ("text AUC", ("tests", "text", "value")),
        ("label JS", ("tests", "label_prior", "value")),
        ("prediction JS", ("tests", "prediction", "value")),
    ):
        xs, ys = _series(checks, path)
        if xs:
            top.plot(xs, ys, marker="o", label=label)
    top.set_ylabel("drift score")
    top.set_title(title)
    xs, ys = _series(checks, ("performance", "accuracy"))
    if xs:
        _, lo = _series(checks, ("performance", "accuracy_low"))
        _, hi = _series(checks, ("performance", "accuracy_high"))
        bottom.plot(xs, ys, marker="o", label="champion accuracy")
        if len(lo) == len(xs) == len(hi):
            bottom.fill_between(xs, lo, hi, alpha=0.2)
    xs, ys = _series(checks, ("estimate", "accuracy"))
    if xs:
        bottom.plot(xs, ys, linestyle="--", marker="x", label="CBPE estimate")
    bottom.set_ylabel("accuracy")
    for r in rows:
        day = date.fromisoformat(r.window_end)
        for ax in (top, bottom):
            if r.kind == "check" and r.retrain:
                ax.axvline(day, color="red", alpha=0.4, linestyle=":")
            elif r.kind == "retrain":
                ax.axvline(day, color="green" if r.promoted else "grey", alpha=0.5)
    for ax in (top, bottom):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize="small")
    fig.autofmt_xdate()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
