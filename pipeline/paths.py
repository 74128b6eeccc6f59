"""The one place that knows where artifacts live: ``{artifact_root}/{run}/{step}/...``.

``artifact_root`` (and ``state_dir``) may be a local path, a ``file://`` URI or any fsspec URL
(``s3://bucket/prefix``, ``gs://...``, ``memory://`` in tests), so that a task on one worker reads
what a task on another worker wrote. Locations are strings: :func:`join` builds them, :func:`exists`
asks, and :func:`local_path` gives a local file or folder to read, downloading a remote object
into this machine's cache first (objects under ``artifact_root`` are written once and never
changed, so a cached copy of a URL stays valid). ``runs:/`` and ``models:/`` URIs (the lineage
copies in MLflow) are downloaded through MLflow the same way.

Light module: safe to import from DAG files (fsspec and MLflow are imported on use).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

STEPS = ("ingest", "validate", "drift", "decide", "reassess", "finetune", "evaluate", "register")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MLFLOW_SCHEMES = ("runs", "models", "mlflow-artifacts")
CACHE_ENV = "RETRAIN_CACHE_DIR"


def safe_name(value: str) -> str:
    """A filesystem-safe form of an Airflow run id (``manual__2025-01-01T00:00:00+00:00``)."""
    return _UNSAFE.sub("_", value).strip("_") or "run"


def pipeline_run_id(dag_id: str, run_id: str) -> str:
    """Unique across DAGs: Airflow run ids are unique only within one DAG."""
    return f"{dag_id}__{safe_name(run_id)}"


def scheme(uri: str | Path) -> str:
    """``""`` for a plain path, else the URL scheme (``file``, ``s3``, ``runs``...)."""
    s = str(uri)
    if isinstance(uri, Path) or re.match(r"^[A-Za-z]:[\\/]", s):  # a Path, or a Windows drive letter
        return ""
    return urlparse(s).scheme


def is_local(uri: str | Path) -> bool:
    return scheme(uri) in ("", "file")


def _plain(uri: str | Path) -> Path:
    s = str(uri)
    return Path(urlparse(s).path) if scheme(s) == "file" else Path(s)


def join(base: str | Path, *parts: str) -> str:
    """``base/part/...`` for a local path or a URL (a URL's ``//`` is kept, unlike ``Path``)."""
    if is_local(base):
        return str(_plain(base).joinpath(*parts))
    return "/".join([str(base).rstrip("/"), *(p.strip("/") for p in parts)])


def absolute(uri: str | Path) -> str:
    """An absolute local path (as a string) or the URL unchanged."""
    return str(_plain(uri).absolute()) if is_local(uri) else str(uri)


def run_dir(artifact_root: str, run_id: str) -> str:
    return join(artifact_root, safe_name(run_id))


def step_dir(artifact_root: str, run_id: str, step: str) -> str:
    """``{artifact_root}/{run_id}/{step}``: where a step writes, and nowhere else."""
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; expected one of {', '.join(STEPS)}")
    return join(run_dir(artifact_root, run_id), step)


def filesystem(uri: str) -> tuple[Any, str]:
    """(fsspec filesystem, path inside it) for a remote URL; ValueError naming a missing driver."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(uri)  # type: ignore[no-any-return]
    except ImportError as exc:  # s3fs, gcsfs... not installed
        raise ValueError(f"{uri}: no filesystem for '{scheme(uri)}://' ({exc})") from exc


def exists(uri: str | Path) -> bool:
    if is_local(uri):
        return _plain(uri).exists()
    if scheme(uri) in MLFLOW_SCHEMES:
        return True  # an MLflow artifact: downloading it is the only test
    fs, path = filesystem(str(uri))
    return bool(fs.exists(path))


def cache_root() -> Path:
    """This machine's cache of remote objects (``$RETRAIN_CACHE_DIR``; a temp folder by default)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path(tempfile.gettempdir()) / f"retrain-cache-{os.getuid()}"


def _cache_slot(uri: str) -> Path:
    parsed = urlparse(uri)
    digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
    name = Path(parsed.path.rstrip("/")).name or "object"
    return cache_root() / parsed.scheme / digest / name


def local_path(uri: str | Path) -> Path:
    """A local file or folder holding ``uri``: the path itself when local, else a cached download.

    A remote object (or folder) is downloaded once into :func:`cache_root`, by a rename of a
    complete copy, so a reader never sees half a file. Raises FileNotFoundError when the remote
    object does not exist, ValueError for a scheme with no filesystem installed.
    """
    if is_local(uri):
        return _plain(uri)
    s = str(uri)
    slot = _cache_slot(s)
    if slot.exists():
        return slot
    slot.parent.mkdir(parents=True, exist_ok=True)
    tmp = slot.parent / f".{slot.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        if scheme(s) in MLFLOW_SCHEMES:
            import mlflow

            tmp.mkdir()
            got = Path(mlflow.artifacts.download_artifacts(artifact_uri=s, dst_path=str(tmp)))
            if got != tmp:  # a single file lands inside dst_path
                shutil.move(str(got), str(tmp.with_suffix(".file")))
                shutil.rmtree(tmp)
                tmp = tmp.with_suffix(".file")
        else:
            fs, path = filesystem(s)
            if not fs.exists(path):
                raise FileNotFoundError(f"{s} does not exist")
            if fs.isdir(path):
                fs.get(path.rstrip("/") + "/", str(tmp), recursive=True)
            else:
                fs.get_file(path, str(tmp))
        os.replace(tmp, slot)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
        raise
    return slot


def listdir(uri: str, pattern: str = "*") -> list[str]:
    """The entries of folder ``uri`` matching ``pattern`` (sorted locations; [] when it does not exist)."""
    if is_local(uri):
        root = _plain(uri)
        return sorted(str(p) for p in root.glob(pattern)) if root.is_dir() else []
    fs, path = filesystem(uri)
    if not fs.exists(path):
        return []
    base = path.rstrip("/")
    return sorted(join(uri, p[len(base) :].lstrip("/")) for p in fs.glob(join(base, pattern)) if p.startswith(base))
