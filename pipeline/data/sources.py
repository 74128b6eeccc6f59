"""Landing files: find them, date them, read them into the canonical columns.

Every failure is an :class:`~pipeline.errors.IngestError` with one line naming the file and what is
wrong with it (the parser's reason, or the configured columns it lacks and the columns it has).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from pipeline.config import ColumnMap
from pipeline.errors import IngestError

if TYPE_CHECKING:
    import pandas as pd

CANONICAL = ("text", "label", "timestamp", "segment")
_DASHED = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
_COMPACT = re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?!\d)")
_WS = re.compile(r"\s+")


# pandas infers these compressions from the suffix for CSV and JSON lines; Parquet carries its own
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".zip")


def file_format(path: str | Path) -> str | None:
    """``csv``, ``jsonl`` or ``parquet`` for ``x.csv``, ``x.csv.gz``, ``x.jsonl.zst``, ``x.parquet``...; else None."""
    name = Path(path).name.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            if name.endswith(".parquet"):
                return None  # Parquet compresses inside the file; a compressed Parquet file is not read
            break
    for kind in ("csv", "jsonl", "parquet"):
        if name.endswith(f".{kind}"):
            return kind
    return None


class LandingListing(NamedTuple):
    """Files to read (ordered by :func:`file_date`, then name) and every other entry with its reason."""

    files: list[Path]
    skipped: list[tuple[str, str]]


def list_landing_files(landing_dir: str | Path, formats: Iterable[str]) -> LandingListing:
    """Landing files directly in ``landing_dir`` whose format (:func:`file_format`) is one of
    ``formats``, and every entry that is not read, with the reason. Hidden and temporary files
    (``.x``, ``_x``) are skipped, so a file still being written under a temporary name is never read."""
    wanted = {f.lower().lstrip(".") for f in formats}
    found: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for p in sorted(Path(landing_dir).iterdir()):
        if p.name.startswith((".", "_")):
            skipped.append((p.name, "hidden or temporary name (starts with '.' or '_')"))
        elif not p.is_file():
            skipped.append((p.name, "not a regular file"))
        elif (kind := file_format(p)) is None:
            skipped.append(
                (
                    p.name,
                    "unsupported file type (expected .csv, .jsonl or .parquet, CSV/JSONL optionally "
                    f"compressed as {', '.join(COMPRESSION_SUFFIXES)})",
                )
            )
        elif kind not in wanted:
            skipped.append((p.name, f"format {kind} not in ingest.formats {sorted(wanted)}"))
        else:
            found.append(p)
    return LandingListing(sorted(found, key=lambda p: (file_date(p) or date.min, p.name)), skipped)


def file_date(path: str | Path) -> date | None:
    """The date in the file name (``YYYY-MM-DD`` or ``YYYYMMDD``, first valid one), else the date
    (UTC) of the file's modification time, or ``None`` when the file does not exist."""
    p = Path(path)
    for pattern in (_DASHED, _COMPACT):
        for m in pattern.finditer(p.name):
            try:
                return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            except ValueError:
                continue
    try:
        return datetime.fromtimestamp(p.stat().st_mtime, tz=UTC).date()
    except OSError:
        return None


def _one_line(text: object, limit: int = 300) -> str:
    s = _WS.sub(" ", str(text)).strip()
    return s if len(s) <= limit else s[: limit - 3] + "..."


FALLBACK_ENCODING = "cp1252"  # what a spreadsheet on Windows writes; every byte decodes


def _head(path: Path, size: int = 65536) -> bytes:
    from pandas.io.common import get_handle

    with get_handle(str(path), "rb", compression="infer", is_text=False) as handles:
        return bytes(handles.handle.read(size))


def encoding_of(path: Path) -> str:
    """``utf-8-sig`` (UTF-8, a BOM dropped) when the whole file decodes as UTF-8, else
    :data:`FALLBACK_ENCODING`: files of one landing folder may come in different encodings."""
    import codecs

    from pandas.io.common import get_handle

    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with get_handle(str(path), "rb", compression="infer", is_text=False) as handles:
            for chunk in iter(lambda: handles.handle.read(1 << 20), b""):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return FALLBACK_ENCODING
    return "utf-8-sig"


