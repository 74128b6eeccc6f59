"""The one place that knows where artifacts live: ``{artifact_root}/{run}/{step}/...``.

Light module: safe to import from DAG files.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

STEPS = ("ingest", "validate", "drift", "decide", "reassess", "finetune", "evaluate", "register")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(value: str) -> str:
    """A filesystem-safe form of an Airflow run id (``manual__2025-01-01T00:00:00+00:00``)."""
    return _UNSAFE.sub("_", value).strip("_") or "run"


def pipeline_run_id(dag_id: str, run_id: str) -> str:
    """Unique across DAGs: Airflow run ids are unique only within one DAG."""
    return f"{dag_id}__{safe_name(run_id)}"


def local_path(uri: str | Path) -> Path:
    """A local path for a plain path or a ``file://`` URI; other schemes are not supported yet."""
    s = str(uri)
    parsed = urlparse(s)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path if parsed.scheme == "file" else s)
    raise ValueError(f"{s}: only local paths and file:// URIs are supported for artifacts")


def run_dir(artifact_root: str, run_id: str) -> Path:
    return local_path(artifact_root) / safe_name(run_id)


def step_dir(artifact_root: str, run_id: str, step: str) -> Path:
    """``{artifact_root}/{run_id}/{step}``: where a step writes, and nowhere else."""
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; expected one of {', '.join(STEPS)}")
    return run_dir(artifact_root, run_id) / step
