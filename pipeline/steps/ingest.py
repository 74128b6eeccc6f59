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
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import storage
from pipeline.config import PipelineConfig
from pipeline.data.pii import PII_TOKENS, scrub_pii
from pipeline.data.sources import file_date, list_landing_files, read_landing_file
from pipeline.data.split import split_stratified
from pipeline.data.text import clean_text, dedup_key, example_id, normalize_text
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
_BASIC_DATE = re.compile(r"^\s*\d{8}\s*$")
REASON_CODES = ("empty_text", "text_too_short", "missing_label", "bad_timestamp", "duplicate", "new_label")
_MAX_FIELD_CHARS = 200  # labels, segments and raw timestamps are short; longer values are cut before cleaning


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


def _missing(value: Any) -> bool:
    import pandas as pd

    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def _clean_str(value: Any) -> str | None:
    """A normalized short string (cut to ``_MAX_FIELD_CHARS`` first), or None for missing values."""
    if _missing(value):
        return None
    s = normalize_text(str(value)[: _MAX_FIELD_CHARS * 4])[:_MAX_FIELD_CHARS]
    return s or None


def _to_utc(values: pd.Series) -> pd.Series:
    """Timestamps as ``datetime64[ns, UTC]``: ISO 8601 strings (naive means UTC) or epoch seconds;
    anything else becomes NaT."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(values):
        ts = values if getattr(values.dt, "tz", None) is not None else values.dt.tz_localize("UTC")
        return ts.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    # "20250101" is ISO 8601 (basic format), not 20 million seconds after 1970
    is_epoch = values.map(lambda v: not isinstance(v, bool) and not (isinstance(v, str) and _BASIC_DATE.match(v)))
    numbers = pd.to_numeric(values.where(is_epoch), errors="coerce")
    is_number = numbers.notna()
    if is_number.any():
        out[is_number] = pd.to_datetime(numbers[is_number], unit="s", utc=True, errors="coerce")
    rest = ~is_number & values.notna()
    if rest.any():
        text = values[rest].astype(str).str.strip()
        out[rest] = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    return out


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


@dataclass
class _Cleaned:
    kept: pd.DataFrame
    quarantined: pd.DataFrame
    pii: dict[str, int]
    truncated: int
    unknown_labels: dict[str, int]


def _hold_out_new_labels(df: pd.DataFrame, cfg: PipelineConfig, flag: Any) -> None:
    """``validate.new_labels``: fail leaves new labels for validation to name; hold_out quarantines
    their rows; accept keeps them, holding out only those with fewer than min_rows_per_class rows."""
    vcfg = cfg.validate_cfg
    if vcfg.new_labels == "fail":
        return
    ok = df["reason_code"].isna() & df["label"].notna()
    new = ok & ~df["label"].isin(set(vcfg.labels))
    if not new.any():
        return
    if vcfg.new_labels == "hold_out":
        flag(
            new,
            "new_label",
            "new_label (" + df["label"].astype(str) + " is not in validate.labels; validate.new_labels: hold_out)",
        )
        return
    counts = df.loc[new, "label"].value_counts()
    rare = new & df["label"].isin(set(counts[counts < vcfg.min_rows_per_class].index))
    flag(
        rare,
        "new_label",
        "new_label ("
        + df["label"].astype(str)
        + f" has fewer than validate.min_rows_per_class={vcfg.min_rows_per_class} "
        "rows in this window; validate.new_labels: accept)",
    )


def _clean(raw: pd.DataFrame, cfg: PipelineConfig) -> _Cleaned:
    """Kept and quarantined rows; PII is gone from every string column of both frames.

    Labels are checked against ``validate.labels`` before anything about them is written: a known
    label is kept as is, an unknown one is scrubbed like text (a user's label column may hold
    anything, an email included). Valid timestamps are not kept as raw text (an epoch number is not a
    phone number); the raw value survives only, scrubbed, on rows whose timestamp failed to parse.
    """
    import pandas as pd

    ic = cfg.ingest
    known = set(cfg.validate_cfg.labels)
    pii: Counter[str] = Counter({kind: 0 for kind in PII_TOKENS})

    def scrub(value: str | None) -> str | None:
        if value is None or not ic.scrub_pii:
            return value
        clean, counts = scrub_pii(value)
        pii.update(counts)
        return clean

    texts: list[str | None] = []
    truncated = 0
    for value in raw["text"]:
        if _missing(value):
            texts.append(None)
            continue
        text, counts, cut = clean_text(str(value), max_chars=ic.max_text_chars, scrub=ic.scrub_pii)
        pii.update(counts)
        truncated += int(cut)
        texts.append(text or None)
    labels = [_clean_str(v) for v in raw["label"]]
    labels = [lab if lab is None or lab in known else scrub(lab) for lab in labels]
    unknown = Counter(lab for lab in labels if lab is not None and lab not in known)
    timestamps = _to_utc(raw["timestamp"])
    df = pd.DataFrame(
        {
            "text": texts,
            "label": labels,
            "timestamp": timestamps,
            "timestamp_raw": [
                scrub(_clean_str(v)) if bad else None
                for v, bad in zip(raw["timestamp"], timestamps.isna(), strict=True)
            ],
            "segment": [scrub(_clean_str(v)) for v in raw["segment"]],
            "source_file": raw["source_file"].to_numpy(),
            "source_row": raw["source_row"].to_numpy(),
            "_file_order": raw["_file_order"].to_numpy(),
        }
    )
    df["example_id"] = [
        example_id(t, lab or "") if t is not None else None for t, lab in zip(df["text"], df["label"], strict=True)
    ]
    df["reason"] = None
    df["reason_code"] = None

    def flag(mask: pd.Series, code: str, reason: str | pd.Series) -> None:
        mask = mask & df["reason_code"].isna()
        df.loc[mask, "reason_code"] = code
        df.loc[mask, "reason"] = reason if isinstance(reason, str) else reason[mask]

    flag(df["text"].isna(), "empty_text", "empty_text")
    flag(
        df["text"].fillna("").str.len() < ic.min_text_chars,
        "text_too_short",
        f"text_too_short (fewer than {ic.min_text_chars} characters)",
    )
    flag(df["label"].isna(), "missing_label", "missing_label")
    flag(df["timestamp"].isna(), "bad_timestamp", "bad_timestamp (not ISO 8601 or epoch seconds)")
    _hold_out_new_labels(df, cfg, flag)

    # exact duplicates among the remaining rows: keep the first by time, then by file order and row
    ok = df["reason_code"].isna()
    candidates = df[ok].sort_values(["timestamp", "_file_order", "source_row"], kind="mergesort")
    keys = candidates["text"].map(dedup_key)
    first_id = candidates.groupby(keys, sort=False)["example_id"].transform("first")
    is_dup = keys.duplicated(keep="first")
    dup_index = candidates.index[is_dup.to_numpy()]
    df.loc[dup_index, "reason_code"] = "duplicate"
    df.loc[dup_index, "reason"] = "duplicate of " + first_id[is_dup]

    kept = df[df["reason_code"].isna()].copy()
    quarantined = df[df["reason_code"].notna()].copy()
    kept = kept.sort_values(["timestamp", "_file_order", "source_row"], kind="mergesort")
    return _Cleaned(kept, quarantined, dict(pii), truncated, dict(sorted(unknown.items())))


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
    wm = Watermark.load(cfg.state_dir_path, result.consumer)
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

    try:
        landing = local_path(landing_uri)
    except ValueError as exc:
        raise IngestError(f"landing folder {landing_uri}: {exc}") from exc
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
    wm = Watermark.load(cfg.state_dir_path, consumer)
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
    cleaned = _clean(raw, cfg)
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

    final = local_path(out_dir)
    reasons = {code: int(n) for code, n in Counter(quarantined["reason_code"]).items()}
    label_counts = {str(k): int(v) for k, v in sorted(Counter(kept["label"]).items())}
    sizes = {"train": len(train), "val": len(val), "test": len(test)}
    result = IngestResult(
        pipeline_run_id=pipeline_run_id,
        consumer=consumer,
        window_start=window_start,
        window_end=window_end,
        train_uri=str(final / "train.parquet"),
        val_uri=str(final / "val.parquet"),
        test_uri=str(final / "test.parquet"),
        manifest_uri=str(final / "manifest.json"),
        quarantine_uri=str(final / "quarantine.parquet") if len(quarantined) else None,
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
