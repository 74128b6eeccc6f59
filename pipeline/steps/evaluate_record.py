"""The evaluate step's record: the decision's comparisons as JSON, the window's own slice, the
rows table, the predictions frame, and what goes to the MLflow run. Used by
:mod:`pipeline.steps.evaluate`; no decision is made here."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from pipeline.config import EvaluateConfig, PipelineConfig
from pipeline.gate import compare, rule
from pipeline.results import EvaluateResult

_METRIC_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /]")


def methods(ev: EvaluateConfig) -> dict[str, str]:
    """How each part of the decision was tested, for the record."""
    return {
        "primary": "mcnemar_exact_one_sided" if ev.metric == "accuracy" else "paired_permutation_one_sided",
        "sequential": "group_sequential_linear_spending_by_look",
        "guardrails": f"one-sided {ev.guardrail_test} test (percentile bootstrap for per-class F1 and ECE, z for "
        "accuracy), Holm step-down; non-inferiority p reported",
        "class_shift": "off"
        if ev.class_shift_alpha is None
        else f"a class whose F1 gap grew on the window (bootstrap interaction) or whose share changed (Fisher "
        f"exact) at {ev.class_shift_alpha:g} is gated on the window's rows",
        "pool": "all rows"
        if ev.pool_half_life_days is None
        else f"thinned by recency, half-life {ev.pool_half_life_days:g} days",
    }


def record(c: rule.Comparison) -> dict[str, Any]:
    """A comparison for the decision record, without its bootstrap diffs or class shift."""
    return {k: v for k, v in asdict(c).items() if k not in ("boot_diffs", "shift")}


def metric_key(name: str) -> str:
    return _METRIC_NAME_UNSAFE.sub("_", name)


def finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def window_primary(
    cfg: PipelineConfig, rows: pd.DataFrame, y: np.ndarray, preds: dict[str, tuple[np.ndarray, np.ndarray]]
) -> dict[str, Any] | None:
    """The new window's slice alone (reported, not decided on)."""
    w = (rows["slice"] == "window").to_numpy()
    if "champion" not in preds or not w.any():
        return None
    ev = cfg.evaluate
    prim, _ = compare.primary_and_classes(
        y[w], preds["champion"][0][w], preds["challenger"][0][w], metric=ev.metric,
        n_resamples=min(ev.bootstrap_samples, 500), seed=ev.seed, permutations=min(ev.permutations, 500),
    )  # fmt: skip
    return record(prim)


def rows_table(counts: dict[str, int], window: dict[str, Any] | None) -> str:
    lines = ["| rows | count |", "|---|---|", *[f"| {k} | {v} |" for k, v in counts.items()]]
    if window:
        lines += [
            "",
            f"The window's slice alone: diff {window['diff']:+.4f}, CI [{window['ci_low']:+.4f}, "
            f"{window['ci_high']:+.4f}], {window['n']} rows, one-sided p={window['p_value']:.4g} (reported only).",
        ]
    return "\n".join(lines) + "\n"


def predictions_frame(rows: pd.DataFrame, preds: dict[str, tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    n = len(rows)
    champ = preds.get("champion")
    return pd.DataFrame(
        {
            "example_id": rows["example_id"].to_numpy(),
            "slice": rows["slice"].to_numpy(),
            "label": rows["label"].astype(str).to_numpy(),
            "pred_champion": pd.array([None] * n if champ is None else champ[0], dtype="string"),
            "pred_challenger": pd.array(preds["challenger"][0], dtype="string"),
            "confidence_champion": np.full(n, np.nan) if champ is None else champ[1],
            "confidence_challenger": preds["challenger"][1],
        }
    )


def log_to_mlflow(
    result: EvaluateResult,
    summaries: dict[str, dict[str, Any]],
    thresholds: dict[str, Any],
    champion_version: str | None,
    test_uri: str,
) -> None:
    metrics: dict[str, float] = {"promote": float(result.promote), "test_rows": float(result.test_rows)}
    for key in ("challenger_accuracy", "challenger_macro_f1", "champion_accuracy", "champion_macro_f1", "p_value",
                "macro_f1_diff", "ci_low", "ci_high", "power"):  # fmt: skip
        value = finite(getattr(result, key))
        if value is not None:
            metrics[key] = value
    for role, s in summaries.items():
        for label, stats in s["eval"]["per_class"].items():
            if stats["support"] > 0:
                metrics[metric_key(f"{role}_f1_{label}")] = stats["f1"]
    mlflow.log_metrics(metrics)
    mlflow.log_params({f"gate.{k}": str(v) for k, v in thresholds.items()})
    mlflow.set_tags(
        {
            "outcome": result.outcome,
            "verdict": "promote" if result.promote else result.outcome,
            "champion_version": champion_version or "",
            "test_uri": test_uri,
            "is_first_model": str(result.is_first_model).lower(),
            "summary": result.summary[:5000],
        }
    )
    if result.reasons:
        mlflow.set_tag("reasons", json.dumps(list(result.reasons))[:5000])
