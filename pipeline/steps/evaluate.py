"""Evaluate: champion vs challenger on the same test split, paired statistics, one decision record.

Both models predict the same rows; the comparison is paired throughout (exact McNemar test on
per-example correctness, paired bootstrap CI of the macro-F1 difference), and a per-class
guardrail keeps an overall gain from hiding a regression on one intent.

The gate fails closed. Without a champion, a first model is promoted only over
``evaluate.first_model_min_macro_f1``. With a champion, ``alpha``, ``min_macro_f1_gain`` and
``max_class_f1_drop`` must all be set; each unset one is a reason not to promote. Every check is
evaluated and every failure recorded (as MLflow's ``validation.py`` does), so the decision record
says everything that stood in the way, not just the first thing.

The step never raises because the gate said no: the decision record is the artifact, ``promote``
is a flag for the register step.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from pipeline import storage, tracking
from pipeline.config import EvaluateConfig, PipelineConfig
from pipeline.errors import PipelineError
from pipeline.paths import local_path
from pipeline.results import EvaluateResult
from pipeline.stats.metrics import classification_summary, plot_confusion
from pipeline.stats.paired import BootstrapResult, McNemarResult, mcnemar_exact, paired_bootstrap_diff

log = logging.getLogger(__name__)

DECISION = "decision.json"
PREDICTIONS = "predictions.parquet"
CONFIDENCE = 0.95  # level of the bootstrap CI of the macro-F1 gain
REQUIRED_COLUMNS = ("example_id", "text", "label")
# F1 values are ratios of small integers; compare guardrail drops with a tolerance so that a drop
# of exactly max_class_f1_drop is not failed by a rounding error
_EPS = 1e-9
_METRIC_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /]")


@dataclass(frozen=True)
class Check:
    """One gate check: its outcome and one readable line saying why."""

    name: str
    passed: bool
    detail: str
    value: float | None = None
    threshold: float | None = None


def decide(
    ev: EvaluateConfig,
    *,
    challenger: dict[str, Any],
    champion: dict[str, Any] | None,
    mcnemar: McNemarResult | None,
    bootstrap: BootstrapResult | None,
    lost_labels: list[str] | None = None,
) -> tuple[bool, list[Check]]:
    """Apply the promotion gate to two summaries (from :func:`classification_summary`).

    Returns ``(promote, checks)``: ``promote`` is true only when at least one check ran and every
    check passed. An unset threshold is a failed check named ``gate not configured: <key>``.
    ``lost_labels``: labels the champion predicts and the challenger cannot; any fails the gate.
    """
    checks: list[Check] = []
    if lost_labels:
        checks.append(
            Check(
                "label_coverage",
                False,
                f"label coverage: the challenger cannot predict {sorted(lost_labels)}, which the champion can",
                value=float(len(lost_labels)),
                threshold=0.0,
            )
        )
    if champion is None:
        floor = ev.first_model_min_macro_f1
        value = challenger["macro_f1"]
        if floor is None:
            checks.append(
                Check(
                    "first_model_min_macro_f1",
                    False,
                    "gate not configured: first_model_min_macro_f1 (no champion yet; a first model is "
                    "promoted only over this macro-F1 floor)",
                    value=value,
                )
            )
        else:
            ok = value >= floor
            checks.append(
                Check(
                    "first_model_min_macro_f1",
                    ok,
                    f"first model: macro-F1 {value:.4f} {'>=' if ok else '<'} first_model_min_macro_f1 {floor}",
                    value=value,
                    threshold=floor,
                )
            )
        return bool(checks) and all(c.passed for c in checks), checks

    if mcnemar is None or bootstrap is None:
        raise ValueError("a champion comparison needs both the McNemar and the bootstrap result")
    for key in ("alpha", "min_macro_f1_gain", "max_class_f1_drop"):
        if getattr(ev, key) is None:
            checks.append(Check(key, False, f"gate not configured: {key} (no promotion over a champion without it)"))

    if ev.alpha is not None:
        counts = f"challenger fixed {mcnemar.b01} and broke {mcnemar.b10} of the champion's answers"
        if mcnemar.b01 <= mcnemar.b10:
            ok = False
            detail = f"McNemar: challenger is not better where the models disagree ({counts}; p={mcnemar.p_value:.4g})"
        elif mcnemar.p_value >= ev.alpha:
            ok, detail = False, f"McNemar: p={mcnemar.p_value:.4g} >= alpha {ev.alpha}, not significant ({counts})"
        else:
            ok, detail = True, f"McNemar: p={mcnemar.p_value:.4g} < alpha {ev.alpha} ({counts})"
        checks.append(Check("mcnemar", ok, detail, value=mcnemar.p_value, threshold=ev.alpha))

    if ev.min_macro_f1_gain is not None:
        gain = ev.min_macro_f1_gain
        ok = bootstrap.ci_low > gain
        checks.append(
            Check(
                "macro_f1_gain",
                ok,
                f"macro-F1 gain {bootstrap.diff:+.4f}, {CONFIDENCE:.0%} CI [{bootstrap.ci_low:+.4f}, "
                f"{bootstrap.ci_high:+.4f}]: lower bound {'>' if ok else '<='} min_macro_f1_gain {gain}",
                value=bootstrap.ci_low,
                threshold=gain,
            )
        )

    if ev.max_class_f1_drop is not None:
        max_drop = ev.max_class_f1_drop
        guarded = 0
        for label, ch in challenger["per_class"].items():
            support = ch["support"]
            if support < ev.min_class_support:
                continue
            guarded += 1
            before = champion["per_class"].get(label, {}).get("f1", 0.0)
            drop = before - ch["f1"]
            ok = drop <= max_drop + _EPS
            checks.append(
                Check(
                    f"guardrail:{label}",
                    ok,
                    f"guardrail: class '{label}' F1 {before:.4f} -> {ch['f1']:.4f} "
                    f"({'drop' if drop > 0 else 'change'} {abs(drop):.4f} {'<=' if ok else '>'} "
                    f"max_class_f1_drop {max_drop}; {support} test rows)",
                    value=drop,
                    threshold=max_drop,
                )
            )
        if guarded == 0:
            checks.append(
                Check(
                    "guardrail",
                    True,
                    f"guardrail: no class has min_class_support {ev.min_class_support} test rows; none guarded",
                )
            )
    return bool(checks) and all(c.passed for c in checks), checks


def _read_test(test_uri: str) -> pd.DataFrame:
    path = local_path(test_uri)
    if not path.exists():
        raise PipelineError(f"evaluate: test split {test_uri} does not exist")
    df = pd.read_parquet(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise PipelineError(f"evaluate: test split {test_uri} lacks column(s) {', '.join(missing)}")
    if df.empty:
        raise PipelineError(f"evaluate: test split {test_uri} has no rows")
    return df.reset_index(drop=True)


def _predict(model_uri: str, texts: pd.DataFrame, role: str) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """Labels (str) and confidences (float, NaN when the model gives none) for every row, and the
    labels the model can predict (None when it does not say)."""
    log.info("evaluate: loading %s %s", role, model_uri)
    model = mlflow.pyfunc.load_model(model_uri)
    try:
        known = list(model.unwrap_python_model().labels)
    except (AttributeError, TypeError, ValueError):  # not an intent model (tests pass plain pyfuncs)
        known = None
    out = model.predict(texts)
    if not isinstance(out, pd.DataFrame) or "label" not in out.columns or len(out) != len(texts):
        shape = f"{type(out).__name__} of length {len(out)}" if hasattr(out, "__len__") else type(out).__name__
        raise PipelineError(
            f"evaluate: {role} model {model_uri} must return a DataFrame with a 'label' column and one row "
            f"per input ({len(texts)}), got {shape}"
        )
    labels = out["label"].astype(str).to_numpy()
    conf = out["confidence"].astype(float).to_numpy() if "confidence" in out.columns else np.full(len(out), np.nan)
    return labels, conf, known


def _ordered_labels(known: tuple[str, ...], *arrays: np.ndarray) -> list[str]:
    seen = set().union(*(set(a.tolist()) for a in arrays))
    return [lb for lb in known if lb in seen] + sorted(seen - set(known))


def _metric_key(name: str) -> str:
    return _METRIC_NAME_UNSAFE.sub("_", name)


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


@dataclass
class _Scored:
    """One model's predictions on the test split and their summary."""

    role: str
    model_uri: str
    pred: np.ndarray
    confidence: np.ndarray
    summary: dict[str, Any]


