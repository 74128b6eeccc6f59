"""The loop's glue: turn a run plan and earlier results into each step's inputs.

Airflow tasks and the ``retrain`` CLI both call these functions, so a step runs with the same
inputs and writes to the same place whichever way it is started. Each function is a few lines:
resolve URIs with :mod:`pipeline.paths`, call ``steps.<x>.run``, return its result. Heavy step
modules are imported inside the functions, so importing this module stays light.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pipeline import paths, storage
from pipeline.config import PipelineConfig
from pipeline.results import (
    ChampionInfo,
    DecisionResult,
    DriftResult,
    EvaluateResult,
    FinetuneResult,
    IngestResult,
    RegisterResult,
    StepResult,
    ValidateResult,
)

log = logging.getLogger(__name__)

TRIGGERS = ("schedule", "drift", "manual", "cli")


@dataclass(frozen=True)
class Plan(StepResult):
    """What one pipeline run works on: its id, the data window and why it runs."""

    pipeline_run_id: str
    consumer: str
    window_start: str | None
    window_end: str | None
    trigger: str
    force_retrain: bool = False


def _iso_day(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return date.fromisoformat(str(value)[:10]).isoformat()


def make_plan(
    *,
    dag_id: str,
    run_id: str,
    run_type: str,
    params: dict[str, Any] | None = None,
    logical_date: Any = None,
    data_interval_end: Any = None,
    run_after: Any = None,
    drift_events: list[dict[str, Any]] | None = None,
) -> Plan:
    """Decide the window and trigger of an Airflow run from what the run itself carries.

    Window end, in order: the ``window_end`` param; the latest ``window_end`` of the drift events
    that triggered the run; the data interval end of a scheduled run; the logical date; run_after.
    Never the wall clock.
    """
    params = params or {}
    run_type = str(run_type).lower().rsplit(".", 1)[-1]
    events = [e for e in (drift_events or []) if e]
    trigger = str(params.get("trigger") or "")
    if trigger not in TRIGGERS:
        trigger = {
            "scheduled": "schedule",
            "backfill_job": "schedule",
            "backfill": "schedule",
            "asset_triggered": "drift",
        }.get(run_type, "manual")
    ends = sorted(_iso_day(e.get("window_end")) or "" for e in events)
    window_end = (
        _iso_day(params.get("window_end"))
        or (ends[-1] if ends and ends[-1] else None)
        or _iso_day(data_interval_end if run_type in ("scheduled", "backfill_job", "backfill") else None)
        or _iso_day(logical_date)
        or _iso_day(run_after)
    )
    return Plan(
        pipeline_run_id=paths.pipeline_run_id(dag_id, run_id),
        consumer=dag_id,
        window_start=_iso_day(params.get("window_start")),
        window_end=window_end,
        trigger=trigger,
        force_retrain=bool(params.get("force_retrain", False)),
    )


def step_out(cfg: PipelineConfig, plan: Plan, step: str) -> str:
    return str(paths.step_dir(cfg.artifact_root_uri, plan.pipeline_run_id, step))


def ingest(cfg: PipelineConfig, plan: Plan) -> IngestResult:
    from pipeline.steps import ingest as step

    return step.run(
        cfg,
        landing_uri=str(cfg.landing_dir_path),
        out_dir=step_out(cfg, plan, "ingest"),
        pipeline_run_id=plan.pipeline_run_id,
        consumer=plan.consumer,
        window_start=plan.window_start,
        window_end=plan.window_end,
    )


def commit(cfg: PipelineConfig, ing: IngestResult | None) -> int:
    """The run succeeded: mark its files as consumed by its consumer (the last task of every run), and
    let the window's test split join the evaluation pool. The monitor's windows do not: its split of a
    file differs from the retrain consumer's, which trains on the same files."""
    if ing is None:
        return 0
    from pipeline.data import eval_pool
    from pipeline.steps import ingest as step

    committed = step.commit(cfg, ing)
    if ing.consumer != "monitor" and ing.split_sizes.get("test"):
        eval_pool.add(cfg, ing.test_uri, ing.pipeline_run_id, ing.window_end)
    return committed


def announce(cfg: PipelineConfig) -> list[str]:
    """Log, once at a run's start, every gate threshold that is explicitly null; return the lines."""
    warnings = cfg.gate_warnings()
    for line in warnings:
        log.warning(line)
    return warnings


def window_uris(ing: IngestResult) -> list[str]:
    return [ing.train_uri, ing.val_uri, ing.test_uri]


def validate(cfg: PipelineConfig, plan: Plan, ing: IngestResult) -> ValidateResult:
    """Validate the window; bounds are learned from the drift reference (the window the champion answered)."""
    from pipeline.monitoring import monitor
    from pipeline.steps import validate as step

    done = storage.load_done(step_out(cfg, plan, "validate"), ValidateResult)
    refs = () if done is not None else monitor.references(cfg, champion(cfg), plan.window_end).reference_uris
    return step.run(
        cfg,
        data_uris=window_uris(ing),
        out_dir=step_out(cfg, plan, "validate"),
        pipeline_run_id=plan.pipeline_run_id,
        reference_uris=refs,
        window_start=plan.window_start,
    )


