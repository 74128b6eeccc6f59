"""A PNG of an online A/B test: the estimate and its running confidence sequence, and the always-valid p."""

from __future__ import annotations

import math
from pathlib import Path

from pipeline.ab.rule import AbDecision, AbRules


def draw(steps: list[AbDecision], rules: AbRules, out: Path, title: str) -> Path:
    """Top: accuracy(challenger) − accuracy(champion) per look with the intersected (1 − α)
    confidence sequence and ``min_effect``; bottom: the always-valid p-value against α (log scale).
    x: judged predictions over both variants."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [d.n_champion + d.n_challenger for d in steps]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    top.plot(n, [d.estimate for d in steps], marker=".", label="accuracy difference")
    lo = [d.low if math.isfinite(d.low) else math.nan for d in steps]
    hi = [d.high if math.isfinite(d.high) else math.nan for d in steps]
    top.fill_between(n, lo, hi, alpha=0.25, label=f"{1 - rules.alpha:.0%} confidence sequence")
    top.axhline(0, color="black", linewidth=0.8)
    top.axhline(rules.min_effect, color="grey", linestyle=":", label="min_effect")
    top.set_ylabel("challenger − champion")
    top.set_title(title)
    top.legend(loc="upper right", fontsize=8)
    bottom.semilogy(n, [max(d.p_value, 1e-12) for d in steps], marker=".")
    bottom.axhline(rules.alpha, color="red", linestyle="--", label="alpha")
    bottom.set_ylabel("always-valid p")
    bottom.set_xlabel("judged predictions")
    bottom.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
