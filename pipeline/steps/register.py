"""Register: one model version per pipeline run, then move aliases only as the gate decided.

Every run registers its challenger (a rejected model is still worth keeping: it is the evidence of
the run) and points ``challenger`` at it. Only an evaluation with ``promote`` moves ``previous`` to
the old champion and ``champion`` to the new version.

Idempotent: the version is found again by its ``pipeline_run_id`` tag, so a retry never creates a
second version; and the alias moves are ordered (``previous`` first, ``champion`` last) and skipped
once ``champion`` already points at this version, so a retry never moves ``previous`` twice.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mlflow

from pipeline import registry, storage, tracking
from pipeline.config import PipelineConfig
from pipeline.errors import RegistryError
from pipeline.results import EvaluateResult, RegisterResult

log = logging.getLogger(__name__)

REGISTRATION = "registration.json"
_EVAL_TAGS = (
    "challenger_macro_f1",
    "challenger_accuracy",
    "champion_macro_f1",
    "champion_accuracy",
    "p_value",
    "macro_f1_diff",
    "ci_low",
    "ci_high",
    "test_rows",
)


def version_tags(
    evaluation: EvaluateResult,
    *,
    pipeline_run_id: str,
    train_data_uri: str | None,
    tags: dict[str, Any] | None,
) -> dict[str, str]:
    """The tags a new version is created with: caller's ``tags`` plus the pipeline's own.

    The pipeline's keys win over the caller's (``pipeline_run_id`` is the idempotency key and must
    not be overridden); ``None`` values are left out, everything else is stringified.
    """
    own: dict[str, Any] = {
        tracking.TAG_RUN: pipeline_run_id,
        tracking.TAG_SHA: tracking.git_sha(),
        registry.TAG_TRAIN_DATA: train_data_uri,
        "decision_uri": evaluation.decision_uri,
        "promoted": str(evaluation.promote).lower(),
        "is_first_model": str(evaluation.is_first_model).lower(),
        "evaluated_against_version": evaluation.champion_version,
        "evaluate_mlflow_run_id": evaluation.mlflow_run_id,
        **{key: getattr(evaluation, key) for key in _EVAL_TAGS},
    }
    extra = {str(k): v for k, v in (tags or {}).items() if v is not None}
    clashes = sorted(set(extra) & set(own))
    if clashes:
        log.warning("register: caller tags %s are reserved by the pipeline and were ignored", ", ".join(clashes))
    merged = {**extra, **{k: v for k, v in own.items() if v is not None}}
    return {k: str(v) for k, v in merged.items()}


def _description(evaluation: EvaluateResult) -> str:
    if evaluation.promote:
        return (
            f"Promoted by the gate (macro-F1 {evaluation.challenger_macro_f1:.4f}). Decision: {evaluation.decision_uri}"
        )
    return "Not promoted: " + "; ".join(evaluation.reasons) + f". Decision: {evaluation.decision_uri}"


def run(
    cfg: PipelineConfig,
    *,
    model_uri: str,
    evaluation: EvaluateResult,
    pipeline_run_id: str,
    out_dir: str,
    tags: dict[str, str] | None = None,
    train_data_uri: str | None = None,
) -> RegisterResult:
    """Register ``model_uri`` as a version of ``cfg.register.model_name`` and apply the decision.

    Writes ``registration.json`` under ``out_dir`` (result, version tags, aliases after the step),
    published atomically with a ``_SUCCESS`` marker; a rerun returns the recorded result.
    Raises :class:`RegistryError` when the version fails to become READY, or when the gate's
    decision is stale: it promotes over a champion other than the one that was evaluated.
    """
    done = storage.load_done(out_dir, RegisterResult)
    if done is not None:
        log.info("register: %s already finished (version %s); returning the recorded result", out_dir, done.version)
        return done
    name = cfg.register.model_name
    c = tracking.client(cfg)

    existing = registry.find_version_by_run(cfg, pipeline_run_id)
    if existing is not None:
        version, reused = str(existing.version), True
        log.info("register: reusing %s version %s tagged %s=%s", name, version, tracking.TAG_RUN, pipeline_run_id)
        if existing.source != model_uri:
            # expected for runs:/ URIs (MLflow stores the resolved source); for models:/m-... it means
            # this run registered a different model before, and the first one stays the run's version
            log.warning(
                "register: version %s has source %s, this attempt passed %s", version, existing.source, model_uri
            )
    else:
        new_tags = version_tags(evaluation, pipeline_run_id=pipeline_run_id, train_data_uri=train_data_uri, tags=tags)
        # tags go in with the creation call, so the idempotency tag can never be missing from a version
        mv = mlflow.register_model(model_uri, name, await_registration_for=0, tags=new_tags)
        version, reused = str(mv.version), False
        log.info("register: %s registered as %s version %s", model_uri, name, version)
    mv = registry.wait_until_ready(c, name, version, cfg.register.ready_timeout_s)
    c.update_model_version(name, version, description=_description(evaluation))

    champion_now = registry.alias_version(c, name, registry.CHAMPION)
    promoting = evaluation.promote and champion_now != version
    if promoting and champion_now != evaluation.champion_version:
        raise RegistryError(
            f"register: {name} champion is version {champion_now or 'none'}, but the gate compared against "
            f"{evaluation.champion_version or 'no champion'} ({evaluation.decision_uri}); "
            "evaluate again before promoting"
        )
    c.set_registered_model_alias(name, registry.CHALLENGER, version)
    if promoting:
        # previous first, champion last: a crash in between leaves the old champion serving, and the
        # retry sets previous to the same version again before moving champion
        if champion_now is not None:
            c.set_registered_model_alias(name, registry.PREVIOUS, champion_now)
        c.set_registered_model_alias(name, registry.CHAMPION, version)
        log.info("register: %s champion %s -> %s (previous=%s)", name, champion_now, version, champion_now)
    elif evaluation.promote:
        log.info("register: %s version %s is already champion; aliases left as they are", name, version)
    else:
        log.info("register: %s version %s not promoted; champion stays %s", name, version, champion_now)

    model = registry.get_registered_model(c, name)
    aliases = {k: str(v) for k, v in ((model.aliases if model else None) or {}).items()}
    registration_path = Path(out_dir).absolute() / REGISTRATION
    result = RegisterResult(
        model_name=name,
        version=version,
        promoted=evaluation.promote and aliases.get(registry.CHAMPION) == version,
        reused=reused,
        champion_version=aliases.get(registry.CHAMPION),
        previous_version=aliases.get(registry.PREVIOUS),
        model_version_uri=registry.model_version_uri(name, version),
        registration_uri=str(registration_path),
    )
    with storage.staged_dir(out_dir) as stage:
        storage.write_json_atomic(
            stage / REGISTRATION,
            {
                **result.to_dict(),
                "model_uri": model_uri,
                "source": mv.source,
                "tags": dict(mv.tags or {}),
                "aliases": aliases,
                "pipeline_run_id": pipeline_run_id,
                "decision_uri": evaluation.decision_uri,
                "reasons": list(evaluation.reasons),
            },
        )
        storage.write_done(stage, result)
    log.info(
        "register: %s v%s%s | champion=%s previous=%s | %s",
        name,
        version,
        " (reused)" if reused else "",
        result.champion_version,
        result.previous_version,
        registration_path,
    )
    return result
