"""``retrain calibrate``: thresholds from past no-drift windows, and the false-alarm rate they imply.

The null distribution of each signal is built by bootstrap: rows of past windows the user vouches
for as drift-free (by date range in the drift history, or any curated files) are pooled; a
reference sample and ``windows`` current samples of each size are drawn from the pool (the current
without replacement from the rows not in the reference), and every signal is computed exactly as
the drift check does. From that null:

- the effect floor per size that only a share ``target`` of no-drift windows reaches;
- the false-alarm rate the configured ``alpha`` and floors imply, per signal and for "any
  signal on", and the rate of the k-of-m persistence rule (binomial, independent windows).

Embedding and prediction drift are permutation and chi-square tests whose null is exact, so they are
not resampled here. Pure helpers (:func:`quantile_floor`, :func:`k_of_m_rate`) are tested directly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from pipeline.config import PipelineConfig
from pipeline.monitoring import signals


def quantile_floor(null_effects: Sequence[float], target: float) -> float:
    """The (1 - target) quantile of the effect under no drift (higher effects alarm)."""
    return float(np.quantile(np.asarray(null_effects, dtype=float), 1 - target))


def k_of_m_rate(p: float, k: int, m: int) -> float:
    """Probability that at least k of m independent checks alarm, each with probability p."""
    return float(sps.binom.sf(k - 1, m, p))


def null_signals(pool: pd.DataFrame, rows: int, windows: int, cfg: PipelineConfig, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    n_ref = min(cfg.drift.reference_sample_size, max(10, len(pool) - rows))
    out = []
    for _ in range(windows):
        idx = rng.permutation(len(pool))
        ref, cur = pool.iloc[idx[:n_ref]], pool.iloc[idx[n_ref : n_ref + rows]]
        text = signals.text_test(cur["text"], ref["text"], cfg.drift.text_drift_threshold)
        label = signals.label_test(cur["label"], ref["label"], cfg.drift.label_drift_threshold, set())
        out.append({"text": text, "label_prior": label})
    return out


def calibrate(
    cfg: PipelineConfig, pool: pd.DataFrame, sizes: Sequence[int], windows: int, target: float
) -> dict[str, Any]:
    """Per window size: null quantiles, recommended floors and implied false-alarm rates."""
    alpha, k, m = cfg.drift.alpha, cfg.policy.persist_k, cfg.policy.persist_m
    table = []
    for rows in sizes:
        if rows >= len(pool):
            continue
        null = null_signals(pool, rows, windows, cfg, seed=cfg.drift.seed + rows)
        entry: dict[str, Any] = {"rows": rows, "windows": len(null)}
        any_on = np.zeros(len(null), dtype=bool)
        for name in ("text", "label_prior"):
            effects = [w[name]["effect"] for w in null]
            ps = np.array([w[name]["p_value"] for w in null])
            floor = null[0][name]["effect_floor"]
            on = (ps < alpha) & (np.array(effects) >= floor)
            any_on |= on
            entry[name] = {
                "false_alarm_rate": float(on.mean()),
                "p_below_alpha_rate": float((ps < alpha).mean()),
                "recommended_effect_floor": quantile_floor(effects, target),
                "configured_effect_floor": floor,
            }
        far = float(any_on.mean())
        entry["any_signal_false_alarm_rate"] = far
        entry[f"persistence_{k}_of_{m}_rate"] = k_of_m_rate(far, k, m)
        table.append(entry)
    worst = max((e["any_signal_false_alarm_rate"] for e in table), default=math.nan)
    return {
        "pool_rows": len(pool),
        "alpha": alpha,
        "target_false_alarm_rate": target,
        "sizes": table,
        "worst_any_signal_false_alarm_rate": worst,
        "meets_target": bool(worst <= target) if table else False,
    }
