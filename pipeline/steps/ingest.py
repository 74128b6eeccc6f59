"""Ingest step: every configured source -> cleaned, PII-free, de-duplicated, split Parquet window + manifest.

Reads the sources (:mod:`pipeline.data.readers`: landing folders, SQL tables or queries, saved
Hugging Face datasets, feedback corrections), cleans the rows (:mod:`pipeline.data.cleaning`) and
writes under ``out_dir`` (published in one rename, ``_SUCCESS`` marker last):

- ``train.parquet``, ``val.parquet``, ``test.parquet``: ``example_id, text, label, timestamp, segment,
  language, message_id, source, source_file, source_row`` (a row names its landing file and position)
- ``quarantine.parquet`` (only when a row was set aside): the rows with ``reason`` (readable, e.g.
  ``near_duplicate of <example_id>``), ``reason_code``, ``source``, ``source_file`` and ``source_row``
- ``corrections.parquet`` (only when feedback relabelled rows): message id, old and new label, when
- ``manifest.json``: the sources, every unit read (file with sha256, SQL read with its high-water
  marks), the accounting (``rows read = kept + quarantined by reason + duplicates exact and near +
  ingested before + corrections applied``, asserted here before anything is written), PII
  replacements per kind, languages, label counts, split sizes, skipped landing entries
- ``row_keys.parquet`` and ``neardup_signatures.parquet``: this run's parts of the row watermark and
  of the cross-window near-duplicate index (:mod:`pipeline.data.ledger`)

The manifest and the accounting are logged to an MLflow ``ingest`` run; the manifest's sha256 tags
it, and the model versions trained on the window (register).

The consumer's watermarks are not touched here, except when no row of the window can train: the
run's last step calls :func:`commit` once the run has succeeded, so a run that fails later
(validation, an unreachable tracking server) leaves its rows pending for the next run. A window
whose rows were all quarantined raises :class:`EmptyWindowError` ("nothing to do", not a failure).

A retry is safe: a finished ``out_dir`` is returned as recorded without reading any source.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import paths, storage, tracking
from pipeline.config import PipelineConfig
from pipeline.data import ledger, readers
from pipeline.data.cleaning import REASON_CODES, clean
from pipeline.data.contract import CONTRACT_COLUMNS
from pipeline.data.readers import Unit
from pipeline.data.split import split_stratified
from pipeline.data.watermark import Watermark
from pipeline.errors import EmptyWindowError, IngestError, NoNewDataError
from pipeline.results import IngestResult

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

STEP = "ingest"
OUTPUT_COLUMNS = CONTRACT_COLUMNS  # what validate's contract expects
# the rows set aside carry the raw timestamp (when it did not parse) and why
QUARANTINE_COLUMNS = (*OUTPUT_COLUMNS[:4], "timestamp_raw", *OUTPUT_COLUMNS[4:], "reason", "reason_code")


def _bound(value: str | None, name: str) -> date | None:
    """The UTC date of an ISO date or datetime window bound."""
    if value is None or str(value).strip() == "":
        return None
    s = str(value).strip()
    try:
        if len(s) == 10:
            return date.fromisoformat(s)
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError as exc:
        raise IngestError(f"{name} {value!r} is not an ISO 8601 date or datetime") from exc
    return (dt.astimezone(UTC) if dt.tzinfo else dt).date()


def _window_text(start: str | None, end: str | None) -> str:
    return f"[{start or 'open'} .. {end or 'open'}]"


def _write_parquet(frame: pd.DataFrame, path: Path, columns: tuple[str, ...]) -> None:
    out = frame.loc[:, list(columns)].reset_index(drop=True)
    for col in (
        "text", "label", "segment", "language", "message_id", "source", "source_file", "example_id",
        "timestamp_raw", "reason", "reason_code",
    ):  # fmt: skip
        if col in out.columns:
            out[col] = out[col].astype("string")
    out.to_parquet(path, index=False)


def commit(cfg: PipelineConfig, result: IngestResult) -> int:
    """Mark what a published ingest read as consumed by its consumer; return how many units were new.

    Called once the run that read them has succeeded (the last task of a DAG run, the end of
    ``retrain run``): the run's row keys and near-duplicate signatures join the consumer's ledgers
    (:mod:`pipeline.data.ledger`), its landing files' hashes the file ledger, and each SQL or feedback
    source's high-water mark moves to the newest row read. Idempotent: a retry rewrites the same parts.
    """
    out_dir = result.manifest_uri.rsplit("/", 1)[0]
    manifest = json.loads(storage.read_text(result.manifest_uri) or "{}")
    ledger.commit_parts(cfg.state_dir_uri, result.consumer, result.pipeline_run_id, out_dir)
    return _commit_units(cfg, result.consumer, result.pipeline_run_id, manifest.get("units", []))


def _commit_units(cfg: PipelineConfig, consumer: str, run_id: str, units: list[dict[str, Any]]) -> int:
    wm = Watermark.load(cfg.state_dir_uri, consumer)
    files = [
        (u["file_key"][0], u["file_key"][1])
        for u in units
        if u.get("file_key")
        and wm.entries.get(str(Path(u["file_key"][0]).expanduser().resolve()), {}).get("sha256") != u["file_key"][1]
    ]
    if files:
        wm.commit(files, run_id)
    for u in units:
        if u.get("high_water"):
            storage.write_json_atomic(
                readers.high_water_path(cfg, consumer, u["source"]),
                {"high_water": u["high_water"], "pipeline_run_id": run_id},
            )
    log.info("watermark %s: %d file(s) of %s committed for consumer '%s'", wm.path, len(files), run_id, consumer)
    return len(files)


def _empty_window(result: IngestResult) -> EmptyWindowError:
    reasons = ", ".join(f"{k} {v}" for k, v in result.quarantine_reasons.items())
    return EmptyWindowError(
        f"window {_window_text(result.window_start, result.window_end)}: none of the {result.rows_read} rows of "
        f"{len(result.files)} unit(s) can train ({reasons or 'none quarantined'}; {result.rows_repeated} ingested "
        f"before); nothing to validate or train on; see {result.quarantine_uri}"
    )


def _frame_for(units: list[Unit]) -> list[dict[str, Any]]:
    return [
        {
            "source": u.source,
            "name": u.name,
            "rows_read": u.rows,
            **u.meta,
            "file_key": list(u.file_key) if u.file_key else None,
            "high_water": u.high_water,
        }
        for u in units
    ]


def _no_new(
    cfg: PipelineConfig, consumer: str, run_id: str, window: str, read: readers.Read, repeated: int
) -> NoNewDataError:
    names = [s.name for s in cfg.ingest.resolved_sources()]
    if read.units:  # every row was ingested before (a renamed or re-sent copy): nothing new can come from them
        _commit_units(cfg, consumer, run_id, _frame_for(read.units))
    what = (
        f"{len(read.units)} unit(s) read, all {repeated} row(s) ingested before"
        if read.units
        else "every file and row in the window ingested already"
    )
    return NoNewDataError(f"sources {names}: no new rows in window {window} for consumer '{consumer}' ({what})")


def run(
    cfg: PipelineConfig,
    *,
    landing_uri: str | None = None,
    out_dir: str,
    pipeline_run_id: str,
    consumer: str,
    window_start: str | None = None,
    window_end: str | None = None,
) -> IngestResult:
    """Ingest what the configured sources hold for the window that ``consumer`` has not ingested yet.

    Landing files are picked by the date in their name (``file_date``), inclusive of
    ``window_end``'s date; SQL and feedback rows by their timestamp, up to the end of that day.
    ``landing_uri`` overrides the folder of a landing source with no ``path``. Raises
    :class:`IngestError` (missing folder, unreadable file or table, column mapping) or
    :class:`NoNewDataError` (nothing new); either leaves no ``out_dir`` and the watermarks untouched
    (rows all ingested before excepted: their files are marked read).
    """
    done = storage.load_done(out_dir, IngestResult)
    if done is not None:
        log.info("ingest already done in %s: returning the recorded result", out_dir)
        if done.rows_kept == 0:
            raise _empty_window(done)
        return done

    lo, hi = _bound(window_start, "window_start"), _bound(window_end, "window_end")
    window = _window_text(window_start, window_end)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    read = readers.read_sources(cfg, consumer=consumer, run_id=pipeline_run_id, lo=lo, hi=hi, landing_uri=landing_uri)
    timings["read_s"] = time.perf_counter() - t0
    if read.frame.empty:
        raise _no_new(cfg, consumer, pipeline_run_id, window, read, 0)
    seen = ledger.load_row_keys(cfg.state_dir_uri, consumer, pipeline_run_id)
    prior_ids, prior_sigs = (
        ledger.load_signatures(cfg.state_dir_uri, consumer, pipeline_run_id)
        if cfg.ingest.near_duplicates.enabled
        else ([], None)
    )
    feedback_sources = {s.name for s in cfg.ingest.resolved_sources() if s.kind == "feedback"}
    log.info(
        "ingest for consumer '%s', window %s: %d row(s) from %d unit(s); %d rows in the row watermark, %d in the "
        "near-duplicate index",
        consumer, window, len(read.frame), len(read.units), len(seen), len(prior_ids),
    )  # fmt: skip
    t0 = time.perf_counter()
    cleaned = clean(
        read.frame,
        cfg,
        seen_keys=seen,
        feedback_sources=feedback_sources,
        prior_ids=prior_ids,
        prior_sigs=prior_sigs,
    )
    timings.update(cleaned.timings)
    timings["cleaning_total_s"] = time.perf_counter() - t0
    accounting = cleaned.accounting()
    if not accounting["balanced"]:  # a bug, never bad input: stop before anything is written
        raise IngestError(f"ingest accounting does not balance for window {window}: {accounting}")
    if cleaned.repeated == len(read.frame):
        raise _no_new(cfg, consumer, pipeline_run_id, window, read, cleaned.repeated)

    kept, quarantined, pii_counts = cleaned.kept, cleaned.quarantined, cleaned.pii
    if cleaned.unknown_labels:
        what = {
            "fail": "validation will name them and fail the window",
            "hold_out": "their rows are held out in quarantine (reason new_label)",
            "accept": "accepted: the head grows for them (rarer than validate.min_rows_per_class: held out)",
        }[cfg.validate_cfg.new_labels]
        log.warning("labels not in validate.labels: %s; %s", cleaned.unknown_labels, what)
    units = _frame_for(read.units)
    for u in units:
        mine = (kept["source"] == u["source"]) & (kept["source_file"] == u["name"])
        u["rows_kept"] = int(mine.sum())
    split = cfg.ingest.split
    train, val, test = split_stratified(
        kept, val_fraction=split.val_fraction, test_fraction=split.test_fraction, seed=split.seed
    )

    final = str(out_dir)
    reasons = {code: int(n) for code, n in Counter(quarantined["reason_code"]).items()}
    label_counts = {str(k): int(v) for k, v in sorted(Counter(kept["label"]).items())}
    sizes = {"train": len(train), "val": len(val), "test": len(test)}
    manifest: dict[str, Any] = {
        "pipeline_run_id": pipeline_run_id,
        "consumer": consumer,
        "sources": [src.model_dump() for src in cfg.ingest.resolved_sources()],
        "window": {"start": window_start, "end": window_end},
        "units": units,
        "files": [u for u in units if u.get("file_key")],
        "accounting": accounting,
        "rows_read": len(read.frame),
        "rows_kept": len(kept),
        "rows_quarantined": len(quarantined),
        "quarantined_by_reason": {code: reasons.get(code, 0) for code in REASON_CODES},
        "rows_truncated": cleaned.truncated,
        "labels_normalized": cleaned.labels_normalized,
        "languages": cleaned.languages,
        "corrections": len(cleaned.corrections),
        "pii_scrubbed": cfg.ingest.scrub_pii,
        "pii_replacements": dict(sorted(pii_counts.items())),
        "label_counts": label_counts,
        "unknown_labels": cleaned.unknown_labels,
        "split_sizes": sizes,
        "split": split.model_dump(),
        "skipped": read.skipped,
    }
    manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n").encode()
    digest = hashlib.sha256(manifest_bytes).hexdigest()
    result = IngestResult(
        pipeline_run_id=pipeline_run_id,
        consumer=consumer,
        window_start=window_start,
        window_end=window_end,
        train_uri=paths.join(final, "train.parquet"),
        val_uri=paths.join(final, "val.parquet"),
        test_uri=paths.join(final, "test.parquet"),
        manifest_uri=paths.join(final, "manifest.json"),
        quarantine_uri=paths.join(final, "quarantine.parquet") if len(quarantined) else None,
        files=tuple(u["name"] for u in units),
        rows_read=len(read.frame),
        rows_kept=len(kept),
        rows_quarantined=len(quarantined),
        label_counts=label_counts,
        split_sizes=sizes,
        quarantine_reasons=dict(sorted(reasons.items())),
        pii_replacements=dict(sorted(pii_counts.items())),
        manifest_sha256=digest,
        rows_repeated=cleaned.repeated,
        corrections_applied=accounting["corrections_applied"],
    )

    exhausted = [u for u in units if u.get("rows_kept") == 0]
    with tracking.step_run(cfg, pipeline_run_id, STEP) as mlrun:
        result = replace(result, mlflow_run_id=mlrun.info.run_id)
        with storage.staged_dir(final) as stage:
            for name, frame in (("train", train), ("val", val), ("test", test)):
                _write_parquet(frame, stage / f"{name}.parquet", OUTPUT_COLUMNS)
            if len(quarantined):
                _write_parquet(quarantined.sort_values(["_order"]), stage / "quarantine.parquet", QUARANTINE_COLUMNS)
            if cleaned.corrections:
                import pandas as pd

                pd.DataFrame(cleaned.corrections).to_parquet(stage / "corrections.parquet", index=False)
            (stage / "manifest.json").write_bytes(manifest_bytes)
            ledger.write_row_keys(str(stage / ledger.ROW_KEYS_FILE), read.frame["row_key"].tolist())
            if cleaned.signatures is not None:
                ledger.write_signatures(
                    str(stage / ledger.SIGNATURES_FILE), kept["example_id"].tolist(), cleaned.signatures
                )
            _log_mlflow(stage, manifest, timings, digest)
            storage.write_done(stage, result)
    extra = ", quarantine.parquet" if len(quarantined) else ""
    log.info("wrote %s (train/val/test.parquet%s, manifest.json)", final, extra)

    if kept.empty:
        # every row is in quarantine with its reason: re-reading them can never train
        commit(cfg, result)
        log.info("all rows quarantined: %d unit(s) committed now", len(exhausted))
    log.info(
        "ingest summary: %d unit(s), %d rows read = %d kept (train %d / val %d / test %d) + %d quarantined %s + "
        "%d exact and %d near duplicates + %d ingested before + %d corrections applied; %d PII replacement(s); "
        "the watermarks are committed when the run succeeds",
        len(units), len(read.frame), len(kept), sizes["train"], sizes["val"], sizes["test"],
        sum(accounting["quarantined"].values()), {k: v for k, v in accounting["quarantined"].items() if v},
        accounting["duplicates"]["exact"], accounting["duplicates"]["near"], cleaned.repeated,
        accounting["corrections_applied"], sum(pii_counts.values()),
    )  # fmt: skip
    if kept.empty:
        raise _empty_window(result)
    return result


def _log_mlflow(stage: Path, manifest: dict[str, Any], timings: dict[str, float], digest: str) -> None:
    import mlflow

    acc = manifest["accounting"]
    mlflow.set_tags({"manifest_sha256": digest, "window_end": str(manifest["window"]["end"])})
    mlflow.log_params(
        {"sources": ",".join(s["name"] for s in manifest["sources"])[:500], "consumer": manifest["consumer"]}
    )
    metrics = {
        "rows_read": acc["rows_read"],
        "rows_kept": acc["kept"],
        "rows_repeated": acc["repeated"],
        "duplicates_exact": acc["duplicates"]["exact"],
        "duplicates_near": acc["duplicates"]["near"],
        "corrections_applied": acc["corrections_applied"],
        **{f"quarantined_{k}": v for k, v in acc["quarantined"].items()},
        **{f"pii_{k}": v for k, v in manifest["pii_replacements"].items()},
        **timings,
    }
    mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
    mlflow.log_artifact(str(stage / "manifest.json"), "ingest")
