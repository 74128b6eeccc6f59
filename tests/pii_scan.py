"""Find planted PII anywhere under a folder: Parquet decoded, SQLite tables read, every other file as text.

The planted values are the literal PII strings the simulator wrote into the landing files (found
with :func:`pipeline.data.pii.find_pii` on the raw rows), so the scan has no false positives: a hit
is a value a user typed, persisted somewhere.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path


def planted(landing: Path) -> set[str]:
    from pipeline.config import ColumnMap
    from pipeline.data.pii import find_pii
    from pipeline.data.sources import read_landing_file

    values: set[str] = set()
    for path in sorted(landing.iterdir()):
        if path.is_file() and not path.name.startswith((".", "_")):
            frame = read_landing_file(path, ColumnMap())
            for col in ("text", "label", "segment"):
                for v in frame[col].dropna().astype(str):
                    values.update(found.strip() for _, found in find_pii(v) if len(found.strip()) >= 7)
    return values


def _texts(path: Path) -> Iterable[str]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        yield json.dumps(pq.read_table(path).to_pylist(), default=str)
        return
    head = path.read_bytes()[:16]
    if head.startswith(b"SQLite format 3"):
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'"):
                for row in con.execute(f'SELECT * FROM "{table}"'):
                    yield " | ".join(str(v) for v in row)
        finally:
            con.close()
        return
    yield path.read_bytes().decode("utf-8", errors="replace")


def leaks(root: Path, values: set[str], skip: Iterable[Path] = ()) -> list[tuple[str, str]]:
    """``(file, value)`` for every planted value found in a file under ``root`` (``skip``: folders not scanned)."""
    skipped = [p.resolve() for p in skip]
    found = []
    for path in root.rglob("*"):
        if not path.is_file() or any(path.resolve().is_relative_to(s) for s in skipped):
            continue
        for text in _texts(path):
            found.extend((str(path.relative_to(root)), v) for v in values if v in text)
    return found
