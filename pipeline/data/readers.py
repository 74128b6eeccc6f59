"""Read every configured source into one frame of canonical rows, with what each unit was.

A *unit* is what a source delivers in one piece: a landing file, a SQL read, a saved Hugging Face
dataset, a feedback read. Each row comes back with ``source`` (the source's name), ``source_file``
(the unit: a file name, ``table:x``, ``hf:path``), ``source_row`` (its position in the unit),
``message_id`` (the mapped id column, when there is one) and ``row_key``: the key of the row
watermark (:mod:`pipeline.data.ledger`), a hash of the source name and the id, or of the raw
content when the source has no id column. A renamed or re-sent file therefore yields the same keys.

Incremental reads: a landing file consumed before (same path, same content hash) is not read
again (a renamed copy is read, and the row watermark finds its rows ingested); a SQL or feedback source reads rows newer than its high-water mark minus
``lateness_s`` (late arrivals come back, the row watermark drops the ones already ingested) and at
most up to the window's end; a saved dataset whose fingerprint was consumed is not read again.

Every failure is an :class:`~pipeline.errors.IngestError` in one line naming the source, the unit,
the column and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import paths, storage
from pipeline.config import ColumnMap, FeedbackSource, HfDiskSource, LandingSource, PipelineConfig, SqlSource
from pipeline.data.sources import file_date, list_landing_files, read_landing_file
from pipeline.data.watermark import Watermark, file_sha256
from pipeline.errors import IngestError
from pipeline.paths import safe_name

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

ROW_COLUMNS = ("text", "label", "timestamp", "segment", "message_id", "source", "source_file", "source_row", "row_key")
_SEP = "\x1f"


@dataclass
class Unit:
    """One piece a source delivered: its manifest entry and how to mark it consumed."""

    source: str
    name: str
    rows: int
    meta: dict[str, Any] = field(default_factory=dict)
    file_key: tuple[str, str] | None = None  # (path, sha256) of a landing file; recorded in the file ledger
    high_water: str | None = None  # a SQL or feedback source's newest timestamp read (ISO 8601)


@dataclass
class Read:
    frame: pd.DataFrame
    units: list[Unit]
    skipped: list[dict[str, str]]


def row_keys(source: str, frame: pd.DataFrame, has_id: bool) -> list[str]:
    """The row watermark's key of each row: source and id, or source and the raw mapped content."""

    def text(v: Any) -> str:
        return "" if v is None or (isinstance(v, float) and v != v) else str(v)

    cols = ["message_id"] if has_id else ["text", "label", "timestamp", "segment"]
    parts = zip(*(frame[c] for c in cols), strict=True)
    return [
        hashlib.blake2b(
            _SEP.join([source, *(text(v) for v in p)]).encode("utf-8", "replace"), digest_size=16
        ).hexdigest()
        for p in parts
    ]


def _canonical(frame: pd.DataFrame, source: str, unit: str, has_id: bool) -> pd.DataFrame:
    frame = frame.reset_index(drop=True)
    if "message_id" not in frame.columns:
        frame["message_id"] = None
    frame["message_id"] = [None if v is None or v != v else str(v)[:200] for v in frame["message_id"]]
    frame["source"] = source
    frame["source_file"] = unit
    frame["source_row"] = range(len(frame))
    frame["row_key"] = row_keys(source, frame, has_id)
    return frame[list(ROW_COLUMNS)]


def _map(raw: pd.DataFrame, columns: ColumnMap, where: str) -> pd.DataFrame:
    """The canonical columns of ``raw`` (a SQL or dataset read), or one line naming the missing ones."""
    wanted = {"text": columns.text, "label": columns.label, "timestamp": columns.timestamp}
    if columns.id is not None:
        wanted["message_id"] = columns.id
    missing = [f"'{col}' (columns.{name})" for name, col in wanted.items() if col not in raw.columns]
    if missing:
        have = ", ".join(repr(str(c)) for c in list(raw.columns)[:12])
        raise IngestError(f"{where}: column(s) {', '.join(missing)} not found; it has columns: {have or 'none'}")
    out = raw[list(wanted.values())].copy()
    out.columns = list(wanted)
    out["segment"] = raw[columns.segment].to_numpy() if columns.segment and columns.segment in raw.columns else None
    return out


