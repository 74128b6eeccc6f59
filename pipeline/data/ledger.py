"""Durable per-consumer ledgers of rows: which records were ingested, and the near-duplicate index.

Both are append-only folders under ``state_dir`` with one immutable Parquet part per successful run
(``{run_id}.parquet``), so they work on any fsspec URL (one PUT per part) and a run's part can be
read or replaced without touching the others:

- ``rows-{consumer}/``: ``row_key`` of every row a run read (kept, quarantined or dropped as a
  duplicate). A record whose key is here is never ingested again, whichever file, name or copy it
  arrives in (:func:`pipeline.data.readers.row_keys`).
- ``neardup-{consumer}/``: ``example_id`` and MinHash ``signature`` of every row a run kept, the
  cross-window side of near-duplicate removal (:mod:`pipeline.data.neardup`).

The ingest step stages its parts in its output folder; :func:`commit_parts` copies them here when
the run has succeeded, so a failed run leaves both ledgers as they were. The parts of the run being
retried are ignored when loading, so a retry sees what it would have seen the first time.
"""

from __future__ import annotations

import logging
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from pipeline import paths, storage
from pipeline.paths import safe_name

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

ROWS = "rows"
NEARDUP = "neardup"
ROW_KEYS_FILE = "row_keys.parquet"
SIGNATURES_FILE = "neardup_signatures.parquet"
STAGED = {ROWS: ROW_KEYS_FILE, NEARDUP: SIGNATURES_FILE}


def folder(state_dir: str, consumer: str, kind: str) -> str:
    return paths.join(state_dir, f"{kind}-{safe_name(consumer)}")


def _parts(state_dir: str, consumer: str, kind: str, run_id: str) -> list[str]:
    own = f"{safe_name(run_id)}.parquet"
    return [p for p in paths.listdir(folder(state_dir, consumer, kind), "*.parquet") if PurePosixPath(p).name != own]


def load_row_keys(state_dir: str, consumer: str, run_id: str) -> set[str]:
    """Every row key committed for ``consumer`` by runs other than ``run_id``."""
    import pyarrow.parquet as pq

    keys: set[str] = set()
    for part in _parts(state_dir, consumer, ROWS, run_id):
        keys.update(pq.read_table(paths.local_path(part), columns=["row_key"]).column(0).to_pylist())
    return keys


def load_signatures(state_dir: str, consumer: str, run_id: str) -> tuple[list[str], np.ndarray | None]:
    """(example ids, signatures as an ``(n, num_perm)`` uint32 array) committed by other runs."""
    import numpy as np
    import pyarrow.parquet as pq

    parts: list[tuple[list[str], np.ndarray]] = []
    for part in _parts(state_dir, consumer, NEARDUP, run_id):
        table = pq.read_table(paths.local_path(part))
        width = int((table.schema.metadata or {}).get(b"num_perm", b"0"))
        if not len(table) or not width:
            continue
        raw = b"".join(table.column("signature").to_pylist())
        parts.append((table.column("example_id").to_pylist(), np.frombuffer(raw, dtype=np.uint32).reshape(-1, width)))
    if not parts:
        return [], None
    keep = parts[-1][1].shape[1]
    if any(b.shape[1] != keep for _, b in parts):  # num_perm changed: older parts cannot be compared
        log.warning("near-duplicate index: parts of another num_perm are ignored (using %d permutations)", keep)
        parts = [(i, b) for i, b in parts if b.shape[1] == keep]
    return [i for ids, _ in parts for i in ids], np.concatenate([b for _, b in parts])


def write_row_keys(path: str, keys: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"row_key": pa.array(keys, pa.string())}), path)


def write_signatures(path: str, ids: list[str], signatures: np.ndarray) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sig = signatures.astype("uint32", copy=False)
    table = pa.table(
        {"example_id": pa.array(ids, pa.string()), "signature": pa.array([row.tobytes() for row in sig], pa.binary())}
    ).replace_schema_metadata({"num_perm": str(sig.shape[1] if sig.ndim == 2 else 0)})
    pq.write_table(table, path)


def commit_parts(state_dir: str, consumer: str, run_id: str, out_dir: str) -> list[str]:
    """Copy the run's staged ledger parts from ``out_dir`` into the ledgers; return what was copied."""
    copied = []
    for kind, name in STAGED.items():
        src = paths.join(out_dir, name)
        if not paths.exists(src):
            continue
        target = paths.join(folder(state_dir, consumer, kind), f"{safe_name(run_id)}.parquet")
        storage.put_file(paths.local_path(src), target)
        copied.append(target)
    return copied