def run(
    cfg: PipelineConfig,
    *,
    test_uri: str,
    challenger_uri: str,
    champion_uri: str | None,
    champion_version: str | None,
    out_dir: str,
    pipeline_run_id: str,
) -> EvaluateResult:
    """Compare the challenger with the champion (if any) on ``test_uri`` and decide on promotion.

    Writes under ``out_dir``: ``decision.json`` (verdict, reasons, every check, thresholds, both
    models' metrics incl. per class and per segment, test statistics, URIs),
    ``metrics_challenger.json`` / ``metrics_champion.json``, ``confusion_challenger.png`` /
    ``confusion_champion.png`` and ``predictions.parquet`` (``example_id, label, pred_champion,
    pred_challenger`` and confidences), all logged to the MLflow child run ``evaluate``.

    Retry-safe: the folder is published in one rename with a ``_SUCCESS`` marker holding the
    result, and a rerun of the same run returns that recorded result without recomputing.
    Raises :class:`PipelineError` when the test split is missing or malformed, or a model's
    output is not one ``label`` per row; never because the gate said no.
    """
    done = storage.load_done(out_dir, EvaluateResult)
    if done is not None:
        log.info("evaluate: %s already finished (promote=%s); returning the recorded result", out_dir, done.promote)
        return done
    ev = cfg.evaluate
    test = _read_test(test_uri)
    y_true = test["label"].astype(str).to_numpy()
    segments = test["segment"].to_numpy(dtype=object) if "segment" in test.columns else None
    log.info("evaluate: %d test rows from %s", len(test), test_uri)
    decision_path = Path(out_dir).absolute() / DECISION

    with storage.staged_dir(out_dir) as stage, tracking.step_run(cfg, pipeline_run_id, "evaluate") as mlrun:
        uris = {"challenger": challenger_uri, "champion": champion_uri}
        raw = {role: _predict(uri, test[["text"]], role) for role, uri in uris.items() if uri is not None}
        labels = _ordered_labels(cfg.validate_cfg.labels, y_true, *(pred for pred, _, _ in raw.values()))
        scored = {
            role: _Scored(role, uris[role] or "", pred, conf, classification_summary(y_true, pred, labels, segments))
            for role, (pred, conf, _) in raw.items()
        }
        known = {role: k for role, (_, _, k) in raw.items()}
        champion_known, challenger_known = known.get("champion"), known.get("challenger")
        lost = (
            sorted(set(champion_known) - set(challenger_known))
            if champion_known is not None and challenger_known is not None
            else []
        )
        challenger, champion = scored["challenger"], scored.get("champion")

        mcn: McNemarResult | None = None
        boot: BootstrapResult | None = None
        if champion is not None:
            mcn = mcnemar_exact(champion.pred == y_true, challenger.pred == y_true)
            boot = paired_bootstrap_diff(
                y_true,
                champion.pred,
                challenger.pred,
                metric="macro_f1",
                n_resamples=ev.bootstrap_samples,
                seed=ev.seed,
                confidence=CONFIDENCE,
            )
        promote, checks = decide(
            ev,
            challenger=challenger.summary,
            champion=None if champion is None else champion.summary,
            mcnemar=mcn,
            bootstrap=boot,
            lost_labels=lost,
        )
        reasons = tuple(c.detail for c in checks if not c.passed)
        result = EvaluateResult(
            promote=promote,
            is_first_model=champion is None,
            reasons=reasons,
            decision_uri=str(decision_path),
            challenger_accuracy=challenger.summary["accuracy"],
            challenger_macro_f1=challenger.summary["macro_f1"],
            champion_accuracy=None if champion is None else champion.summary["accuracy"],
            champion_macro_f1=None if champion is None else champion.summary["macro_f1"],
            champion_version=champion_version,
            p_value=None if mcn is None else mcn.p_value,
            macro_f1_diff=None if boot is None else boot.diff,
            ci_low=None if boot is None else boot.ci_low,
            ci_high=None if boot is None else boot.ci_high,
            test_rows=len(test),
            mlflow_run_id=mlrun.info.run_id,
        )

        for s in scored.values():
            storage.write_json_atomic(stage / f"metrics_{s.role}.json", {"model_uri": s.model_uri, **s.summary})
            plot_confusion(y_true, s.pred, labels, stage / f"confusion_{s.role}.png", f"{s.role}: {s.model_uri}")
        _predictions_frame(test, y_true, challenger, champion).to_parquet(stage / PREDICTIONS, index=False)
        decision = {
            "verdict": "promote" if promote else "reject",
            "promote": promote,
            "is_first_model": champion is None,
            "reasons": list(reasons),
            "checks": [asdict(c) for c in checks],
            "thresholds": {**ev.model_dump(), "confidence": CONFIDENCE},
            "stats": {
                "mcnemar": None if mcn is None else {**asdict(mcn), "exact": True, "two_sided": True},
                "bootstrap": None
                if boot is None
                else {
                    **asdict(boot),
                    "metric": "macro_f1",
                    "n_resamples": ev.bootstrap_samples,
                    "seed": ev.seed,
                    "confidence": CONFIDENCE,
                },
            },
            "metrics": {role: None if role not in scored else scored[role].summary for role in uris},
            "labels": labels,
            "models": {**{f"{role}_uri": uri for role, uri in uris.items()}, "champion_version": champion_version},
            "test_uri": test_uri,
            "test_rows": len(test),
            "pipeline_run_id": pipeline_run_id,
            "git_sha": tracking.git_sha(),
            "mlflow_run_id": mlrun.info.run_id,
        }
        storage.write_json_atomic(stage / DECISION, decision)
        _log_to_mlflow(result, scored, mcn, ev, uris, champion_version, test_uri)
        mlflow.log_artifacts(str(stage))
        storage.write_done(stage, result)

    versus = "" if champion is None else f" vs champion v{champion_version} {result.champion_macro_f1:.4f}"
    stats = (
        ""
        if boot is None
        else (f", diff {boot.diff:+.4f} CI [{boot.ci_low:+.4f}, {boot.ci_high:+.4f}], p={result.p_value:.4g}")
    )
    log.info(
        "evaluate: %s | challenger macro-F1 %.4f%s%s | %s",
        "PROMOTE" if promote else "REJECT",
        result.challenger_macro_f1,
        versus,
        stats,
        "; ".join(reasons) if reasons else "all checks passed",
    )
    log.info("evaluate: decision written to %s", decision_path)
    return result


