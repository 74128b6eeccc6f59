"""Atomic step outputs: stage into a hidden sibling folder, then rename into place.

A step's folder either does not exist or is complete with a ``_SUCCESS`` marker holding the step's
result as JSON, so a retry of the same run returns the recorded result instead of redoing work,
and a crash never leaves a half-written folder where readers look.

Light module (stdlib only).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from pipeline.results import StepResult

MARKER = "_SUCCESS"
log = logging.getLogger(__name__)
R = TypeVar("R", bound=StepResult)


def load_done(out_dir: str | Path, result_cls: type[R]) -> R | None:
    """The recorded result when ``out_dir`` holds a finished step, else ``None``."""
    marker = Path(out_dir) / MARKER
    if not marker.is_file():
        return None
    return result_cls.from_dict(json.loads(marker.read_text()))


@contextlib.contextmanager
def staged_dir(out_dir: str | Path) -> Iterator[Path]:
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
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(tmp, p)
