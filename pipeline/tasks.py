"""TaskFlow tasks shared by the DAG files: each body is local imports, config, one flow call.

Light module: importing it loads only ``airflow.sdk``; every heavy import happens inside a task
body at run time. Retries follow the house rule: steps that can fail transiently retry, gates
(validate, evaluate) never do.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import task


@task
def plan(**context: Any) -> dict:
    """The run's window and trigger, from params, drift events, the data interval or logical date."""
    from pipeline import flow
    from pipeline.config import load_config

    flow.announce(load_config())  # an explicitly null gate threshold is said at the run's start
    run = context["dag_run"]
    events = [dict(e.extra or {}) for evs in (context.get("triggering_asset_events") or {}).values() for e in evs]
    return flow.make_plan(
        dag_id=run.dag_id,
        run_id=run.run_id,
        run_type=run.run_type,
        params=context["params"],
        logical_date=run.logical_date,
        data_interval_end=run.data_interval_end,
        run_after=run.run_after,
        drift_events=events,
    ).to_dict()


@task(retries=2)
def ingest(plan: dict) -> dict:
    """New landing files for this DAG's watermark; skips the rest of the run when there are none."""
    from airflow.sdk.exceptions import AirflowSkipException

    from pipeline import flow
    from pipeline.config import load_config
    from pipeline.errors import NothingToDoError

    try:
        return flow.ingest(load_config(), flow.Plan.from_dict(plan)).to_dict()
    except NothingToDoError as exc:  # no new file, or every row quarantined: nothing to do
        raise AirflowSkipException(str(exc)) from exc


@task  # a gate: no retries
def validate(plan: dict, ingested: dict) -> dict:
    from pipeline import flow
    from pipeline.config import load_config
    from pipeline.results import IngestResult

    return flow.validate(load_config(), flow.Plan.from_dict(plan), IngestResult.from_dict(ingested)).to_dict()


@task(retries=2)
def champion() -> dict:
    """The registry's champion once per run, so every later task compares against the same version."""
    from pipeline import flow
    from pipeline.config import load_config

    return flow.champion(load_config()).to_dict()


@task(retries=1)
def drift_check(plan: dict, ingested: dict, champ: dict) -> dict:
    from pipeline import flow
    from pipeline.config import load_config
    from pipeline.results import ChampionInfo, IngestResult

    p, ing, ch = flow.Plan.from_dict(plan), IngestResult.from_dict(ingested), ChampionInfo.from_dict(champ)
    return flow.drift(load_config(), p, ing, ch).to_dict()


@task(retries=1)  # idempotent: the history keeps one row per run
def decide(plan: dict, ingested: dict, drift: dict, champ: dict) -> dict:
    """The drift policy's decision on this window; its summary line goes to the task log."""
    import logging

    from pipeline import flow
    from pipeline.config import load_config
    from pipeline.results import ChampionInfo, DriftResult, IngestResult

    p, ing = flow.Plan.from_dict(plan), IngestResult.from_dict(ingested)
    dec = flow.decide(load_config(), p, ing, DriftResult.from_dict(drift), ChampionInfo.from_dict(champ))
    logging.getLogger("retrain.policy").info("%s", dec.summary)
    return dec.to_dict()


@task(trigger_rule="none_failed", retries=2)  # idempotent
def commit(ingested: dict | None) -> int:
    """Last task: the run succeeded (nothing upstream failed), so its files count as consumed."""
    from pipeline import flow
    from pipeline.config import load_config
    from pipeline.results import IngestResult

    return flow.commit(load_config(), None if ingested is None else IngestResult.from_dict(ingested))


@task(retries=1)  # idempotent: the look is recorded once per run
def reassess(plan: dict, ingested: dict, champ: dict) -> dict:
    """A standing challenger is scored on this window; returns the champion after (it may have changed)."""
    import logging

    from pipeline import flow
    from pipeline.config import load_config
    from pipeline.results import ChampionInfo, IngestResult

    cfg = load_config()
    p, ing, ch = flow.Plan.from_dict(plan), IngestResult.from_dict(ingested), ChampionInfo.from_dict(champ)
    res = flow.reassess(cfg, p, ing, ch)
    logging.getLogger("retrain.gate").info(
        "%s", "no standing challenger" if res is None else res["evaluate"]["summary"]
    )
    return flow.champion(cfg).to_dict() if res is not None else champ