def champion(cfg: PipelineConfig) -> ChampionInfo:
    from pipeline import registry

    return registry.get_champion(cfg)


def drift(cfg: PipelineConfig, plan: Plan, ing: IngestResult, champ: ChampionInfo) -> DriftResult:
    from pipeline.monitoring import monitor
    from pipeline.steps import drift as step

    refs = monitor.references(cfg, champ, plan.window_end)
    return step.run(
        cfg,
        current_uris=window_uris(ing),
        reference_uri=list(refs.reference_uris) or None,
        out_dir=step_out(cfg, plan, "drift"),
        pipeline_run_id=plan.pipeline_run_id,
        champion_uri=champ.model_uri,
        seasonal_uris=refs.seasonal_uris,
        seasonal_name=refs.seasonal_name,
        calibration_uri=refs.calibration_uri,
    )


def decide(cfg: PipelineConfig, plan: Plan, ing: IngestResult, dr: DriftResult, champ: ChampionInfo) -> DecisionResult:
    """The drift policy's verdict on this window, recorded in the drift history (see monitoring.policy)."""
    from pipeline.monitoring import monitor

    validated = storage.load_done(step_out(cfg, plan, "validate"), ValidateResult)
    warnings = validated.warnings if validated is not None else ()
    return monitor.decide(cfg, plan, dr, champ, step_out(cfg, plan, "decide"), window_uris(ing), warnings)


def should_train(decision: DecisionResult) -> tuple[bool, str]:
    """Train when the policy says so; the reason is its one-line summary."""
    return decision.retrain, decision.summary


def retrain_scope(cfg: PipelineConfig, plan: Plan, champ: ChampionInfo) -> tuple[PipelineConfig, str]:
    """The config this run's fine-tune uses, and its scope: the decision's (recorded by ``decide``).

    ``incremental`` caps ``finetune.epochs`` at ``policy.incremental_epochs``; it needs a champion to
    warm-start from (``finetune.warm_start``), else the retrain is full. No decision on record (a
    fine-tune run by hand): full."""
    dec = storage.load_done(step_out(cfg, plan, "decide"), DecisionResult)
    scope = (dec.scope if dec is not None else None) or "full"
    epochs = cfg.policy.incremental_epochs
    if scope == "incremental" and (epochs is None or not cfg.finetune.warm_start or not champ.model_uri):
        log.info("retrain scope: incremental asked, full run (no champion to warm-start from, or incremental off)")
        scope = "full"
    if scope == "incremental" and epochs is not None and epochs < cfg.finetune.epochs:
        ft = cfg.finetune.model_copy(update={"epochs": epochs})
        cfg = cfg.model_copy(update={"finetune": ft})
    log.info("retrain scope: %s (%d epochs at most)", scope, cfg.finetune.epochs)
    return cfg, scope


def finetune(cfg: PipelineConfig, plan: Plan, ing: IngestResult, champ: ChampionInfo) -> FinetuneResult:
    from pipeline import registry
    from pipeline.steps import finetune as step

    cfg, scope = retrain_scope(cfg, plan, champ)
    return step.run(
        cfg,
        train_uri=ing.train_uri,
        val_uri=ing.val_uri,
        out_dir=step_out(cfg, plan, "finetune"),
        pipeline_run_id=plan.pipeline_run_id,
        init_model_uri=champ.model_uri,
        replay_uri=registry.replay_source(cfg, champ),
        scope=scope,
    )


def evaluate(
    cfg: PipelineConfig, plan: Plan, ing: IngestResult, ft: FinetuneResult, champ: ChampionInfo
) -> EvaluateResult:
    from pipeline import promotion
    from pipeline.steps import evaluate as step

    st = promotion.standing(cfg, champ.version)
    return step.run(
        cfg,
        test_uri=ing.test_uri,
        challenger_uri=ft.model_uri,
        champion_uri=champ.model_uri,
        champion_version=champ.version,
        out_dir=step_out(cfg, plan, "evaluate"),
        pipeline_run_id=plan.pipeline_run_id,
        window_end=plan.window_end,
        train_uris=tuple(u for u in (ft.train_data_uri, champ.train_data_uri) if u),
        rival=None if st is None else (st.version, st.model_uri),
    )