# ---------------------------------------------------------------- landing folders
def _landing(
    src: LandingSource, cfg: PipelineConfig, wm: Watermark, run_id: str, lo: date | None, hi: date | None
) -> Read:
    import pandas as pd

    folder = src.path or str(cfg.landing_dir_path)
    if not paths.is_local(folder):
        raise IngestError(
            f"source {src.name}: landing folder {folder} must be a local or mounted path (file://); remote URLs are "
            "for artifact_root and state_dir"
        )
    landing = paths.local_path(folder)
    if not landing.is_dir():
        raise IngestError(f"source {src.name}: landing folder {landing} does not exist")
    listing = list_landing_files(landing, src.formats)
    skipped = [{"source": src.name, "name": n, "reason": why} for n, why in listing.skipped]
    for item in skipped:
        log.warning("source %s: landing file %s not read: %s", src.name, landing / item["name"], item["reason"])
    if not listing.files:
        extra = (
            f"; {len(skipped)} other entr(ies) not read, e.g. {skipped[0]['name']}: {skipped[0]['reason']}"
            if skipped
            else ""
        )
        raise IngestError(f"source {src.name}: landing folder {landing} holds no {'/'.join(src.formats)} files{extra}")
    in_window = [
        f
        for f in listing.files
        if (d := file_date(f)) is not None and (lo is None or d >= lo) and (hi is None or d <= hi)
    ]
    frames, units = [], []
    for path in in_window:
        digest = file_sha256(path)
        if wm.is_ingested(path, digest, run_id):
            continue
        log.info("source %s: reading %s", src.name, path)
        raw = read_landing_file(path, src.columns)
        frames.append(_canonical(raw, src.name, path.name, src.columns.id is not None))
        fd = file_date(path)
        units.append(
            Unit(
                src.name,
                path.name,
                len(raw),
                {"path": str(path), "sha256": digest, "file_date": fd.isoformat() if fd else None},
                file_key=(str(path), digest),
            )
        )
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(ROW_COLUMNS))
    return Read(frame, units, skipped)


# ---------------------------------------------------------------- SQL tables, queries and feedback
def high_water_path(cfg: PipelineConfig, consumer: str, source: str) -> str:
    return paths.join(cfg.state_dir_uri, f"highwater-{safe_name(consumer)}-{safe_name(source)}.json")


def load_high_water(cfg: PipelineConfig, consumer: str, source: str) -> str | None:
    text = storage.read_text(high_water_path(cfg, consumer, source))
    return None if text is None else json.loads(text).get("high_water")


def _end_of(day: date | None) -> datetime | None:
    return None if day is None else datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)


