"""
### retrain

**ingest → validate → drift-check → fine-tune → evaluate → register** for the support-intent
classifier.

*When:* at each season start (the custom `SeasonalTimetable`: `schedule.season_starts` at 00:00
in `schedule.timezone`) **or** when the `monitor` DAG's drift policy emits an event on the
`support_intent_drift` asset. Manual runs take `force_retrain` and window bounds, and are decided
by the drift policy (`decide`).

*What:* ingests the landing files this DAG has not seen yet (a watermark makes it exactly once),
validates them with Great Expectations, checks drift against the champion's training data with
Evidently, fine-tunes a challenger (warm start from the champion, with replay of its data),
evaluates champion vs challenger on the window's test split plus the evaluation pool (one one-sided
paired test, guardrails, fairness, power) and registers the challenger; the `champion` alias moves
only on `promote`, and each promotion updates the `support_intent_champion` asset. A standing
challenger (insufficient evidence) is first scored on the window's new rows (`reassess`). With
`register.require_approval: true`, a passed challenger waits in `approve_promotion` (Airflow
human-in-the-loop, showing the decision record) before `champion` moves. The last task,
`commit`, marks the window's files as consumed only when nothing before it failed, so a failed run
leaves them for the next one.

Every step logs to MLflow under a parent run named after this DAG run.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from pipeline import tasks
from pipeline.config import load_config
from pipeline.schedules import retrain_schedule

CONFIG = load_config()
SCHEDULE = CONFIG.schedule


@dag(
    dag_id="retrain",
    schedule=retrain_schedule(SCHEDULE),
    start_date=pendulum.datetime(
        SCHEDULE.start_date.year, SCHEDULE.start_date.month, SCHEDULE.start_date.day, tz="UTC"
    ),
    catchup=False,
    max_active_runs=1,
    tags=["retraining", "support-intent"],
    doc_md=__doc__,
    default_args={"retries": 0, "retry_delay": pendulum.duration(seconds=SCHEDULE.retry_delay_s)},
    params={
        "force_retrain": Param(False, type="boolean", description="Train even without drift or a schedule."),
        "window_start": Param(
            None, type=["null", "string"], format="date", description="First file date (YYYY-MM-DD)."
        ),
        "window_end": Param(None, type=["null", "string"], format="date", description="Last file date (YYYY-MM-DD)."),
        "trigger": Param(None, type=["null", "string"], description="Override the recorded trigger (e.g. schedule)."),
    },
)
def retrain():
    # only finetune is skipped directly; the rest follow their trigger rules, so `commit` still runs
    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def should_train(decision: dict) -> bool:
        import logging

        from pipeline import flow
        from pipeline.results import DecisionResult

        train, why = flow.should_train(DecisionResult.from_dict(decision))
        logging.getLogger("retrain").info("train=%s: %s", train, why)
        return train

    @task(  # a GPU worker's queue (Celery) or a GPU pod template (Kubernetes) in a scaled-out deployment
        retries=1,
        queue=CONFIG.finetune.queue,
        executor_config={"pod_template_file": CONFIG.finetune.pod_template_file}
        if CONFIG.finetune.pod_template_file
        else None,
    )
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
    def register(plan: dict, drift: dict, trained: dict, evaluation: dict, ingested: dict, decision: dict) -> dict:
        from pipeline import flow
        from pipeline.config import load_config
        from pipeline.results import DecisionResult, DriftResult, EvaluateResult, FinetuneResult, IngestResult

        p, dr = flow.Plan.from_dict(plan), DriftResult.from_dict(drift)
        ft, ev = FinetuneResult.from_dict(trained), EvaluateResult.from_dict(evaluation)
        ing, dec = IngestResult.from_dict(ingested), DecisionResult.from_dict(decision)
        return flow.register(load_config(), p, dr, ft, ev, ing, dec).to_dict()

    p = tasks.plan()
    ing, ch, dr, dec = tasks.check_window(p)
    now = tasks.reassess(p, ing, ch)  # a standing challenger first: it may become the champion
    gate = should_train(dec)
    ft = finetune(p, ing, now)
    gate >> ft
    ev = evaluate(p, ing, ft, now)
    reg = register(p, dr, ft, ev, ing, dec)
    reg >> tasks.commit(ing)
    announce = tasks.announce_champion(ch)
    if CONFIG.register.require_approval:  # a passed challenger waits for a person (human-in-the-loop)
        _, approved = tasks.approval(reg)
        approved >> announce
    else:
        reg >> announce


retrain()
