"""
### retrain

**ingest → validate → drift-check → fine-tune → evaluate → register** for the support-intent
classifier.

*When:* at each season start (`schedule.season_starts`, 00:00 UTC) **or** when the `monitor` DAG
emits an event on the `support_intent_drift` asset. Manual runs take `force_retrain` and window
bounds.

*What:* ingests the landing files this DAG has not seen yet (a watermark makes it exactly once),
validates them with Great Expectations, checks drift against the champion's training data with
Evidently, fine-tunes a challenger (warm start from the champion, with replay of its data),
evaluates champion vs challenger on the same test split (McNemar + paired bootstrap) and
registers the challenger; the `champion` alias moves only when the gate passes.

Every step logs to MLflow under a parent run named after this DAG run.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from pipeline.config import load_schedule
from pipeline.schedules import retrain_schedule

SCHEDULE = load_schedule()


@dag(
    dag_id="retrain",
    schedule=retrain_schedule(SCHEDULE),
    start_date=pendulum.datetime(SCHEDULE.start_date.year, SCHEDULE.start_date.month, SCHEDULE.start_date.day, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["retraining", "support-intent"],
    doc_md=__doc__,
    default_args={"retries": 0, "retry_delay": pendulum.duration(seconds=30)},
    params={
        "force_retrain": Param(False, type="boolean", description="Train even without drift or a schedule."),
        "window_start": Param(None, type=["null", "string"], format="date", description="First file date (YYYY-MM-DD)."),
        "window_end": Param(None, type=["null", "string"], format="date", description="Last file date (YYYY-MM-DD)."),
        "trigger": Param(None, type=["null", "string"], description="Override the recorded trigger (e.g. schedule)."),
    },
)
def retrain():
    @task
    def plan(**context) -> dict:
        from pipeline import flow

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
        from airflow.sdk.exceptions import AirflowSkipException

        from pipeline import flow
        from pipeline.config import load_config
        from pipeline.errors import NoNewDataError

        try:
            return flow.ingest(load_config(), flow.Plan.from_dict(plan)).to_dict()
        except NoNewDataError as exc:
            raise AirflowSkipException(str(exc)) from exc

    @task  # a gate: no retries
    def validate(plan: dict, ingested: dict) -> dict:
        from pipeline import flow
        from pipeline.config import load_config
        from pipeline.results import IngestResult

        return flow.validate(load_config(), flow.Plan.from_dict(plan), IngestResult.from_dict(ingested)).to_dict()

    @task(retries=2)
    def champion() -> dict:
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

    @task.short_circuit
    def should_train(plan: dict, drift: dict, champ: dict) -> bool:
        import logging

        from pipeline import flow
        from pipeline.results import ChampionInfo, DriftResult

        train, why = flow.should_train(flow.Plan.from_dict(plan), DriftResult.from_dict(drift), ChampionInfo.from_dict(champ))
        logging.getLogger("retrain").info("train=%s: %s", train, why)
        return train

    @task(retries=1)
    def finetune(plan: dict, ingested: dict, champ: dict) -> dict:
        from pipeline import flow
        from pipeline.config import load_config
        from pipeline.results import ChampionInfo, IngestResult

        p, ing, ch = flow.Plan.from_dict(plan), IngestResult.from_dict(ingested), ChampionInfo.from_dict(champ)
        return flow.finetune(load_config(), p, ing, ch).to_dict()

    @task  # a gate: no retries
    def evaluate(plan: dict, ingested: dict, trained: dict, champ: dict) -> dict:
        from pipeline import flow
        from pipeline.config import load_config
        from pipeline.results import ChampionInfo, FinetuneResult, IngestResult

        p, ing = flow.Plan.from_dict(plan), IngestResult.from_dict(ingested)
        ft, ch = FinetuneResult.from_dict(trained), ChampionInfo.from_dict(champ)
        return flow.evaluate(load_config(), p, ing, ft, ch).to_dict()

    @task(retries=2)  # idempotent: a retry reuses the version tagged with this run
    def register(plan: dict, drift: dict, trained: dict, evaluation: dict) -> dict:
        from pipeline import flow
        from pipeline.config import load_config
        from pipeline.results import DriftResult, EvaluateResult, FinetuneResult

        p, dr = flow.Plan.from_dict(plan), DriftResult.from_dict(drift)
        ft, ev = FinetuneResult.from_dict(trained), EvaluateResult.from_dict(evaluation)
        return flow.register(load_config(), p, dr, ft, ev).to_dict()

    p = plan()
    ing = ingest(p)
    val = validate(p, ing)
    ch = champion()
    val >> ch
    dr = drift_check(p, ing, ch)
    gate = should_train(p, dr, ch)
    ft = finetune(p, ing, ch)
    gate >> ft
    ev = evaluate(p, ing, ft, ch)
    register(p, dr, ft, ev)


retrain()