def _sql_read(
    name: str,
    url: str,
    *,
    table: str | None,
    query: str | None,
    ts_col: str,
    lower: datetime | None,
    upper: datetime | None,
) -> pd.DataFrame:
    import pandas as pd
    import sqlalchemy as sa

    where = f"source {name}: {table and f'table {table}' or 'query'} at {sa.make_url(url).render_as_string(hide_password=True)}"
    try:
        engine = sa.create_engine(url, future=True, pool_pre_ping=True)
    except Exception as exc:
        raise IngestError(f"{where}: bad URL ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from exc
    try:
        with engine.connect() as conn:
            if table is not None:
                schema, _, tname = table.rpartition(".")
                try:
                    tbl = sa.Table(tname, sa.MetaData(), schema=schema or None, autoload_with=conn)
                except sa.exc.NoSuchTableError as exc:
                    raise IngestError(f"{where}: table {table} does not exist") from exc
                if ts_col not in tbl.c:
                    have = ", ".join(repr(c.name) for c in tbl.c)
                    raise IngestError(f"{where}: timestamp column '{ts_col}' not found; it has columns: {have}")
                col_type = tbl.c[ts_col].type
                if not isinstance(col_type, sa.DateTime | sa.Date):
                    raise IngestError(
                        f"{where}: column '{ts_col}' (timestamp) has type {col_type}, not a date/time type: the "
                        "high-water mark needs ordered timestamps; cast it in a `query`"
                    )
                stmt = sa.select(tbl)
                ts = tbl.c[ts_col]
            else:
                sub = sa.text(query or "").columns().subquery("src")
                stmt = sa.select(sa.text("*")).select_from(sub)
                ts = sa.column(ts_col)  # type: ignore[assignment]
            naive = conn.dialect.name == "sqlite"  # SQLite keeps naive UTC text; compare like with like
            for op, name, bound in ((ts.__gt__, "lo", lower), (ts.__lt__, "hi", upper)):
                if bound is not None:
                    value = bound.astimezone(UTC).replace(tzinfo=None) if naive else bound
                    stmt = stmt.where(op(sa.bindparam(name, value, type_=sa.DateTime(timezone=not naive))))
            return pd.read_sql(stmt, conn)
    except IngestError:
        raise
    except sa.exc.SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:300]
        raise IngestError(f"{where}: cannot be read ({type(exc).__name__}: {first})") from exc
    finally:
        engine.dispose()


def _incremental(
    src: SqlSource | FeedbackSource,
    cfg: PipelineConfig,
    consumer: str,
    hi: date | None,
    *,
    url: str,
    table: str | None,
    query: str | None,
    ts_col: str,
) -> tuple[pd.DataFrame, str | None, str | None]:
    """(rows, the previous high-water mark, the new one)."""
    import pandas as pd

    before = load_high_water(cfg, consumer, src.name)
    lower = None if before is None else datetime.fromisoformat(before) - timedelta(seconds=src.lateness_s)
    raw = _sql_read(src.name, url, table=table, query=query, ts_col=ts_col, lower=lower, upper=_end_of(hi))
    after = before
    if len(raw) and ts_col in raw.columns:
        parsed = pd.to_datetime(raw[ts_col], utc=True, errors="coerce", format="mixed")
        if parsed.notna().any():
            newest = parsed.max().isoformat()
            after = max(after, newest) if after else newest
    return raw, before, after


def _sql(src: SqlSource, cfg: PipelineConfig, consumer: str, hi: date | None) -> Read:
    raw, before, after = _incremental(
        src, cfg, consumer, hi, url=src.url, table=src.table, query=src.query, ts_col=src.columns.timestamp
    )
    unit = f"table:{src.table}" if src.table else "query"
    frame = _canonical(
        _map(raw, src.columns, f"source {src.name} ({unit})"), src.name, unit, src.columns.id is not None
    )
    meta = {"high_water_before": before, "high_water_after": after, "lateness_s": src.lateness_s}
    return Read(frame, [Unit(src.name, unit, len(frame), meta, high_water=after)] if len(frame) else [], [])


FEEDBACK_QUERY = (
    "SELECT f.request_id AS message_id, f.label AS label, f.ts AS timestamp, p.text AS text "
    "FROM serving_feedback f JOIN serving_predictions p ON p.request_id = f.request_id WHERE f.label IS NOT NULL"
)


