"""Drift step: how does the new window differ from its references, and how does the champion do on it?

Signals, each a size-aware test (a p-value and an effect with a floor, see
:mod:`pipeline.monitoring.stats`), computed against two references:

- ``training``: the window the latest retrain answered (promoted or not: the drift it answered is
  not drift again), or the champion's training data before any retrain was recorded;
- ``seasonal``: the same season of the previous cycle (from the drift history), when there is one.

Per reference: ``text`` (Evidently's ``abs_text_content_drift`` domain classifier, its ROC AUC
against the Mann-Whitney null of its held-out split) and ``label_prior`` (chi-square on the label
counts; labels the reference never had are reported as ``new_labels`` instead). Against the
training reference, with the champion loaded: ``embedding`` (MMD² permutation test on mean-pooled
embeddings), ``prediction`` (chi-square on predicted labels), ``performance`` (accuracy and macro-F1
on the labelled window with CIs) and ``estimate`` (CBPE from temperature-calibrated probabilities).

Files written to ``out_dir``: ``drift_report.html`` / ``drift_report.json`` (Evidently 0.7
``Report`` of the text and label columns against the training reference), ``signals.json`` and
``_SUCCESS``. With no reference (the first model) nothing is compared. Safe to retry: a finished
step returns its recorded result; samples, splits, bootstrap and permutations are seeded.

The step does not decide: :mod:`pipeline.monitoring.policy` does, from this result and the history.
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from pipeline import paths, storage, tracking
from pipeline.config import PipelineConfig
from pipeline.errors import DriftCheckError
from pipeline.results import DriftResult

log = logging.getLogger(__name__)

STEP = "drift"
TEXT_METHOD = "abs_text_content_drift"
LABEL_METHOD = "jensenshannon"  # shown in the HTML report; the decision uses chi-square (size-aware)
REQUIRED_COLUMNS = ("text", "label")
HTML_FILE = "drift_report.html"
SIGNALS_FILE = "signals.json"
JSON_FILE = "drift_report.json"


def run(
    cfg: PipelineConfig,
    *,
    current_uris: list[str],
    reference_uri: str | Sequence[str] | None,
    out_dir: str,
    pipeline_run_id: str,
    champion_uri: str | None = None,
    seasonal_uris: Sequence[str] = (),
    seasonal_name: str | None = None,
    calibration_uri: str | None = None,
) -> DriftResult:
    """Compute every signal of the current window and return the recorded result.

    Raises :class:`DriftCheckError` when the current data is empty or unreadable, when a reference
    is given but unusable, when the champion cannot be loaded, or when Evidently cannot score.
    """
    refs = [reference_uri] if isinstance(reference_uri, str) else list(reference_uri or [])
    reference_uri = ",".join(refs) or None  # as recorded: one string
    done = storage.load_done(out_dir, DriftResult)
    if done is not None:
        log.info(
            "drift: %s already finished (drift_detected=%s), returning the recorded result",
            out_dir,
            done.drift_detected,
        )
        return done

    dcfg = cfg.drift
    final = str(out_dir)
    with tracking.step_run(cfg, pipeline_run_id, STEP) as mlrun:
        mlflow.set_tags(
            {
                "drift.has_reference": str(reference_uri is not None).lower(),
                "drift.reference_uri": reference_uri or "none",
                "drift.seasonal_reference": seasonal_name or "none",
                "drift.current_files": ",".join(Path(str(u)).name for u in current_uris)[:5000],
            }
        )
        mlflow.log_params({f"drift.{k}": v for k, v in dcfg.model_dump().items() if k != "history_url"})
        full = _read(current_uris, "current")
        if reference_uri is None:
            log.info("drift: no reference (first model): %d current rows, nothing to compare", len(full))
            result = DriftResult(
                drift_detected=False,
                has_reference=False,
                text_drift_score=None,
                label_drift_score=None,
                text_drift_detected=False,
                label_drift_detected=False,
                report_html_uri=None,
                report_json_uri=None,
                reference_rows=0,
                current_rows=len(full),
                mlflow_run_id=mlrun.info.run_id,
            )
            mlflow.log_metrics({"rows": len(full), "drift_detected": 0})
            with storage.staged_dir(out_dir) as stage:
                storage.write_done(stage, result)
            return result

        current = _sample(full, dcfg.max_current_rows, dcfg.seed)
        reference_full = _read(refs, "reference")
        reference = _sample(reference_full, dcfg.reference_sample_size, dcfg.seed)
        champion = _load_champion(champion_uri) if champion_uri is not None else None
        # new: neither in the reference nor among the labels the champion can predict (a seasonal label
        # the champion knows is not new because the last answered window lacked it)
        known = set(reference_full["label"]) | set(getattr(champion, "labels", ()))
        new_labels = sorted(set(full["label"]) - known)
        started = time.perf_counter()
        with storage.staged_dir(out_dir) as stage:
            snapshot = _report(current, reference, cfg, pipeline_run_id, current_uris, reference_uri)
            snapshot.save_html(str(stage / HTML_FILE))
            snapshot.save_json(str(stage / JSON_FILE))
            auc = _score(snapshot.dict(), "text")
            tests = {"training": _tests(full, current, reference, dcfg, set(new_labels), auc)}
            seasonal_rows = 0
            if seasonal_uris:
                seasonal = _sample(
                    _read(list(seasonal_uris), "seasonal reference"), dcfg.reference_sample_size, dcfg.seed
                )
                seasonal_rows = len(seasonal)
                tests["seasonal"] = _tests(full, current, seasonal, dcfg, set(new_labels) | _unseen(full, seasonal))
            performance = estimate = None
            if champion is not None:
                model_tests, performance, estimate = _model_signals(champion, current, reference, dcfg, calibration_uri)
                tests["training"].update(model_tests)
            used = "seasonal" if dcfg.reference == "seasonal" and "seasonal" in tests else "training"
            flags = {name: _on(t, dcfg.alpha) for name, t in tests[used].items()}
            text_score, label_score = tests["training"]["text"]["value"], tests["training"]["label_prior"]["value"]
            result = DriftResult(
                drift_detected=any(flags.values()),
                has_reference=True,
                text_drift_score=text_score,
                label_drift_score=label_score,
                text_drift_detected=flags.get("text", False),
                label_drift_detected=flags.get("label_prior", False),
                report_html_uri=paths.join(final, HTML_FILE),
                report_json_uri=paths.join(final, JSON_FILE),
                reference_rows=len(reference),
                current_rows=len(full),
                mlflow_run_id=mlrun.info.run_id,
                tests=tests,
                reference_used=used,
                seasonal_reference=seasonal_name if seasonal_uris else None,
                performance=performance,
                estimate=estimate,
                new_labels=tuple(new_labels),
                reference_uri=reference_uri,
            )
            storage.write_json_atomic(stage / SIGNALS_FILE, result.to_dict())
            for name in (HTML_FILE, JSON_FILE, SIGNALS_FILE):
                mlflow.log_artifact(str(stage / name), STEP)
            metrics: dict[str, float] = {
                "text_drift_score": text_score,
                "label_drift_score": label_score,
                "drift_detected": int(result.drift_detected),
                "rows": len(full),
                "reference_rows": len(reference),
                "seasonal_reference_rows": seasonal_rows,
                "new_labels": len(new_labels),
            }
            for ref, by_signal in tests.items():
                for name, t in by_signal.items():
                    metrics[f"{ref}.{name}.p_value"] = t["p_value"]
                    metrics[f"{ref}.{name}.value"] = t["value"]
            for key in ("accuracy", "accuracy_low", "accuracy_high", "macro_f1", "macro_f1_low", "macro_f1_high"):
                if performance is not None:
                    metrics[f"champion.{key}"] = performance[key]
            if estimate is not None:
                metrics["cbpe.accuracy"], metrics["cbpe.macro_f1"] = estimate["accuracy"], estimate["macro_f1"]
            mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))})
            storage.write_done(stage, result)
        log.info(
            "drift: %d current rows (%d sampled) vs %d reference rows%s in %.2fs: %s; new labels %s; wrote %s",
            len(full), len(current), len(reference),
            f" and {seasonal_rows} seasonal ({seasonal_name})" if seasonal_uris else "",
            time.perf_counter() - started,
            ", ".join(f"{k} p={t['p_value']:.3g} value={t['value']:.3g}" for k, t in tests["training"].items()),
            new_labels or "none", final,
        )  # fmt: skip
    return result


def _on(test: dict[str, Any], alpha: float) -> bool:
    return bool(test["p_value"] < alpha and test["effect"] >= test["effect_floor"])


def _sample(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    return (df.sample(n=n, random_state=seed) if len(df) > n else df).reset_index(drop=True)


def _unseen(current: pd.DataFrame, reference: pd.DataFrame) -> set[str]:
    return set(current["label"]) - set(reference["label"])


def _tests(
    full: pd.DataFrame,
    current: pd.DataFrame,
    reference: pd.DataFrame,
    dcfg: Any,
    new_labels: set[str],
    auc: float | None = None,
) -> dict[str, Any]:
    from pipeline.monitoring import signals

    try:
        return signals.distribution_tests(current, reference, dcfg, new_labels, labels=full["label"], auc=auc)
    except ValueError as exc:  # sklearn: empty vocabulary, one-class split
        raise DriftCheckError(f"drift: the text domain classifier could not score this window: {exc}") from exc


def _load_champion(champion_uri: str) -> Any | None:
    """The champion's intent model (with ``probe`` and ``labels``), or None for a plain pyfunc."""
    try:
        model = mlflow.pyfunc.load_model(champion_uri).unwrap_python_model()
    except Exception as exc:  # MLflow raises many types; the message names the URI
        raise DriftCheckError(f"drift: cannot load the champion {champion_uri}: {exc}") from exc
    if not hasattr(model, "probe"):
        log.warning(
            "drift: %s is not an intent model (no probe): embedding, prediction and performance skipped", champion_uri
        )
        return None
    return model