def csv_delimiter(path: Path, encoding: str) -> str:
    """The delimiter of a CSV file (``,``, ``;``, tab or ``|``), sniffed from its first lines."""
    import csv

    text = _head(path).decode(encoding, errors="replace").lstrip("\ufeff")
    lines = text.splitlines()[:20]
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _read_jsonl(path: Path, encoding: str = "utf-8") -> pd.DataFrame:
    import pandas as pd
    from pandas.io.common import get_handle

    records = []
    with get_handle(str(path), "r", encoding=encoding, compression="infer") as handles:
        fh = handles.handle
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise IngestError(f"landing file {path}: line {n} is not valid JSON ({exc.msg})") from exc
            if not isinstance(obj, dict):
                raise IngestError(f"landing file {path}: line {n} is a JSON {type(obj).__name__}, not an object")
            records.append(obj)
    return pd.DataFrame.from_records(records)


def _read_raw(path: Path) -> pd.DataFrame:
    import pandas as pd

    kind = file_format(path)
    try:
        if kind == "csv":
            encoding = encoding_of(path)
            # every cell as text; only truly empty cells are missing ("NA" or "null" may be a message)
            return pd.read_csv(
                path, dtype=str, keep_default_na=False, na_values=[""], encoding=encoding,
                sep=csv_delimiter(path, encoding),
            )  # fmt: skip
        if kind == "jsonl":
            return _read_jsonl(path, encoding_of(path))
        if kind == "parquet":
            return pd.read_parquet(path)
    except IngestError:
        raise
    except pd.errors.EmptyDataError as exc:
        raise IngestError(f"landing file {path}: cannot be read as {kind} (the file is empty)") from exc
    except PermissionError as exc:
        raise IngestError(f"landing file {path}: cannot be read (permission denied)") from exc
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise IngestError(f"landing file {path}: cannot be read as {kind} ({_one_line(exc)})") from exc
    except Exception as exc:  # pyarrow raises its own types (ArrowInvalid, ...) for corrupt files
        raise IngestError(
            f"landing file {path}: cannot be read as {kind} ({type(exc).__name__}: {_one_line(exc)})"
        ) from exc
    raise IngestError(f"landing file {path}: unsupported file type; expected .csv, .jsonl or .parquet")


def read_landing_file(path: str | Path, columns: ColumnMap) -> pd.DataFrame:
    """The file's rows with the mapped columns renamed to ``text``, ``label``, ``timestamp``,
    ``segment`` and ``message_id`` (when ``columns.id`` is set; other columns dropped; ``segment`` is
    all-null when not mapped or not present).
    Values are returned as read; cleaning and parsing belong to the ingest step."""
    p = Path(path)
    raw = _read_raw(p)
    wanted = {"text": columns.text, "label": columns.label, "timestamp": columns.timestamp}
    have = [str(c) for c in raw.columns]
    missing = [f"'{col}' (ingest.columns.{name})" for name, col in wanted.items() if col not in raw.columns]
    if missing:
        shown = ", ".join(repr(_one_line(c, 40)) for c in have[:12])
        shown += f" and {len(have) - 12} more" if len(have) > 12 else ""
        raise IngestError(
            f"landing file {p}: column(s) {', '.join(missing)} not found; the file has columns: {shown or 'none'}"
        )
    out = raw[[wanted["text"], wanted["label"], wanted["timestamp"]]].copy()
    out.columns = ["text", "label", "timestamp"]
    if columns.segment is not None and columns.segment in raw.columns:
        out["segment"] = raw[columns.segment].to_numpy()
    else:
        out["segment"] = None
    if columns.id is not None:
        if columns.id not in raw.columns:
            raise IngestError(f"landing file {p}: column '{columns.id}' (ingest.columns.id) not found")
        out["message_id"] = raw[columns.id].to_numpy()
    return out.reset_index(drop=True)
