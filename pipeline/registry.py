"""Read and move the MLflow registry state the pipeline relies on: versions tagged by run, aliases.

Aliases, never stages: ``champion`` (served), ``challenger`` (latest registered candidate) and
``previous`` (the champion before the last promotion, for rollback). Every version carries the tag
``pipeline_run_id`` of the run that registered it, which is how a retry finds its own version.

Registry gotchas handled here (MLflow 3.17, SQLAlchemy store):

- ``ModelVersion.version`` comes back as an ``int`` from the SQL store although typed ``str``;
  everything here returns versions as ``str``.
- ``get_model_version_by_alias`` raises RESOURCE_DOES_NOT_EXIST for a missing model but
  INVALID_PARAMETER_VALUE for a missing alias, so "no champion" is read from
  ``RegisteredModel.aliases`` instead of from an error code. Any other registry error propagates:
  a registry that cannot be read must never look like "there is no champion yet" (the next model
  would be gated as a first model).

Heavy module (imports mlflow): use from steps only.
"""

from __future__ import annotations

import json
import logging
import time

from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.entities.model_registry.model_version_status import ModelVersionStatus
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.tracking import MlflowClient

from pipeline import lineage, paths, tracking
from pipeline.config import PipelineConfig
from pipeline.errors import RegistryError
from pipeline.results import ChampionInfo

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS = "previous"
TAG_TRAIN_DATA = "train_data_uri"


def model_version_uri(model_name: str, version: str) -> str:
    return f"models:/{model_name}/{version}"


def _is_missing(exc: MlflowException) -> bool:
    return exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST)


def get_registered_model(c: MlflowClient, model_name: str) -> RegisteredModel | None:
    """The registered model, or ``None`` when it does not exist (other errors propagate)."""
    try:
        return c.get_registered_model(model_name)
    except MlflowException as exc:
        if _is_missing(exc):
            return None
        raise


def alias_version(c: MlflowClient, model_name: str, alias: str) -> str | None:
    """The version an alias points at, or ``None`` when the model or the alias does not exist."""
    model = get_registered_model(c, model_name)
    if model is None:
        return None
    version = (model.aliases or {}).get(alias)
    return None if version is None else str(version)


def get_champion(cfg: PipelineConfig) -> ChampionInfo:
    """What the registry says about the champion of ``cfg.register.model_name``.

    ``version`` is ``None`` when the model or its ``champion`` alias does not exist.
    ``model_uri`` pins the version (``models:/<name>/<version>``), so a promotion that happens
    while a run is in flight does not change which model that run evaluates against.
    """
    name = cfg.register.model_name
    c = tracking.client(cfg)
    version = alias_version(c, name, CHAMPION)
    if version is None:
        log.info("registry %s: no champion for %s", cfg.registry_uri, name)
        return ChampionInfo(model_name=name, version=None, model_uri=None, train_data_uri=None)
    mv = c.get_model_version(name, version)
    tags = mv.tags or {}
    info = ChampionInfo(
        model_name=name,
        version=version,
        model_uri=model_version_uri(name, version),
        train_data_uri=lineage.resolve(c, tags.get(TAG_TRAIN_DATA), mv.run_id, lineage.TRAIN_DATA),
        accuracy=_float(tags.get("challenger_accuracy")),
    )
    log.info("registry %s: champion of %s is version %s (%s)", cfg.registry_uri, name, version, info.model_uri)
    return info


def _float(value: str | None) -> float | None:
    try:
        return None if value in (None, "", "None") else float(value)  # type: ignore[arg-type]
    except ValueError:
        return None


def _quote(value: str) -> str:
    if "'" in value:
        raise ValueError(f"{value!r}: a single quote cannot be used in an MLflow search filter")
    return f"'{value}'"


def find_version_by_run(cfg: PipelineConfig, pipeline_run_id: str) -> ModelVersion | None:
    """The version of ``cfg.register.model_name`` tagged ``pipeline_run_id=<pipeline_run_id>``, if any.

    Two versions with the same tag can only come from two attempts of one task racing each other;
    the lowest version wins, deterministically, and a warning names both.
    """
    name = cfg.register.model_name
    c = tracking.client(cfg)
    found = list(
        c.search_model_versions(f"name = {_quote(name)} and tags.{tracking.TAG_RUN} = {_quote(pipeline_run_id)}")
    )
    if not found:
        return None
    found.sort(key=lambda mv: int(mv.version))
    if len(found) > 1:
        log.warning(
            "%s has %d versions tagged %s=%s (%s); using version %s",
            name,
            len(found),
            tracking.TAG_RUN,
            pipeline_run_id,
            ", ".join(str(v.version) for v in found),
            found[0].version,
        )
    return found[0]