def _model_signals(
    model: Any, current: pd.DataFrame, reference: pd.DataFrame, dcfg: Any, calibration_uri: str | None
) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]:
    from pipeline.monitoring import signals

    calibration = _read([calibration_uri], "calibration") if calibration_uri and paths.exists(calibration_uri) else None
    temperature = signals.calibration_temperature(model, calibration)
    return signals.model_signals(model, current, reference, dcfg, temperature=temperature)


def _read(uris: Sequence[str], role: str) -> pd.DataFrame:
    """``text`` and ``label`` of the files concatenated, rows with either missing dropped."""
    names = ",".join(Path(str(u)).name for u in uris) or "(no files)"
    frames = []
    for uri in uris:
        try:
            frame = pd.read_parquet(paths.local_path(uri))
        except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
            raise DriftCheckError(f"drift: cannot read {role} file {uri}: {exc}") from exc
        missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
        if missing:
            raise DriftCheckError(f"drift: {role} file {uri} lacks column(s) {missing}")
        keep = ["text", "label"] + (["timestamp"] if "timestamp" in frame.columns else [])
        frames.append(frame[keep])
        log.info("drift: read %s file %s (%d rows)", role, uri, len(frame))
    if not frames:
        raise DriftCheckError(f"drift: no {role} files given")
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
    usable = df.dropna(subset=list(REQUIRED_COLUMNS))
    if len(usable) < len(df):
        log.warning("drift: %d %s rows without text or label ignored", len(df) - len(usable), role)
    if usable.empty:
        raise DriftCheckError(f"drift: {role} data is empty ({len(df)} rows, none with text and label) in {names}")
    usable = usable.reset_index(drop=True)
    return usable.assign(text=usable["text"].astype(str), label=usable["label"].astype(str))