def _feedback(src: FeedbackSource, cfg: PipelineConfig, consumer: str, hi: date | None) -> Read:
    c = src.columns
    url = src.url or cfg.serving_log_url
    if src.table is None:
        from pipeline import sqlstore
        from pipeline.serving.log import METADATA

        sqlstore.engine(url, METADATA)  # the serving tables exist (empty) before the app ever ran
        query, table, ts_col = FEEDBACK_QUERY, None, "timestamp"
        mapping: dict[str, str | None] = {
            "message_id": "message_id",
            "label": "label",
            "timestamp": "timestamp",
            "text": "text",
        }
    else:
        query, table, ts_col = None, src.table, c.timestamp
        mapping = {"message_id": c.message_id, "label": c.label, "timestamp": c.timestamp, "text": c.text}
    raw, before, after = _incremental(src, cfg, consumer, hi, url=url, table=table, query=query, ts_col=ts_col)
    unit = f"feedback:{src.table or 'serving'}"
    need = {k: v for k, v in mapping.items() if v is not None and k != "text"}
    missing = [f"'{v}' (columns.{k})" for k, v in need.items() if v not in raw.columns]
    if missing:
        raise IngestError(f"source {src.name} ({unit}): column(s) {', '.join(missing)} not found")
    frame = raw[[str(v) for v in need.values()]].copy()
    frame.columns = list(need)
    text_col = mapping.get("text")
    frame["text"] = raw[text_col].to_numpy() if text_col and text_col in raw.columns else None
    frame["segment"] = None
    out = _canonical(frame, src.name, unit, has_id=False)
    meta = {"high_water_before": before, "high_water_after": after, "lateness_s": src.lateness_s, "feedback": True}
    return Read(out, [Unit(src.name, unit, len(out), meta, high_water=after)] if len(out) else [], [])


# ---------------------------------------------------------------- Hugging Face datasets saved on disk
def _hf_disk(src: HfDiskSource, wm: Watermark, run_id: str) -> Read:
    import pandas as pd

    path = Path(src.path).expanduser()
    if not path.exists():
        raise IngestError(f"source {src.name}: dataset folder {path} does not exist")
    try:
        import datasets

        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets raises FileNotFoundError or its own types for a folder it cannot read
        raise IngestError(
            f"source {src.name}: {path} is not a dataset saved with save_to_disk ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200] if str(exc) else ''})"
        ) from exc
    if isinstance(loaded, datasets.DatasetDict):
        splits = [src.split] if src.split else sorted(loaded)
        if src.split and src.split not in loaded:
            raise IngestError(f"source {src.name}: split {src.split!r} not in {path} (it has {sorted(loaded)})")
        parts = [(s, loaded[s]) for s in splits]
    else:
        parts = [(src.split or "data", loaded)]
    frames, units = [], []
    for split, ds in parts:
        unit = f"hf:{path.name}/{split}"
        fingerprint = str(getattr(ds, "_fingerprint", "")) or file_sha256(next(path.rglob("*.arrow")))
        key = (str(path / split), fingerprint)
        if wm.is_ingested(key[0], fingerprint, run_id):
            continue
        raw = ds.to_pandas()
        frames.append(
            _canonical(
                _map(raw, src.columns, f"source {src.name} ({unit})"), src.name, unit, src.columns.id is not None
            )
        )
        units.append(Unit(src.name, unit, len(raw), {"path": str(path), "fingerprint": fingerprint}, file_key=key))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(ROW_COLUMNS))
    return Read(frame, units, [])


def read_sources(
    cfg: PipelineConfig, *, consumer: str, run_id: str, lo: date | None, hi: date | None, landing_uri: str | None = None
) -> Read:
    """Every configured source's new rows (concatenated, source order), their units and skipped entries."""
    import pandas as pd

    wm = Watermark.load(cfg.state_dir_uri, consumer)
    frames: list[pd.DataFrame] = []
    units: list[Unit] = []
    skipped: list[dict[str, str]] = []
    for src in cfg.ingest.resolved_sources():
        if isinstance(src, LandingSource):
            if landing_uri is not None and src.path is None:
                src = src.model_copy(update={"path": landing_uri})
            got = _landing(src, cfg, wm, run_id, lo, hi)
        elif isinstance(src, SqlSource):
            got = _sql(src, cfg, consumer, hi)
        elif isinstance(src, HfDiskSource):
            got = _hf_disk(src, wm, run_id)
        else:
            got = _feedback(src, cfg, consumer, hi)
        if len(got.frame):
            frames.append(got.frame)
        units.extend(got.units)
        skipped.extend(got.skipped)
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(ROW_COLUMNS))
    return Read(frame, units, skipped)
