"""Ingest step: landing files -> cleaned, PII-free, de-duplicated, split Parquet window + manifest.

Writes under ``out_dir`` (published in one rename, ``_SUCCESS`` marker last):

- ``train.parquet``, ``val.parquet``, ``test.parquet``: ``example_id, text, label, timestamp, segment,
  source_file``
- ``quarantine.parquet`` (only when a row was set aside): the rows with ``reason`` (readable, e.g.
  ``duplicate of <example_id>``), ``reason_code``, ``source_file`` and ``source_row``
- ``manifest.json``: files with sha256, rows read and kept, counts per reason, PII replacements per
  kind, label counts, labels outside ``validate.labels`` with their counts, split sizes, and every
  landing entry that was not read with the reason (``skipped``)

The consumer's watermark is not touched here, except for files whose every row went to quarantine:
the run's last step calls :func:`commit` once the run has succeeded, so a run that fails later
(validation, an unreachable tracking server) leaves its files pending for the next run. A window
whose rows were all quarantined raises :class:`EmptyWindowError` ("nothing to do", not a failure).

A retry is safe: a finished ``out_dir`` is returned as recorded without reading any landing file.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import paths, storage
from pipeline.config import PipelineConfig
from pipeline.data.cleaning import REASON_CODES, clean
from pipeline.data.sources import file_date, list_landing_files, read_landing_file
from pipeline.data.split import split_stratified
from pipeline.data.watermark import FileHash, Watermark
from pipeline.errors import EmptyWindowError, IngestError, NoNewDataError
from pipeline.paths import local_path
from pipeline.results import IngestResult

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

OUTPUT_COLUMNS = ("example_id", "text", "label", "timestamp", "segment", "source_file")
QUARANTINE_COLUMNS = (
    "example_id",
    "text",
    "label",
    "timestamp",
    "timestamp_raw",
    "segment",
    "source_file",
    "source_row",
    "reason",
    "reason_code",
)


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


def _read_files(files: list[FileHash], cfg: PipelineConfig) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    import pandas as pd

    frames, described = [], []
    for order, fh in enumerate(files):
        log.info("reading %s", fh.path)
        df = read_landing_file(fh.path, cfg.ingest.columns)
        df["source_file"] = fh.path.name
        df["source_row"] = range(len(df))
        df["_file_order"] = order
        frames.append(df)
        fd = file_date(fh.path)
        described.append(
            {
                "name": fh.path.name,
                "path": str(fh.path),
                "sha256": fh.sha256,
                "rows_read": len(df),
                "file_date": fd.isoformat() if fd else None,
            }
        )
    return pd.concat(frames, ignore_index=True), described


def _write_parquet(frame: pd.DataFrame, path: Path, columns: tuple[str, ...]) -> None:
    out = frame.loc[:, list(columns)].reset_index(drop=True)
    for col in ("text", "label", "segment", "source_file", "example_id", "timestamp_raw", "reason", "reason_code"):
        if col in out.columns:
            out[col] = out[col].astype("string")
    out.to_parquet(path, index=False)


def commit(cfg: PipelineConfig, result: IngestResult) -> int:
    """Mark the files of a published ingest as consumed by its consumer; return how many were new.

    Called once the run that read them has succeeded (the last task of a DAG run, the end of
    ``retrain run``). Idempotent: a file already committed with the same content is left alone.
    """
    manifest = json.loads(local_path(result.manifest_uri).read_text())
    wm = Watermark.load(cfg.state_dir_uri, result.consumer)
    todo = [
        (f["path"], f["sha256"])
        for f in manifest.get("files", [])
        if wm.entries.get(str(Path(f["path"]).expanduser().resolve()), {}).get("sha256") != f["sha256"]
    ]
    if todo:
        wm.commit(todo, result.pipeline_run_id)
    log.info(
        "watermark %s: %d file(s) of %s committed for consumer '%s'",
        wm.path,
        len(todo),
        result.pipeline_run_id,
        result.consumer,
    )
    return len(todo)


def _empty_window(result: IngestResult) -> EmptyWindowError:
    reasons = ", ".join(f"{k} {v}" for k, v in result.quarantine_reasons.items())
    return EmptyWindowError(
        f"window {_window_text(result.window_start, result.window_end)}: all {result.rows_read} rows of "
        f"{len(result.files)} new file(s) went to quarantine ({reasons}); nothing to validate or train on; "
        f"see {result.quarantine_uri}"
    )


def run(
    cfg: PipelineConfig,
    *,
    landing_uri: str,
    out_dir: str,
    pipeline_run_id: str,
    consumer: str,
    window_start: str | None = None,
    window_end: str | None = None,
) -> IngestResult:
    """Ingest the landing files of the window that ``consumer`` has not ingested yet.

    Files are picked by the date in their name (``file_date``), inclusive of ``window_end``'s date.
    Raises :class:`IngestError` (missing folder, no landing files, unreadable file, column mapping)
    or :class:`NoNewDataError` (nothing new in the window for this consumer); either leaves no
    ``out_dir`` and the watermark untouched.
    """
    done = storage.load_done(out_dir, IngestResult)
    if done is not None:
        log.info("ingest already done in %s: returning the recorded result", out_dir)
        if done.rows_kept == 0:
            raise _empty_window(done)
        return done

    if not paths.is_local(landing_uri):  # files are keyed by path in the watermark and listed live
        raise IngestError(
            f"landing folder {landing_uri}: must be a local or mounted path (file://); remote URLs are for "
            "artifact_root and state_dir"
        )
    landing = local_path(landing_uri)
    if not landing.is_dir():
        raise IngestError(f"landing folder {landing} does not exist")
    formats = cfg.ingest.formats
    listing = list_landing_files(landing, formats)
    all_files = listing.files
    for name, why in listing.skipped:
        log.warning("landing file %s not read: %s", landing / name, why)
    if not all_files:
        skipped = (
            f"; {len(listing.skipped)} other entr(ies) not read, e.g. {listing.skipped[0][0]}: {listing.skipped[0][1]}"
            if listing.skipped
            else ""
        )
        raise IngestError(f"landing folder {landing} holds no {'/'.join(formats)} files{skipped}")
    lo, hi = _bound(window_start, "window_start"), _bound(window_end, "window_end")
    in_window = [
        f
        for f in all_files
        if (fd := file_date(f)) is not None and (lo is None or fd >= lo) and (hi is None or fd <= hi)
    ]
    wm = Watermark.load(cfg.state_dir_uri, consumer)
    pending = wm.pending(in_window, pipeline_run_id)
    window = _window_text(window_start, window_end)
    if not pending:
        raise NoNewDataError(
            f"landing folder {landing}: no new file in window {window} for consumer '{consumer}' "
            f"({len(in_window)} file(s) in the window, all ingested already; {len(all_files)} in the folder)"
        )
    log.info(
        "ingest for consumer '%s', window %s: %d new file(s) of %d in the window, from %s",
        consumer,
        window,
        len(pending),
        len(in_window),
        landing,
    )

    raw, files_meta = _read_files(pending, cfg)
    cleaned = clean(raw, cfg)
    kept, quarantined, pii_counts, truncated = cleaned.kept, cleaned.quarantined, cleaned.pii, cleaned.truncated
    if cleaned.unknown_labels:
        what = {
            "fail": "validation will name them and fail the window",
            "hold_out": "their rows are held out in quarantine (reason new_label)",
            "accept": "accepted: the head grows for them (rarer than validate.min_rows_per_class: held out)",
        }[cfg.validate_cfg.new_labels]
        log.warning("labels not in validate.labels: %s; %s", cleaned.unknown_labels, what)
    kept_files = set(kept["source_file"])
    exhausted = [fh for fh in pending if fh.path.name not in kept_files]
    for meta in files_meta:
        meta["rows_kept"] = int((kept["source_file"] == meta["name"]).sum())
    split = cfg.ingest.split
    train, val, test = split_stratified(
        kept, val_fraction=split.val_fraction, test_fraction=split.test_fraction, seed=split.seed
    )

    final = str(out_dir)
    reasons = {code: int(n) for code, n in Counter(quarantined["reason_code"]).items()}
    label_counts = {str(k): int(v) for k, v in sorted(Counter(kept["label"]).items())}
    sizes = {"train": len(train), "val": len(val), "test": len(test)}
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
        files=tuple(f["name"] for f in files_meta),
        rows_read=len(raw),
        rows_kept=len(kept),
        rows_quarantined=len(quarantined),
        label_counts=label_counts,
        split_sizes=sizes,
        quarantine_reasons=dict(sorted(reasons.items())),
        pii_replacements=dict(sorted(pii_counts.items())),
    )
    manifest = {
        "pipeline_run_id": pipeline_run_id,
        "consumer": consumer,
        "landing_uri": str(landing),
        "window": {"start": window_start, "end": window_end},
        "files": files_meta,
        "rows_read": len(raw),
        "rows_kept": len(kept),
        "rows_quarantined": len(quarantined),
        "quarantined_by_reason": {code: reasons.get(code, 0) for code in REASON_CODES},
        "rows_truncated": truncated,
        "pii_scrubbed": cfg.ingest.scrub_pii,
        "pii_replacements": dict(sorted(pii_counts.items())),
        "label_counts": label_counts,
        "unknown_labels": cleaned.unknown_labels,
        "split_sizes": sizes,
        "split": split.model_dump(),
        "skipped": [{"name": name, "reason": why} for name, why in listing.skipped],
        "committed_at_ingest": [fh.path.name for fh in exhausted],
    }

    with storage.staged_dir(final) as stage:
        for name, frame in (("train", train), ("val", val), ("test", test)):
            _write_parquet(frame, stage / f"{name}.parquet", OUTPUT_COLUMNS)
        if len(quarantined):
            _write_parquet(
                quarantined.sort_values(["_file_order", "source_row"]), stage / "quarantine.parquet", QUARANTINE_COLUMNS
            )
        storage.write_json_atomic(stage / "manifest.json", manifest)
        storage.write_done(stage, result)
    extra = ", quarantine.parquet" if len(quarantined) else ""
    log.info("wrote %s (train/val/test.parquet%s, manifest.json)", final, extra)

    if exhausted:
        # every row of these files is in quarantine with its reason: re-reading them can never train
        wm.commit([(f.path, f.sha256) for f in exhausted], pipeline_run_id)
        log.info("watermark %s: %d file(s) wholly quarantined, committed now", wm.path, len(exhausted))
    log.info(
        "ingest summary: %d file(s), %d rows read, %d kept (train %d / val %d / test %d), %d quarantined %s, "
        "%d PII replacement(s); the watermark is committed when the run succeeds",
        len(pending),
        len(raw),
        len(kept),
        sizes["train"],
        sizes["val"],
        sizes["test"],
        len(quarantined),
        reasons or "",
        sum(pii_counts.values()),
    )
    if kept.empty:
        raise _empty_window(result)
    return result
