"""Register: one model version per pipeline run, then move aliases only as the gate decided.

Every run registers its challenger (a rejected model is still worth keeping: it is the evidence of
the run). The outcome moves the aliases, each move recorded in the alias history:

- ``promote``: ``previous`` to the old champion, ``champion`` to the new version, and the
  ``challenger`` alias is removed (nothing stands any more). With ``register.require_approval`` the
  version takes ``challenger`` and waits: ``retrain approve`` (or the DAG's approval step) promotes.
- ``insufficient_evidence``: ``challenger`` points at the new version; later windows add evidence.
- ``reject``: no alias moves; a standing challenger keeps standing.

Each look at a challenger (estimate and variance of the primary metric) goes to the gate-evidence
table, from which the group-sequential test reads its earlier looks.

Idempotent: the version is found again by its ``pipeline_run_id`` tag, so a retry never creates a
second version; and the alias moves are ordered (``previous`` first, ``champion`` last) and skipped
once ``champion`` already points at this version, so a retry never moves ``previous`` twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import mlflow

from pipeline import lineage, paths, registry, storage, tracking
from pipeline.config import PipelineConfig
from pipeline.results import EvaluateResult, RegisterResult

log = logging.getLogger(__name__)

REGISTRATION = "registration.json"
MAX_TAGS = 12  # per version; everything else lives in the decision record and registration.json
# the caller's tags that make the cut: the manifest hash leads from a version to its window's rows and files
CALLER_TAGS = ("trigger", "window_end", "manifest_sha256", "ingest_run_id")


def version_tags(
    evaluation: EvaluateResult,
    *,
    pipeline_run_id: str,
    train_data_uri: str | None,
    tags: dict[str, Any] | None,
) -> dict[str, str]:
    """The (at most ``MAX_TAGS``) tags a new version is created with: the pipeline's own, then the
    caller's ``trigger``, ``window_end``, ``manifest_sha256`` and ``ingest_run_id``; the rest of the caller's tags live in registration.json.

    The pipeline's keys win over the caller's (``pipeline_run_id`` is the idempotency key and must
    not be overridden); ``None`` values are left out, everything else is stringified.
    """
    own: dict[str, Any] = {
        tracking.TAG_RUN: pipeline_run_id,
        tracking.TAG_SHA: tracking.git_sha(),
        registry.TAG_TRAIN_DATA: train_data_uri,
        "decision_uri": evaluation.decision_uri,
        "outcome": evaluation.outcome,
        "evaluated_against_version": evaluation.champion_version,
        "challenger_accuracy": evaluation.challenger_accuracy,
    }
    extra = {str(k): v for k, v in (tags or {}).items() if v is not None and str(k) in CALLER_TAGS}
    clashes = sorted(set(tags or {}) & set(own))
    if clashes:
        log.warning("register: caller tags %s are reserved by the pipeline and were ignored", ", ".join(clashes))
    merged = {**{k: v for k, v in own.items() if v is not None}, **{k: v for k, v in extra.items() if k not in own}}
    return {k: str(v) for k, v in list(merged.items())[: MAX_TAGS - 1]}  # one left for alias_log


def _description(evaluation: EvaluateResult) -> str:
    head = evaluation.summary or ("PROMOTE" if evaluation.promote else "; ".join(evaluation.reasons))
    return f"{head[:1500]}\nDecision: {evaluation.decision_uri}"


def run(
    cfg: PipelineConfig,
    *,
    model_uri: str,
    evaluation: EvaluateResult,
    pipeline_run_id: str,
    out_dir: str,
    tags: dict[str, str] | None = None,
    train_data_uri: str | None = None,
    reference_uris: Sequence[str] = (),
    lineage_run_id: str | None = None,
) -> RegisterResult:
    """Register ``model_uri`` as a version of ``cfg.register.model_name`` and apply the decision.

    Writes ``registration.json`` under ``out_dir`` (result, version tags, aliases after the step),
    published atomically with a ``_SUCCESS`` marker; a rerun returns the recorded result.
    Before a new version is created, its training data and drift reference are copied into the
    MLflow run ``lineage_run_id`` (the finetune run: :mod:`pipeline.lineage`).
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
        if lineage_run_id:
            lineage.record(c, lineage_run_id, train_data_uri=train_data_uri, reference_uris=reference_uris)
        new_tags = version_tags(evaluation, pipeline_run_id=pipeline_run_id, train_data_uri=train_data_uri, tags=tags)
        # tags go in with the creation call, so the idempotency tag can never be missing from a version
        mv = mlflow.register_model(model_uri, name, await_registration_for=0, tags=new_tags)
        version, reused = str(mv.version), False
        log.info("register: %s registered as %s version %s", model_uri, name, version)
    mv = registry.wait_until_ready(c, name, version, cfg.register.ready_timeout_s)
    c.update_model_version(name, version, description=_description(evaluation))

    from pipeline import promotion

    what = promotion.apply_outcome(
        cfg, version, evaluation, run_id=pipeline_run_id, window_end=(tags or {}).get("window_end") or None
    )
    log.info("register: %s version %s: %s (%s)", name, version, what, evaluation.outcome)

    model = registry.get_registered_model(c, name)
    aliases = {k: str(v) for k, v in ((model.aliases if model else None) or {}).items()}
    registration_path = paths.join(paths.absolute(out_dir), REGISTRATION)
    result = RegisterResult(
        model_name=name,
        version=version,
        promoted=evaluation.promote and aliases.get(registry.CHAMPION) == version,
        outcome=what,
        reused=reused,
        champion_version=aliases.get(registry.CHAMPION),
        previous_version=aliases.get(registry.PREVIOUS),
        model_version_uri=registry.model_version_uri(name, version),
        registration_uri=registration_path,
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
                "caller_tags": dict(tags or {}),
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
