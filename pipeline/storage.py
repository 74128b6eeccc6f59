"""Atomic step outputs: stage into a hidden sibling folder, then rename into place.

A step's folder either does not exist or is complete with a ``_SUCCESS`` marker holding the step's
result as JSON, so a retry of the same run returns the recorded result instead of redoing work,
and a crash never leaves a half-written folder where readers look.

On a remote ``artifact_root`` (an fsspec URL, see :mod:`pipeline.paths`) there is no rename: the
step writes into a local staging folder, which is uploaded file by file with the ``_SUCCESS`` marker
last. The marker is the commit point: readers look only at folders that have it, and a folder left
without it by a killed attempt is deleted before the next upload.

Light module (stdlib; fsspec on use).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from pipeline import paths
from pipeline.results import StepResult

MARKER = "_SUCCESS"
log = logging.getLogger(__name__)
R = TypeVar("R", bound=StepResult)


def load_done(out_dir: str | Path, result_cls: type[R]) -> R | None:
    """The recorded result when ``out_dir`` holds a finished step, else ``None``."""
    text = read_text(paths.join(out_dir, MARKER))
    return None if text is None else result_cls.from_dict(json.loads(text))


def read_text(uri: str | Path) -> str | None:
    """The text of the file at ``uri`` (local or remote), ``None`` when it does not exist."""
    if paths.is_local(uri):
        p = paths.local_path(uri)
        return p.read_text() if p.is_file() else None
    fs, path = paths.filesystem(str(uri))
    try:
        return bytes(fs.cat_file(path)).decode()
    except FileNotFoundError:
        return None


def put_file(src: str | Path, uri: str) -> None:
    """Copy local file ``src`` to ``uri`` so that readers see all of it or nothing (rename, or one PUT)."""
    if paths.is_local(uri):
        target = paths.local_path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
        shutil.copyfile(src, tmp)
        os.replace(tmp, target)
        return
    fs, path = paths.filesystem(uri)
    fs.put_file(str(src), path)


@contextlib.contextmanager
def staged_dir(out_dir: str | Path) -> Iterator[Path]:
    """A local staging folder that becomes ``out_dir`` when the block succeeds (see :func:`_staged_local`)."""
    if paths.is_local(out_dir):
        with _staged_local(paths.local_path(out_dir)) as stage:
            yield stage
        return
    with tempfile.TemporaryDirectory(prefix="stage-", dir=_staging_root()) as tmp:
        stage = Path(tmp) / "out"
        stage.mkdir()
        yield stage
        _publish(stage, str(out_dir))


def _staging_root() -> Path:
    root = paths.cache_root() / "staging"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _publish(stage: Path, url: str) -> None:
    """Upload ``stage`` to ``url``: clear what an unfinished attempt left, the files, then the marker."""
    fs, root = paths.filesystem(url)
    if fs.exists(root):
        log.warning("removing %s, left without %s by an attempt that did not finish", url, MARKER)
        fs.rm(root, recursive=True)
    files = sorted(p for p in stage.rglob("*") if p.is_file() and p.name != MARKER)
    for f in files:
        fs.put_file(str(f), paths.join(root, *f.relative_to(stage).parts))
    if (stage / MARKER).is_file():
        fs.put_file(str(stage / MARKER), paths.join(root, MARKER))
    log.info("published %d file(s) to %s", len(files), url)


@contextlib.contextmanager
def _staged_local(out_dir: Path) -> Iterator[Path]:
    """Yield a fresh staging folder; on success it replaces ``out_dir`` in one rename.

    On an exception the staging folder is removed and ``out_dir`` is left as it was; staging
    folders left by a killed attempt are removed first.
    """
    final = Path(out_dir)
    final.parent.mkdir(parents=True, exist_ok=True)
    # staging folders of earlier attempts that were killed (SIGKILL, OOM) and so never cleaned up:
    # attempts of one step of one run never overlap (Airflow runs one try at a time)
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        log.warning("removing %s, left by an attempt that was killed", stale)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():  # an unfinished folder from an older crash (no marker): replace it
        shutil.rmtree(final)
    os.replace(tmp, final)


def write_done(stage: str | Path, result: StepResult) -> None:
    """Write the marker last, inside the staging folder, so the rename publishes it with the data."""
    write_json_atomic(Path(stage) / MARKER, result.to_dict())


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON so that readers see the old file or the new one (rename locally; one PUT remotely)."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str)
    if not paths.is_local(path):
        fs, remote = paths.filesystem(str(path))
        fs.pipe_file(remote, text.encode())
        return
    p = paths.local_path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(text)
    os.replace(tmp, p)