def _predictions_frame(
    test: pd.DataFrame, y_true: np.ndarray, challenger: _Scored, champion: _Scored | None
) -> pd.DataFrame:
    n = len(test)
    return pd.DataFrame(
        {
            "example_id": test["example_id"].to_numpy(),
            "label": y_true,
            "pred_champion": pd.array([None] * n if champion is None else champion.pred, dtype="string"),
            "pred_challenger": pd.array(challenger.pred, dtype="string"),
            "confidence_champion": np.full(n, np.nan) if champion is None else champion.confidence,
            "confidence_challenger": challenger.confidence,
        }
    )


def _log_to_mlflow(
    result: EvaluateResult,
    scored: dict[str, _Scored],
    mcn: McNemarResult | None,
    ev: EvaluateConfig,
    uris: dict[str, str | None],
    champion_version: str | None,
    test_uri: str,
) -> None:
    metrics: dict[str, float] = {"promote": float(result.promote), "test_rows": float(result.test_rows)}
    for key in (
        "challenger_accuracy",
        "challenger_macro_f1",
        "champion_accuracy",
        "champion_macro_f1",
        "p_value",
        "macro_f1_diff",
        "ci_low",
        "ci_high",
    ):
        value = _finite(getattr(result, key))
        if value is not None:
            metrics[key] = value
    if mcn is not None:
        metrics["mcnemar_b01"] = float(mcn.b01)
        metrics["mcnemar_b10"] = float(mcn.b10)
    for s in scored.values():
        for label, stats in s.summary["per_class"].items():
            if stats["support"] > 0:
                metrics[_metric_key(f"{s.role}_f1_{label}")] = stats["f1"]
    mlflow.log_metrics(metrics)
    mlflow.log_params({f"gate.{k}": str(v) for k, v in ev.model_dump().items()})
    mlflow.set_tags(
        {
            "verdict": "promote" if result.promote else "reject",
            "challenger_uri": uris["challenger"] or "",
            "champion_uri": uris["champion"] or "",
            "champion_version": champion_version or "",
            "test_uri": test_uri,
            "is_first_model": str(result.is_first_model).lower(),
        }
    )
    if result.reasons:
        # tag values are capped (5000 characters in the SQL store); decision.json has them all
        mlflow.set_tag("reasons", json.dumps(list(result.reasons))[:5000])