def _report(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    cfg: PipelineConfig,
    pipeline_run_id: str,
    current_uris: Sequence[str],
    reference_uri: str,
) -> Any:
    # Evidently's telemetry lives in its UI service, not in Report; keep it off should that change
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("EVIDENTLY_DISABLE_TELEMETRY", "1")
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from sklearn.exceptions import ConvergenceWarning

    definition = DataDefinition(text_columns=["text"], categorical_columns=["label"])
    report = Report(
        [
            ValueDrift(column="text", method=TEXT_METHOD, threshold=cfg.drift.text_drift_threshold),
            ValueDrift(column="label", method=LABEL_METHOD, threshold=cfg.drift.label_drift_threshold),
        ],
        include_tests=True,  # shows pass/fail per column in the HTML
    )
    try:
        with warnings.catch_warnings():
            # the domain classifier stops at Evidently's fixed max_iter=50; its AUC is what we use
            warnings.filterwarnings("ignore", category=ConvergenceWarning)
            return report.run(
                Dataset.from_pandas(current[["text", "label"]], data_definition=definition),
                Dataset.from_pandas(reference[["text", "label"]], data_definition=definition),
                timestamp=_window_end(current),
                metadata={
                    "pipeline_run_id": pipeline_run_id,
                    "reference_uri": reference_uri,
                    "current_uris": ",".join(str(u) for u in current_uris),
                },
                tags=[STEP],
            )
    except ValueError as exc:
        # e.g. sklearn's "empty vocabulary" when every message is made of stop words, or a sample too
        # small for the domain classifier's split to hold both classes
        names = ",".join(Path(str(u)).name for u in current_uris)
        raise DriftCheckError(f"drift: Evidently could not compare {names} with {reference_uri}: {exc}") from exc


def _window_end(current: pd.DataFrame) -> datetime | None:
    """The snapshot's timestamp: the latest event of the window, not the wall clock (None: Evidently's now)."""
    if "timestamp" not in current.columns:
        return None
    latest = pd.to_datetime(current["timestamp"], utc=True, errors="coerce").max()
    return None if pd.isna(latest) else latest.to_pydatetime()


def _score(snapshot: dict[str, Any], column: str) -> float:
    """The ``ValueDrift`` score of ``column`` from ``Snapshot.dict()``.

    Evidently 0.7 lists each metric as ``{"id", "metric_name", "config": {"type":
    "evidently:metric_v2:ValueDrift", "column", "method", "threshold"}, "value": <float>}``.
    """
    for metric in snapshot.get("metrics", []):
        config = metric.get("config") or {}
        if str(config.get("type", "")).endswith(":ValueDrift") and config.get("column") == column:
            value = metric.get("value")
            if isinstance(value, dict):  # guard against a future result shape {"value": ...}
                value = value.get("value")
            try:
                score = float(value)  # type: ignore[arg-type]
            except (TypeError, ValueError) as exc:
                raise DriftCheckError(f"drift: Evidently returned no numeric score for {column!r}: {value!r}") from exc
            if not math.isfinite(score):
                raise DriftCheckError(f"drift: Evidently returned a non-finite score for {column!r}: {score}")
            return score
    raise DriftCheckError(f"drift: the Evidently report has no ValueDrift result for column {column!r}")
