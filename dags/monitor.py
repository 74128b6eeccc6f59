"""
### monitor

Daily **ingest → validate → drift-check** of the newest landing files against the champion's
training data. When drift is detected, the `emit_drift` task updates the `support_intent_drift`
asset (its event carries the window and the drift scores), which starts the `retrain` DAG.

Nothing is trained here; reports land in MLflow under a parent run named after this DAG run.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from pipeline import tasks
from pipeline.config import load_schedule
from pipeline.schedules import drift_asset, monitor_schedule

SCHEDULE = load_schedule()
DRIFT = drift_asset()


@dag(
    dag_id="monitor",
    schedule=monitor_schedule(SCHEDULE),
    start_date=pendulum.datetime(
        SCHEDULE.start_date.year, SCHEDULE.start_date.month, SCHEDULE.start_date.day, tz="UTC"
    ),
    catchup=False,
    max_active_runs=1,
    tags=["monitoring", "support-intent"],
    doc_md=__doc__,
    default_args={"retries": 0, "retry_delay": pendulum.duration(seconds=30)},
    params={
        "window_start": Param(
            None, type=["null", "string"], format="date", description="First file date (YYYY-MM-DD)."
        ),
        "window_end": Param(None, type=["null", "string"], format="date", description="Last file date (YYYY-MM-DD)."),
    },
)
def monitor():
    @task(outlets=[DRIFT])
    def emit_drift(plan: dict, drift: dict, *, outlet_events=None) -> dict:
        """Skipped (no asset event) unless drift was detected."""
        from airflow.sdk.exceptions import AirflowSkipException

        if not drift["drift_detected"]:
            raise AirflowSkipException("no drift: no event on the drift asset")
        extra = {
            "pipeline_run_id": plan["pipeline_run_id"],
            "window_start": plan["window_start"],
            "window_end": plan["window_end"],
            "text_drift_score": drift["text_drift_score"],
            "label_drift_score": drift["label_drift_score"],
        }
        outlet_events[DRIFT].extra = extra
        return extra

    p = tasks.plan()
    ing, _, dr = tasks.check_window(p)
    emit_drift(p, dr) >> tasks.commit(ing)


monitor()
