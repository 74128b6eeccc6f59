"""Validate step: a Great Expectations suite over the curated window, before anything trains on it.

Two batches run in one checkpoint:

- ``curated_rows``: the curated Parquet files concatenated (the data contract's columns, non-null
  text and label, known labels, text length, row count, share of repeated texts, no PII left);
- ``label_counts``: a derived frame with one row per label present (``label``, ``rows``), because
  GX has no per-group count expectation; its one expectation is the minimum rows per class;
- ``pii_scan``: a derived frame with one row per curated row (``pii``: the columns and kinds of
  personal data found there by :func:`pipeline.data.pii.find_pii`, null when clean), because PII is
  decided by checksums and number plans, not by a regex alone; its expectation is "all null".

The suites and the wording of their failures live in :mod:`pipeline.data.contract`; this module
runs them, publishes the report and the quarantine, and logs to MLflow.

A window needs at least ``validate.min_classes`` distinct labels: a single-class window would give a
"classifier" with perfect macro-F1 on its one class.

Files written to ``out_dir``:

- ``validation_result.json``: the GX results of both batches (``COMPLETE`` result format);
- ``data_docs/index.html``: the GX Data Docs site of this run;
- ``quarantine.parquet``: rows that failed a row-level expectation, with a ``reason`` column naming
  the expectation, column, threshold and value, and ``data_file`` naming the curated file;
- ``_SUCCESS`` when every expectation passed, ``_FAILED`` otherwise.

A failed window is still published (reports and quarantine are what a person needs to look at),
but with ``_FAILED`` instead of ``_SUCCESS``: a retry of the same run validates again and replaces
the folder, and a retry after a success returns the recorded result. The step then raises
:class:`~pipeline.errors.DataValidationError` listing every failed expectation, which also marks
the MLflow run FAILED.

PII found by the suite is masked (``[PII:email]``) in the JSON, the Data Docs, the logs and the
error message, which travel to MLflow and Airflow; ``quarantine.parquet`` holds the text scrubbed
with the same patterns (``[EMAIL]``...), so no step persists PII even when ingest's scrubbing was
off or bypassed; the reason column still says which check the row failed.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from pipeline import paths, storage, tracking
from pipeline.config import PipelineConfig, ValidateConfig
from pipeline.data import bounds
from pipeline.data.contract import (
    CONTRACT_COLUMNS,
    COUNTS_SUITE,
    PII_COLUMNS,
    PII_SUITE,
    ROWS_SUITE,
    STATS_SUITE,
    Failure,
    describe,
    expectations,
    label_counts,
    mask_result,
    pii_scan,
    stats_frame,
)
from pipeline.data.pii import custom_kinds, mask_pii, scrub_pii
from pipeline.errors import DataValidationError
from pipeline.results import ValidateResult

log = logging.getLogger(__name__)

STEP = "validate"
RESULT_FILE = "validation_result.json"
QUARANTINE_FILE = "quarantine.parquet"
DATA_DOCS_DIR = "data_docs"
FAILED_MARKER = "_FAILED"


@dataclass
class _Outcome:
    success: bool
    evaluated: int
    failures: list[Failure]  # error severity: the run stops
    warnings: list[Failure]  # warning severity: reported, the run goes on
    result_json: dict[str, Any]


@dataclass
class _Plan:
    """What the suites check beyond the config: time bounds, segments, learned bounds."""

    now: Any
    oldest: Any
    segments: tuple[str, ...]
    learned: bounds.Learned | None
    stats: dict[str, float]
    stat_bounds: dict[str, tuple[float | None, float | None]]


def _plan(cfg: PipelineConfig, vcfg: ValidateConfig, df: pd.DataFrame, reference_uris: Sequence[str],
          window_start: str | None) -> _Plan:  # fmt: skip
    learned = None
    if reference_uris:
        try:
            ref = pd.concat([pd.read_parquet(paths.local_path(u)) for u in reference_uris], ignore_index=True)
            learned = bounds.learn(ref)
        except (OSError, ValueError) as exc:  # a lost reference weakens the suite, it does not fail the window
            log.warning("validate: reference %s cannot be read (%s): learned bounds skipped", list(reference_uris), exc)
    stats = bounds.window_stats(df, learned)
    learned_bounds = (
        bounds.stat_bounds(
            learned,
            length_factor=vcfg.length_factor,
            max_class_shift=vcfg.max_class_shift,
            language_tolerance=vcfg.language_tolerance,
            duplicate_tolerance=vcfg.duplicate_tolerance,
        )
        if learned is not None
        else {}
    )
    now = pd.Timestamp.now(tz="UTC") + pd.Timedelta(seconds=vcfg.future_skew_s)
    oldest = None
    if window_start and vcfg.max_lateness_days is not None:
        oldest = pd.Timestamp(str(window_start)[:10], tz="UTC") - pd.Timedelta(days=vcfg.max_lateness_days)
    has_segments = "segment" in df.columns and bool(df["segment"].notna().any())
    segments = tuple(vcfg.segments) or (learned.segments if learned is not None else ())
    return _Plan(
        now.to_pydatetime(),
        None if oldest is None else oldest.to_pydatetime(),
        segments if has_segments else (),
        learned,
        stats,
        {k: v for k, v in learned_bounds.items() if k in stats},
    )


def run(
    cfg: PipelineConfig,
    *,
    data_uris: list[str],
    out_dir: str,
    pipeline_run_id: str,
    reference_uris: Sequence[str] = (),
    window_start: str | None = None,
) -> ValidateResult:
    """Validate the curated files ``data_uris`` (concatenated) and return the recorded result.

    ``reference_uris``: the window the champion answered, to learn bounds from (none for the first
    model); ``window_start``: the run's window start, for stale timestamps. Raises
    :class:`DataValidationError` when an error-severity check fails (after publishing the report
    and the quarantine under ``out_dir``) or when a file cannot be read; warning-severity failures
    are logged and recorded in the result. Safe to retry: a finished success is returned as
    recorded; a failure or a crash is validated again from scratch.
    """
    done = storage.load_done(out_dir, ValidateResult)
    if done is not None:
        log.info("validate: %s already finished (success=%s), returning the recorded result", out_dir, done.success)
        return done

    vcfg = cfg.validate_cfg
    final = str(out_dir)
    files = ",".join(Path(str(u)).name for u in data_uris)
    with tracking.step_run(cfg, pipeline_run_id, STEP) as mlrun:
        mlflow.set_tag("data_files", files[:5000])
        mlflow.log_params(_params(vcfg))
        df, origin, missing_by_file = _read_window(data_uris)
        vcfg = accepted_labels(vcfg, df)
        plan = _plan(cfg, vcfg, df, reference_uris, window_start)
        if plan.learned is not None:
            mlflow.log_dict({"learned": plan.learned.to_dict(), "stats": plan.stats, "bounds": plan.stat_bounds},
                            "validation/learned_bounds.json")  # fmt: skip
        started = time.perf_counter()
        with storage.staged_dir(out_dir) as stage:
            outcome = _run_suites(
                df, vcfg, stage / DATA_DOCS_DIR, pipeline_run_id, plan, custom_kinds(cfg.ingest.pii_patterns)
            )
            storage.write_json_atomic(stage / RESULT_FILE, outcome.result_json)
            quarantine = _quarantine(df, origin, outcome.failures)
            if len(quarantine):
                quarantine.to_parquet(stage / QUARANTINE_FILE, index=False)
            docs_index = stage / DATA_DOCS_DIR / "index.html"
            result = ValidateResult(
                success=outcome.success,
                expectations_evaluated=outcome.evaluated,
                expectations_failed=len(outcome.failures),
                result_uri=paths.join(final, RESULT_FILE),
                data_docs_uri=paths.join(final, DATA_DOCS_DIR, "index.html") if docs_index.is_file() else None,
                quarantine_uri=paths.join(final, QUARANTINE_FILE) if len(quarantine) else None,
                rows_quarantined=len(quarantine),
                mlflow_run_id=mlrun.info.run_id,
                rows_validated=len(df),
                warnings=tuple(w.summary for w in outcome.warnings),
            )
            # logged from the stage, before publishing: a failed upload leaves nothing half-done
            mlflow.log_artifact(str(stage / RESULT_FILE), "validation")
            if docs_index.is_file():
                mlflow.log_artifacts(str(stage / DATA_DOCS_DIR), DATA_DOCS_DIR)
            mlflow.log_metrics(
                {
                    "expectations_evaluated": outcome.evaluated,
                    "expectations_failed": len(outcome.failures),
                    "expectations_warned": len(outcome.warnings),
                    "rows": len(df),
                    "rows_quarantined": len(quarantine),
                }
            )
            message = _message(outcome, files, missing_by_file)
            if outcome.success:
                storage.write_done(stage, result)
            else:
                storage.write_json_atomic(stage / FAILED_MARKER, {**result.to_dict(), "error": message})
        for w in outcome.warnings:
            log.warning("validate: %s", w.summary)
        log.info(
            "validate: %d rows from %s, %d of %d expectations failed (%d more warned), %d rows quarantined, %.2fs; "
            "wrote %s",
            len(df), files, len(outcome.failures), outcome.evaluated, len(outcome.warnings), len(quarantine),
            time.perf_counter() - started, final,
        )  # fmt: skip
        if not outcome.success:
            raise DataValidationError(message)
    return result


def accepted_labels(vcfg: ValidateConfig, df: pd.DataFrame) -> ValidateConfig:
    """With ``new_labels: accept``, the window's new labels join the known set for this run (ingest
    already held out those too rare to train on); otherwise the configured set, unchanged."""
    if vcfg.new_labels != "accept" or "label" not in df.columns:
        return vcfg
    new = sorted(set(df["label"].dropna().astype(str)) - set(vcfg.labels))
    if not new:
        return vcfg
    log.warning("validate: new label(s) %s accepted for this run (validate.new_labels: accept)", new)
    return vcfg.model_copy(update={"labels": (*vcfg.labels, *new)})


def _params(vcfg: ValidateConfig) -> dict[str, Any]:
    return {f"validate.{k}": ",".join(v) if isinstance(v, tuple) else v for k, v in vcfg.model_dump().items()}


def _read_window(data_uris: Sequence[str]) -> tuple[pd.DataFrame, pd.Series, dict[str, list[str]]]:
    """The files concatenated (only columns every file has, so a column missing anywhere fails the
    schema expectation), per row the name of the file it came from, and the contract columns each
    incomplete file lacks."""
    if not data_uris:
        raise DataValidationError("validate: no data files given")
    frames: list[pd.DataFrame] = []
    missing_by_file: dict[str, list[str]] = {}
    for uri in data_uris:
        try:
            frame = pd.read_parquet(paths.local_path(uri))
        except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
            raise DataValidationError(f"validate: cannot read {uri}: {exc}") from exc
        log.info("validate: read %s (%d rows)", uri, len(frame))
        missing = [c for c in CONTRACT_COLUMNS if c not in frame.columns]
        if missing:
            log.warning("validate: %s lacks contract columns %s", uri, missing)
            missing_by_file[Path(str(uri)).name] = missing
        frames.append(frame)
    columns = [c for c in frames[0].columns if all(c in f.columns for f in frames)]
    df = pd.concat([f[columns] for f in frames], ignore_index=True)
    origin = pd.Series(
        [Path(str(uri)).name for uri, f in zip(data_uris, frames, strict=True) for _ in range(len(f))], dtype=object
    )
    return df, origin, missing_by_file


def _context(docs_dir: Path) -> Any:
    """An in-memory GX context whose only file output is the Data Docs site in ``docs_dir``."""
    os.environ["GX_ANALYTICS_ENABLED"] = "False"  # read by GX at import and context creation
    # GX logs hundreds of INFO lines about its own API registry on import: keep the task log readable
    logging.getLogger("great_expectations._docs_decorators").setLevel(logging.WARNING)
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        data_docs_sites={
            "local_site": {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _run_suites(
    df: pd.DataFrame, vcfg: ValidateConfig, docs_dir: Path, pipeline_run_id: str, plan: _Plan, extra: tuple[Any, ...]
) -> _Outcome:
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    ctx = _context(docs_dir)
    counts = label_counts(df)
    scan = pii_scan(df, extra)
    suites = expectations(vcfg, now=plan.now, oldest=plan.oldest, segments=plan.segments, stat_bounds=plan.stat_bounds)
    frames = {ROWS_SUITE: df, COUNTS_SUITE: counts, PII_SUITE: scan, STATS_SUITE: stats_frame(plan.stats)}
    frames = {k: v for k, v in frames.items() if k in suites}
    # A checkpoint passes the same batch parameters to every validation definition, so two
    # in-memory dataframes cannot be told apart: each batch is a Parquet asset in a scratch folder.
    with tempfile.TemporaryDirectory(prefix="gx-batches-") as scratch:
        source = ctx.data_sources.add_pandas("curated_window")
        definitions = []
        for name, frame in frames.items():
            path = Path(scratch) / f"{name}.parquet"
            frame.to_parquet(path, index=False)
            batch = source.add_parquet_asset(name, path=path).add_batch_definition_whole_dataframe("all")
            suite = ctx.suites.add(gx.ExpectationSuite(name=name, expectations=suites[name]))
            definitions.append(
                ctx.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
            )
        checkpoint = ctx.checkpoints.add(
            gx.Checkpoint(
                name=STEP,
                validation_definitions=definitions,
                # no UpdateDataDocsAction: the docs are built below, after PII is masked in the results
                actions=[],
                result_format={"result_format": "COMPLETE", "return_unexpected_index_query": False},
            )
        )
        checkpoint_result = checkpoint.run(run_id=RunIdentifier(run_name=pipeline_run_id))

    failures: list[Failure] = []
    warned: list[Failure] = []
    evaluated = 0
    store = ctx.validation_results_store
    for key, suite_result in checkpoint_result.run_results.items():
        for er in suite_result.results:
            evaluated += 1
            if not er.success:
                failure = describe(er, df, counts, vcfg, plan.stats, scan)
                failure.table_level = failure.table_level or er.expectation_config.type.startswith("expect_table_")
                # the summary and reasons travel to logs, MLflow and the quarantine: never with PII
                failure.summary = mask_pii(failure.summary, extra)
                failure.row_reasons = {i: mask_pii(r, extra) for i, r in failure.row_reasons.items()}
                (failures if failure.severity == "error" else warned).append(failure)
            mask_result(er)
        store.set(key, suite_result)  # store the masked results: the docs are rendered from the store
    ctx.build_data_docs()
    _prune_docs(docs_dir)
    failures.sort(key=lambda f: not f.table_level)  # schema and row count first: they explain the rest

    success = not failures
    result_json = {
        "success": success,
        "run_name": pipeline_run_id,
        "expectations_evaluated": evaluated,
        "expectations_failed": len(failures),
        "failures": [f.summary for f in failures],
        "warnings": [f.summary for f in warned],
        "learned_bounds": None if plan.learned is None else plan.learned.to_dict(),
        "window_stats": plan.stats,
        "validation_results": [r.to_json_dict() for r in checkpoint_result.run_results.values()],
    }
    return _Outcome(success, evaluated, failures, warned, result_json)


def _prune_docs(docs_dir: Path) -> None:
    """Drop the site's static images that no page uses: GX ships 3 MB of tutorial GIFs with every
    site, which would otherwise be uploaded to MLflow on every run."""
    images = docs_dir / "static" / "images"
    if not images.is_dir():
        return
    pages = " ".join(p.read_text(errors="ignore") for p in docs_dir.rglob("*") if p.suffix in {".html", ".css", ".js"})
    for image in images.iterdir():
        if image.is_file() and image.name not in pages:
            image.unlink()


def _quarantine(df: pd.DataFrame, origin: pd.Series, failures: list[Failure]) -> pd.DataFrame:
    """The rows named by failed row-level expectations, each once, with every reason joined."""
    reasons: dict[int, list[str]] = defaultdict(list)
    for failure in failures:
        for i, reason in failure.row_reasons.items():
            reasons[i].append(reason)
    if not reasons:
        return df.iloc[0:0].assign(reason=pd.Series(dtype=object), data_file=pd.Series(dtype=object))
    index = sorted(reasons)
    out = df.iloc[index].copy()
    for col in PII_COLUMNS:
        if col in out:
            out[col] = [scrub_pii(v)[0] if isinstance(v, str) else v for v in out[col]]
    out["reason"] = ["; ".join(reasons[i]) for i in index]
    out["data_file"] = origin.iloc[index].to_numpy()
    return out.reset_index(drop=True)


def _message(outcome: _Outcome, files: str, missing_by_file: dict[str, list[str]]) -> str:
    if outcome.success:
        return f"validate: all {outcome.evaluated} expectations passed on {files}"
    head = f"validate: {len(outcome.failures)} of {outcome.evaluated} expectations failed on {files}: "
    where = [f"{name} lacks columns {cols}" for name, cols in missing_by_file.items()]
    return head + " ; ".join([f.summary for f in outcome.failures] + where)


def read_failure(out_dir: str | Path) -> dict[str, Any] | None:
    """The ``_FAILED`` marker of a published failed validation (its result and error), else ``None``."""
    text = storage.read_text(paths.join(out_dir, FAILED_MARKER))
    return None if text is None else json.loads(text)
