"""Drift step: does the new window look like the data the champion was trained on?

An Evidently 0.7 ``Report`` with two ``ValueDrift`` metrics compares the current window (the
curated files, concatenated) with a seeded sample of the champion's training data:

- ``text``: Evidently's ``abs_text_content_drift``, a domain classifier (TF-IDF + SGD, half the
  rows to train, half to score) that tries to tell current from reference messages; its score is
  the ROC AUC, 0.5 when the two cannot be told apart. Drift when it is above
  ``drift.text_drift_threshold``.
- ``label``: Evidently's ``jensenshannon`` on the label shares; a label the reference never saw
  has a reference share of 0, so a new intent raises the distance by itself. Drift when it is at or
  above ``drift.label_drift_threshold``.

The comparisons are Evidently's own (``>`` for the text, ``>=`` for the labels), so the flags here
agree with the tests shown in the HTML report.

Files written to ``out_dir``: ``drift_report.html`` and ``drift_report.json`` (Evidently's
snapshot: ``{"metrics": [{"config": {"column": ..., "method": ...}, "value": score}, ...], "tests":
[...]}``) and ``_SUCCESS``. With no reference (the first model) nothing is compared: the result says
``has_reference=False`` and only the marker is written. Safe to retry: a finished step returns its
recorded result; the domain classifier, the split and the reference sample are all seeded.

Cost: about 0.2 s for 2000 vs 2000 short messages after imports (Evidently's import takes ~5 s).
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
LABEL_METHOD = "jensenshannon"
REQUIRED_COLUMNS = ("text", "label")
HTML_FILE = "drift_report.html"
JSON_FILE = "drift_report.json"


def run(
    cfg: PipelineConfig, *, current_uris: list[str], reference_uri: str | None, out_dir: str, pipeline_run_id: str
) -> DriftResult:
    """Compare the current window with the reference and return the recorded result.

    Raises :class:`DriftCheckError` when the current data is empty or unreadable, when the reference
    is given but unusable, or when Evidently cannot compute a score.
    """
    done = storage.load_done(out_dir, DriftResult)
    if done is not None:
        log.info(
            "drift: %s already finished (drift_detected=%s), returning the recorded result",
            out_dir,
            done.drift_detected,
        )
        return done

    dcfg = cfg.drift
    final = Path(out_dir)
    with tracking.step_run(cfg, pipeline_run_id, STEP) as mlrun:
        mlflow.set_tags(
            {
                "drift.has_reference": str(reference_uri is not None).lower(),
                "drift.reference_uri": reference_uri or "none",
                "drift.current_files": ",".join(Path(str(u)).name for u in current_uris)[:5000],
            }
        )
        mlflow.log_params(
            {
                "drift.text_method": TEXT_METHOD,
                "drift.label_method": LABEL_METHOD,
                "drift.text_drift_threshold": dcfg.text_drift_threshold,
                "drift.label_drift_threshold": dcfg.label_drift_threshold,
                "drift.reference_sample_size": dcfg.reference_sample_size,
                "drift.seed": dcfg.seed,
            }
        )
        current = _read(current_uris, "current")
        if reference_uri is None:
            log.info("drift: no reference (first model): %d current rows, nothing to compare", len(current))
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
                current_rows=len(current),
                mlflow_run_id=mlrun.info.run_id,
            )
            mlflow.log_metrics({"rows": len(current), "drift_detected": 0})
            with storage.staged_dir(out_dir) as stage:
                storage.write_done(stage, result)
            return result

        reference = _read([reference_uri], "reference")
        if len(reference) > dcfg.reference_sample_size:
            reference = reference.sample(n=dcfg.reference_sample_size, random_state=dcfg.seed)
        reference = reference.reset_index(drop=True)

        started = time.perf_counter()
        with storage.staged_dir(out_dir) as stage:
            snapshot = _report(current, reference, cfg, pipeline_run_id, current_uris, reference_uri)
            snapshot.save_html(str(stage / HTML_FILE))
            snapshot.save_json(str(stage / JSON_FILE))
            text_score = _score(snapshot.dict(), "text")
            label_score = _score(snapshot.dict(), "label")
            text_drift = text_score > dcfg.text_drift_threshold
            label_drift = label_score >= dcfg.label_drift_threshold
            result = DriftResult(
                drift_detected=text_drift or label_drift,
                has_reference=True,
                text_drift_score=text_score,
                label_drift_score=label_score,
                text_drift_detected=text_drift,
                label_drift_detected=label_drift,
                report_html_uri=str(final / HTML_FILE),
                report_json_uri=str(final / JSON_FILE),
                reference_rows=len(reference),
                current_rows=len(current),
                mlflow_run_id=mlrun.info.run_id,
            )
            mlflow.log_artifact(str(stage / HTML_FILE), STEP)
            mlflow.log_artifact(str(stage / JSON_FILE), STEP)
            mlflow.log_metrics(
                {
                    "text_drift_score": text_score,
                    "label_drift_score": label_score,
                    "drift_detected": int(result.drift_detected),
                    "rows": len(current),
                    "reference_rows": len(reference),
                }
            )
            storage.write_done(stage, result)
        log.info(
            "drift: %d current vs %d reference rows: text ROC AUC %.3f (threshold %.2f, drift=%s), "
            "label JS distance %.3f (threshold %.2f, drift=%s), %.2fs; wrote %s",
            len(current), len(reference), text_score, dcfg.text_drift_threshold, text_drift,
            label_score, dcfg.label_drift_threshold, label_drift, time.perf_counter() - started, final,
        )  # fmt: skip
    return result


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
