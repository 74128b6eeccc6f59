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

from pipeline import paths
from pipeline.config import PipelineConfig
from pipeline.results import (
    ChampionInfo,
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
        trigger = {"scheduled": "schedule", "asset_triggered": "drift"}.get(run_type, "manual")
    ends = sorted(_iso_day(e.get("window_end")) or "" for e in events)
    window_end = (
        _iso_day(params.get("window_end"))
        or (ends[-1] if ends and ends[-1] else None)
        or _iso_day(data_interval_end if run_type == "scheduled" else None)
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
    """The run succeeded: mark its files as consumed by its consumer (the last task of every run)."""
    if ing is None:
        return 0
    from pipeline.steps import ingest as step

    return step.commit(cfg, ing)


def announce(cfg: PipelineConfig) -> list[str]:
    """Log, once at a run's start, every gate threshold that is explicitly null; return the lines."""
    warnings = cfg.gate_warnings()
    for line in warnings:
        log.warning(line)
    return warnings


def window_uris(ing: IngestResult) -> list[str]:
    return [ing.train_uri, ing.val_uri, ing.test_uri]


def validate(cfg: PipelineConfig, plan: Plan, ing: IngestResult) -> ValidateResult:
    from pipeline.steps import validate as step

    return step.run(
        cfg, data_uris=window_uris(ing), out_dir=step_out(cfg, plan, "validate"), pipeline_run_id=plan.pipeline_run_id
    )


def champion(cfg: PipelineConfig) -> ChampionInfo:
    from pipeline import registry

    return registry.get_champion(cfg)


def drift(cfg: PipelineConfig, plan: Plan, ing: IngestResult, champ: ChampionInfo) -> DriftResult:
    from pipeline.steps import drift as step

    return step.run(
        cfg,
        current_uris=window_uris(ing),
        reference_uri=champ.train_data_uri,
        out_dir=step_out(cfg, plan, "drift"),
        pipeline_run_id=plan.pipeline_run_id,
    )


def should_train(plan: Plan, drift_result: DriftResult, champ: ChampionInfo) -> tuple[bool, str]:
    """Train on the season's schedule, on a drift event or fresh drift, when forced, or with no champion."""
    if not champ.exists:
        return True, "no champion yet"
    if plan.force_retrain:
        return True, "force_retrain param"
    if plan.trigger in ("schedule", "drift"):
        return True, f"triggered by {plan.trigger}"
    if drift_result.drift_detected:
        return True, "drift detected in this window"
    return False, "no drift, no schedule, not forced"


def finetune(cfg: PipelineConfig, plan: Plan, ing: IngestResult, champ: ChampionInfo) -> FinetuneResult:
    from pipeline.steps import finetune as step

    return step.run(
        cfg,
        train_uri=ing.train_uri,
        val_uri=ing.val_uri,
        out_dir=step_out(cfg, plan, "finetune"),
        pipeline_run_id=plan.pipeline_run_id,
        init_model_uri=champ.model_uri,
        replay_uri=champ.train_data_uri,
    )


def evaluate(
    cfg: PipelineConfig, plan: Plan, ing: IngestResult, ft: FinetuneResult, champ: ChampionInfo
) -> EvaluateResult:
    from pipeline.steps import evaluate as step

    return step.run(
        cfg,
        test_uri=ing.test_uri,
        challenger_uri=ft.model_uri,
        champion_uri=champ.model_uri,
        champion_version=champ.version,
        out_dir=step_out(cfg, plan, "evaluate"),
        pipeline_run_id=plan.pipeline_run_id,
    )


def register(
    cfg: PipelineConfig, plan: Plan, drift_result: DriftResult, ft: FinetuneResult, ev: EvaluateResult
) -> RegisterResult:
    from pipeline.steps import register as step

    tags = {
        "trigger": plan.trigger,
        "window_start": plan.window_start or "",
        "window_end": plan.window_end or "",
        "drift_detected": str(drift_result.drift_detected).lower(),
        "text_drift_score": "" if drift_result.text_drift_score is None else f"{drift_result.text_drift_score:.4f}",
        "label_drift_score": "" if drift_result.label_drift_score is None else f"{drift_result.label_drift_score:.4f}",
        "finetune_run_id": ft.mlflow_run_id,
    }
    return step.run(
        cfg,
        model_uri=ft.model_uri,
        evaluation=ev,
        pipeline_run_id=plan.pipeline_run_id,
        out_dir=step_out(cfg, plan, "register"),
        tags=tags,
        train_data_uri=ft.train_data_uri,
    )


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
    train, why = should_train(plan, dr, champ)
    out["decision"] = {"train": train, "reason": why}
    log.info("train=%s (%s)", train, why)
    if train:
        ft = finetune(cfg, plan, ing, champ)
        out["finetune"] = ft.to_dict()
        ev = evaluate(cfg, plan, ing, ft, champ)
        out["evaluate"] = ev.to_dict()
        out["register"] = register(cfg, plan, dr, ft, ev).to_dict()
    out["watermark_committed"] = commit(cfg, ing)
    return out