def register(
    cfg: PipelineConfig,
    plan: Plan,
    drift_result: DriftResult,
    ft: FinetuneResult,
    ev: EvaluateResult,
    ing: IngestResult | None = None,
    decision: DecisionResult | None = None,
) -> RegisterResult:
    """Register the challenger (the alias moves only through the gate), then record the retrain in
    the drift history: later checks compare with the data it trained on, and the cooldown starts."""
    from pipeline.monitoring import monitor
    from pipeline.steps import register as step

    tags = {
        "trigger": plan.trigger,
        "window_start": plan.window_start or "",
        "window_end": plan.window_end or "",
        "drift_detected": str(drift_result.drift_detected).lower(),
        "text_drift_score": "" if drift_result.text_drift_score is None else f"{drift_result.text_drift_score:.4f}",
        "label_drift_score": "" if drift_result.label_drift_score is None else f"{drift_result.label_drift_score:.4f}",
        "finetune_run_id": ft.mlflow_run_id,
        "retrain_rule": decision.rule if decision is not None else "",
        "retrain_scope": ft.scope,
        "manifest_sha256": (ing.manifest_sha256 if ing is not None else None) or "",
        "ingest_run_id": (ing.mlflow_run_id if ing is not None else None) or "",
    }
    reg = step.run(
        cfg,
        model_uri=ft.model_uri,
        evaluation=ev,
        pipeline_run_id=plan.pipeline_run_id,
        out_dir=step_out(cfg, plan, "register"),
        tags=tags,
        train_data_uri=ft.train_data_uri,
        reference_uris=window_uris(ing) if ing is not None else (),
        lineage_run_id=ft.mlflow_run_id,
    )
    monitor.record_retrain(
        cfg,
        pipeline_run_id=plan.pipeline_run_id,
        window_start=plan.window_start,
        window_end=plan.window_end,
        trigger=plan.trigger,
        window_uris=window_uris(ing) if ing is not None else [ft.train_data_uri],
        test_uri=ing.test_uri if ing is not None else "",
        model_version=reg.version,
        promoted=reg.promoted,
        champion_version=ev.champion_version,
        scope=ft.scope,
    )
    return reg


def run_cycle(cfg: PipelineConfig, plan: Plan) -> dict[str, Any]:
    """The whole loop in one process (the CLI's ``retrain run``), same steps as the DAG."""
    out: dict[str, Any] = {"plan": plan.to_dict()}
    if warnings := announce(cfg):
        out["warnings"] = warnings
    ing = ingest(cfg, plan)
    out["ingest"] = ing.to_dict()
    out["validate"] = validate(cfg, plan, ing).to_dict()
    champ = champion(cfg)
    out["champion"] = champ.to_dict()
    dr = drift(cfg, plan, ing, champ)
    out["drift"] = dr.to_dict()
    dec = decide(cfg, plan, ing, dr, champ)
    out["decision"] = dec.to_dict()
    if (re := reassess(cfg, plan, ing, champ)) is not None:
        out["reassess"] = re
        champ = champion(cfg)  # a standing challenger may just have been promoted
    train, why = should_train(dec)
    log.info("train=%s (%s)", train, why)
    if train:
        ft = finetune(cfg, plan, ing, champ)
        out["finetune"] = ft.to_dict()
        ev = evaluate(cfg, plan, ing, ft, champ)
        out["evaluate"] = ev.to_dict()
        out["register"] = register(cfg, plan, dr, ft, ev, ing, dec).to_dict()
    out["watermark_committed"] = commit(cfg, ing)
    return out


def reassess(cfg: PipelineConfig, plan: Plan, ing: IngestResult, champ: ChampionInfo) -> dict[str, Any] | None:
    """A standing challenger (insufficient evidence so far) is scored on this window's new rows."""
    from pipeline import promotion

    return promotion.reassess(cfg, plan.pipeline_run_id, ing, champ, plan.window_end)


def champion_event(cfg: PipelineConfig, before: ChampionInfo) -> dict[str, Any] | None:
    """The ``champion`` asset event's extra when the champion changed since ``before``, else None."""
    from pipeline import registry, tracking

    now = champion(cfg)
    if now.version is None or now.version == before.version:
        return None
    mv = tracking.client(cfg).get_model_version(cfg.register.model_name, now.version)
    tags = mv.tags or {}
    return {
        "model_name": now.model_name,
        "version": now.version,
        "previous_version": before.version,
        "model_uri": now.model_uri,
        "outcome": tags.get("outcome"),
        "decision_uri": tags.get("decision_uri"),
        "summary": (mv.description or "").split("\n", 1)[0],
        "alias_log": tags.get(registry.TAG_ALIAS_LOG),
    }


def drift_event_extra(plan: dict[str, Any], drift: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any]:
    """The drift asset event's extra: the window, the scores and the policy's reasons (JSON-able)."""
    tests = (drift.get("tests") or {}).get(drift.get("reference_used") or "training", {})
    return {
        "pipeline_run_id": plan["pipeline_run_id"],
        "window_start": plan["window_start"],
        "window_end": plan["window_end"],
        "rule": decision["rule"],
        "summary": decision["summary"],
        "scope": decision.get("scope"),
        "reasons": [r for r in decision.get("reasons", []) if r.get("fired")],
        "scores": {name: {"p_value": t["p_value"], "value": t["value"]} for name, t in tests.items()},
        "performance": drift.get("performance"),
        "estimate": drift.get("estimate"),
        "new_labels": list(drift.get("new_labels") or []),
        "text_drift_score": drift.get("text_drift_score"),
        "label_drift_score": drift.get("label_drift_score"),
        "cooldown_until": decision.get("cooldown_until"),
    }
