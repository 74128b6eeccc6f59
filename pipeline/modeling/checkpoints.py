"""Where a fine-tune's checkpoints live between attempts, and whether an attempt may resume from them.

Beside the step's output folder when it is local (``.<name>.checkpoints``), in this machine's cache
for an object-store output (a retry on another worker starts over). A fingerprint of the rows,
labels, start point and config is written with them: an attempt with other inputs or config
discards them instead of resuming a different training. Removed when the step has published.
The checkpoint file itself is written by :mod:`pipeline.modeling.loop`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline import paths

log = logging.getLogger(__name__)


def location(out_dir: str) -> Path:
    """The checkpoint folder of the step whose output is ``out_dir``."""
    if paths.is_local(out_dir):
        final = Path(paths.local_path(out_dir))
        return final.parent / f".{final.name}.checkpoints"
    return paths.cache_root() / "checkpoints" / hashlib.sha256(str(out_dir).encode()).hexdigest()[:16]


def fingerprint(ft: Any, train: pd.DataFrame, val: pd.DataFrame, labels: list[str], start: str) -> str:
    """What a checkpoint was trained on: the fine-tune config, start point, label order and rows."""
    h = hashlib.sha256()
    for part in (ft.model_dump_json(), start, json.dumps(labels)):
        h.update(part.encode())
    for df in (train, val):
        h.update(pd.util.hash_pandas_object(df[["text", "label"]], index=False).to_numpy().tobytes())
    return h.hexdigest()


def prepare(out_dir: str, stamp: str) -> Path:
    """The checkpoint folder for this attempt: kept when an earlier attempt trained the same thing
    (same ``stamp``), emptied otherwise."""
    ckpt = location(out_dir)
    marker = ckpt / "fingerprint.json"
    if ckpt.exists():
        try:
            same = json.loads(marker.read_text()).get("fingerprint") == stamp
        except (OSError, ValueError):
            same = False
        if not same:
            log.warning("finetune: discarding checkpoints in %s: they belong to other inputs or config", ckpt)
            shutil.rmtree(ckpt, ignore_errors=True)
    ckpt.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"fingerprint": stamp}))
    return ckpt


def remove(out_dir: str) -> None:
    shutil.rmtree(location(out_dir), ignore_errors=True)
