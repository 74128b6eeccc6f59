"""Per-consumer ingest ledger: which landing files a consumer has already turned into curated data.

``{state_dir}/watermark-{consumer}.json`` maps each ingested file's absolute path to the sha256 of the
content that was ingested and the pipeline run that did it. A file is committed only when the run
that read it succeeded (the last task of the run commits), or at once when every one of its rows
went to quarantine (nothing of it can ever train), so a failed run consumes nothing: a new run id
reads the same files again. A consumer (``monitor``, ``retrain``, ...)
sees every file exactly once; consumers are independent of each other. A file whose content changed
since it was ingested counts as new. A file claimed by the same run id counts as pending again, so a
retry of that run re-reads what it had claimed instead of finding nothing.

``state_dir`` may be a remote URL (see :mod:`pipeline.paths`): the ledger is then one object,
replaced by one PUT. Runs of one consumer never overlap (the DAGs run one at a time), so the
read-merge-write of :meth:`Watermark.commit` has a single writer.

Stdlib only (light module).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from pipeline import paths
from pipeline.errors import IngestError
from pipeline.paths import safe_name
from pipeline.storage import read_text, write_json_atomic

LEDGER_VERSION = 1


class FileHash(NamedTuple):
    path: Path
    sha256: str


def file_sha256(path: str | Path) -> str:
    """The content hash of a landing file; :class:`IngestError` naming the file when it cannot be read."""
    h = hashlib.sha256()
    try:
        with Path(path).open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        why = "permission denied" if isinstance(exc, PermissionError) else (exc.strerror or type(exc).__name__)
        raise IngestError(f"landing file {path}: cannot be read ({why})") from exc
    return h.hexdigest()


def _key(path: str | Path) -> str:
    return str(Path(path).expanduser().resolve())


@dataclass
class Watermark:
    """One consumer's ledger. Load it, ask what is :meth:`pending`, :meth:`commit` after publishing."""

    state_dir: str
    consumer: str
    entries: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def ledger_path(cls, state_dir: str | Path, consumer: str) -> str:
        return paths.join(state_dir, f"watermark-{safe_name(consumer)}.json")

    @classmethod
    def load(cls, state_dir: str | Path, consumer: str) -> Watermark:
        """The consumer's ledger; an empty one when the file does not exist yet."""
        path = cls.ledger_path(state_dir, consumer)
        try:
            text = read_text(path)
            if text is None:
                return cls(state_dir=str(state_dir), consumer=consumer)
            data = json.loads(text)
            entries = data["files"]
            if not isinstance(entries, dict):
                raise TypeError("'files' is not a mapping")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IngestError(f"watermark {path}: cannot be read ({exc}); fix or remove it to re-ingest") from exc
        return cls(state_dir=str(state_dir), consumer=consumer, entries={str(k): dict(v) for k, v in entries.items()})

    @property
    def path(self) -> str:
        return self.ledger_path(self.state_dir, self.consumer)

    def is_ingested(self, path: str | Path, sha256: str, run_id: str) -> bool:
        """True when this content of ``path`` was ingested by a run other than ``run_id``."""
        entry = self.entries.get(_key(path))
        return entry is not None and entry.get("sha256") == sha256 and entry.get("pipeline_run_id") != run_id

    def pending(self, files: Iterable[str | Path], run_id: str) -> list[FileHash]:
        """The files (with their content hash) this consumer has not ingested yet, in the given order."""
        out = []
        for f in files:
            digest = file_sha256(f)
            if not self.is_ingested(f, digest, run_id):
                out.append(FileHash(Path(f), digest))
        return out

    def commit(self, files_with_hashes: Iterable[tuple[str | Path, str]], run_id: str) -> None:
        """Record the files as ingested by ``run_id`` and write the ledger atomically.

        Re-reads the ledger first so entries written since :meth:`load` are kept.
        """
        current = Watermark.load(self.state_dir, self.consumer).entries
        current.update(self.entries)
        for f, digest in files_with_hashes:
            current[_key(f)] = {"sha256": digest, "pipeline_run_id": run_id}
        self.entries = current
        write_json_atomic(
            self.path,
            {"version": LEDGER_VERSION, "consumer": self.consumer, "files": dict(sorted(current.items()))},
        )
