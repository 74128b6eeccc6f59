"""What a model version was trained on, copied into MLflow so that lineage survives ``artifact_root``.

Before a challenger is registered, its finetune run (the version's ``run_id``) receives:

- ``lineage/train_data/train_data.parquet``: the rows it trained on (the window's train split and
  the replayed rows). Later challengers replay from it, and it is the drift reference of a champion
  that has no retrain history yet;
- ``lineage/reference/{train,val,test}.parquet``: the window's curated files, the drift reference
  the next checks compare with after this retrain;
- an MLflow dataset input for each (name, digest, source, schema), shown on the run's page.

Readers keep the ``artifact_root`` locations recorded in tags and in the drift history, and call
:func:`resolve`: the location itself while it exists, else the MLflow copy (``runs:/...``), which
:func:`pipeline.paths.local_path` downloads. Losing ``artifact_root`` then costs a download, not the
replay pool or the drift reference.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

from pipeline import paths

log = logging.getLogger(__name__)

ROOT = "lineage"
TRAIN_DATA = "train_data"
REFERENCE = "reference"
KINDS = (TRAIN_DATA, REFERENCE)


def copy_uri(run_id: str, kind: str, uri: str) -> str:
    """The MLflow copy of ``uri`` logged under the run ``run_id``."""
    if kind not in KINDS:
        raise ValueError(f"unknown lineage kind {kind!r}; expected one of {', '.join(KINDS)}")
    return f"runs:/{run_id}/{ROOT}/{kind}/{PurePosixPath(str(uri)).name}"


def resolve(client: Any, uri: str | None, run_id: str | None, kind: str) -> str | None:
    """``uri`` while it exists; else its MLflow copy in run ``run_id`` when there is one; else ``uri``
    (a version registered before lineage was recorded: the reader then says the file is missing)."""
    if uri is None or run_id is None or paths.exists(uri):
        return uri
    name = PurePosixPath(str(uri)).name
    try:
        logged = {PurePosixPath(a.path).name for a in client.list_artifacts(run_id, f"{ROOT}/{kind}")}
    except Exception as exc:
        log.warning("lineage: %s is gone and run %s's copies cannot be listed (%s)", uri, run_id, exc)
        return uri
    if name not in logged:
        log.warning("lineage: %s is gone from artifact_root and run %s holds no copy of it", uri, run_id)
        return uri
    copy = copy_uri(run_id, kind, uri)
    log.warning("lineage: %s is gone from artifact_root; reading its MLflow copy %s", uri, copy)
    return copy


def resolve_all(client: Any, uris: Sequence[str], run_id: str | None, kind: str) -> tuple[str, ...]:
    return tuple(u for u in (resolve(client, u, run_id, kind) for u in uris) if u is not None)


# the window's files by name: its train split, the validation set early stopping used, the held-out test set
_CONTEXTS = {"train.parquet": "window_train", "val.parquet": "validation", "test.parquet": "evaluation"}


def record(client: Any, run_id: str, *, train_data_uri: str | None, reference_uris: Sequence[str]) -> dict[str, int]:
    """Copy the training data and the drift reference into run ``run_id``; returns rows per file.

    Idempotent: a retry overwrites the same artifact paths, and MLflow keeps one input per digest.
    """
    import pandas as pd
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.exceptions import MlflowException
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    rows: dict[str, int] = {}
    inputs = []
    for kind, uris in ((TRAIN_DATA, [train_data_uri] if train_data_uri else []), (REFERENCE, list(reference_uris))):
        for uri in uris:
            local = paths.local_path(uri)
            client.log_artifact(run_id, str(local), f"{ROOT}/{kind}")
            frame = pd.read_parquet(local)
            name = f"{kind}/{PurePosixPath(str(uri)).name}"
            rows[name] = len(frame)
            try:
                dataset = from_pandas(frame, source=paths.absolute(uri), name=name)
            except MlflowException:  # a scheme MLflow has no dataset source for (memory://...)
                dataset = from_pandas(frame, name=name)
            context = (
                "training" if kind == TRAIN_DATA else _CONTEXTS.get(PurePosixPath(str(uri)).name, "drift_reference")
            )
            inputs.append(DatasetInput(dataset._to_mlflow_entity(), [InputTag(MLFLOW_DATASET_CONTEXT, context)]))
    if inputs:
        client.log_inputs(run_id, datasets=inputs)
    log.info(
        "lineage: %d file(s) copied into run %s (%s)",
        len(rows),
        run_id,
        ", ".join(f"{k} {v} rows" for k, v in rows.items()),
    )
    return rows