def replay_source(cfg: PipelineConfig, champion: ChampionInfo) -> tuple[str, ...]:
    """The training data a new challenger replays: the champion's own, that of the newest version
    trained from the current champion (a rejected or standing challenger: its window and its replay),
    and that of earlier versions, newest first, up to ``finetune.replay_windows`` files in all. A
    window whose challenger was not promoted is then not lost to every later challenger, and older
    seasons stay in the pool however many retrains ago they were (the replay sampler balances them:
    :func:`pipeline.data.sampling.replay_rows`). Training rows only: evaluation rows never are."""
    own = (champion.train_data_uri,) if champion.train_data_uri else ()
    if champion.version is None:
        return own
    c = tracking.client(cfg)
    name = _quote(cfg.register.model_name)
    newer: tuple[str, ...] = ()
    found = c.search_model_versions(f"name = {name} and tags.evaluated_against_version = {_quote(champion.version)}")
    for mv in sorted(found, key=lambda v: -int(v.version)):
        uri = lineage.resolve(c, (mv.tags or {}).get(TAG_TRAIN_DATA), mv.run_id, lineage.TRAIN_DATA)
        if uri and int(mv.version) > int(champion.version) and paths.exists(uri):
            log.info("replay: v%s's training data too (trained from champion v%s)", mv.version, champion.version)
            newer = (uri,)
            break
    chosen = [*newer, *own]
    older = [v for v in c.search_model_versions(f"name = {name}") if int(v.version) < int(champion.version)]
    for mv in sorted(older, key=lambda v: -int(v.version)):
        if len(chosen) >= max(cfg.finetune.replay_windows, len(newer) + len(own)):
            break
        uri = lineage.resolve(c, (mv.tags or {}).get(TAG_TRAIN_DATA), mv.run_id, lineage.TRAIN_DATA)
        if uri and uri not in chosen and paths.exists(uri):
            chosen.append(uri)
    if len(chosen) > len(newer) + len(own):
        log.info("replay: %d earlier version(s)' training data too", len(chosen) - len(newer) - len(own))
    return tuple(chosen)


def wait_until_ready(c: MlflowClient, model_name: str, version: str, timeout_s: float) -> ModelVersion:
    """Poll until the version is READY; raise :class:`RegistryError` if it failed or timed out."""
    deadline = time.monotonic() + timeout_s
    delay = 0.5
    while True:
        mv = c.get_model_version(model_name, version)
        status = ModelVersionStatus.from_string(mv.status) if isinstance(mv.status, str) else mv.status
        if status == ModelVersionStatus.READY:
            return mv
        if status == ModelVersionStatus.FAILED_REGISTRATION:
            raise RegistryError(
                f"{model_name} version {version}: registration failed ({mv.status_message or 'no message'})"
            )
        if time.monotonic() > deadline:
            raise RegistryError(
                f"{model_name} version {version}: still {mv.status} after {timeout_s:.0f}s (register.ready_timeout_s)"
            )
        time.sleep(delay)
        delay = min(delay * 2, 10.0)


TAG_ALIAS_LOG = "alias_log"


def move_alias(
    cfg: PipelineConfig,
    alias: str,
    version: str | None,
    *,
    actor: str,
    reason: str,
    pipeline_run_id: str,
    numbers: dict[str, object] | None = None,
) -> bool:
    """Point ``alias`` at ``version`` (None: remove it), and record the move in the alias history and
    on the versions involved (tag ``alias_log``). Returns False when nothing changed."""
    from pipeline import registry_history

    name = cfg.register.model_name
    c = tracking.client(cfg)
    before = alias_version(c, name, alias)
    if before == version:
        return False
    if version is None:
        c.delete_registered_model_alias(name, alias)
    else:
        c.set_registered_model_alias(name, alias, version)
    registry_history.record_move(
        cfg.registry_history_url,
        registry_history.Move(name, alias, before, version, actor, reason, pipeline_run_id, dict(numbers or {})),
    )
    stamp = f"{alias}: {before or '-'} -> {version or '-'} by {actor}"
    for v in {before, version} - {None}:
        mv = c.get_model_version(name, str(v))
        log_ = [*json.loads((mv.tags or {}).get(TAG_ALIAS_LOG) or "[]"), stamp][-8:]
        c.set_model_version_tag(name, str(v), TAG_ALIAS_LOG, json.dumps(log_)[:4900])
    log.info("registry: %s %s (%s)", name, stamp, reason)
    return True