def check_window(p: Any) -> tuple[Any, Any, Any, Any]:
    """Wire plan → ingest → validate → champion → drift_check → decide; return (ingest, champion,
    drift, decision)."""
    ing: Any = ingest(p)
    val: Any = validate(p, ing)
    ch: Any = champion()
    val >> ch  # no registry call for data that failed validation
    dr: Any = drift_check(p, ing, ch)
    return ing, ch, dr, decide(p, ing, dr, ch)


def announce_champion(before: Any) -> Any:
    """A task that updates the ``champion`` asset when the champion changed during the run (a promotion
    by register or by reassess); skipped otherwise. ``before``: the champion at the run's start."""
    from pipeline.schedules import champion_asset

    asset = champion_asset()

    @task(outlets=[asset], trigger_rule="none_failed")
    def announce_champion(champ: dict | None, *, outlet_events: Any = None) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from pipeline import flow
        from pipeline.config import load_config
        from pipeline.results import ChampionInfo

        if champ is None:  # the run ended before it read the champion (no new data): nothing can have moved
            raise AirflowSkipException("the run did not read the champion")
        extra = flow.champion_event(load_config(), ChampionInfo.from_dict(champ))
        if extra is None:
            raise AirflowSkipException("the champion did not change")
        outlet_events[asset].extra = extra
        return extra

    return announce_champion(before)


@task
def approval_request(registered: dict) -> dict:
    """What the approver sees: the decision record. Skipped unless the gate passed a version that waits."""
    from pathlib import Path

    from airflow.sdk.exceptions import AirflowSkipException

    if registered.get("outcome") != "awaiting_approval":
        raise AirflowSkipException(f"nothing waits for approval ({registered.get('outcome')})")
    import json

    version = registered["version"]
    registration = json.loads(Path(registered["registration_uri"]).read_text())
    record = Path(registration["decision_uri"]).with_name("decision.md")
    body = record.read_text() if record.is_file() else f"(decision record {record} not found)"
    return {"version": version, "subject": f"Promote {registered['model_name']} v{version} to champion?", "body": body}


@task
def promote_approved(request: dict, **context: Any) -> dict:
    """The approver said yes: move champion (the same staleness check as the gate's promotion)."""
    from pipeline import promotion
    from pipeline.config import load_config

    answer = context["ti"].xcom_pull(task_ids="approve_promotion") or {}
    who = (answer.get("responded_by_user") or {}).get("name") or "unknown"
    run_id = f"{context['dag_run'].dag_id}__{context['dag_run'].run_id}"
    moved = promotion.approve(load_config(), request["version"], actor=f"airflow:{who}", run_id=run_id)
    return {"version": request["version"], "promoted": moved, "approved_by": who}


def approval(registered: Any) -> tuple[Any, Any]:
    """register → approval_request → approve_promotion (Airflow human-in-the-loop) → promote_approved."""
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    req: Any = approval_request(registered)
    ask = ApprovalOperator(
        task_id="approve_promotion",
        subject="{{ ti.xcom_pull(task_ids='approval_request')['subject'] }}",
        body="{{ ti.xcom_pull(task_ids='approval_request')['body'] }}",
    )
    done = promote_approved(req)
    req >> ask >> done
    return req, done


@task(retries=1)  # idempotent: the decision is recomputed from the whole feedback log
def ab_decide(**context: Any) -> dict:
    """The online A/B decision from the feedback log, applied to the registry; its summary goes to the log."""
    import logging

    from pipeline.ab import online
    from pipeline.config import load_config

    run = context["dag_run"]
    res = online.run(load_config(), run_id=f"{run.dag_id}__{run.run_id}")
    logging.getLogger("retrain.ab").info("%s", res.summary)
    return res.to_dict()
