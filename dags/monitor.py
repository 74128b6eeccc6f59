"""
### monitor

Daily **ingest → validate → drift-check → decide** of the newest landing files. The drift check
measures size-aware signals (text, embedding, label prior, predictions, the champion's accuracy on
the labelled window with its CI, a CBPE estimate) against the reference data and the same season of
the previous cycle; `decide` applies the drift policy (performance drop, k-of-m persistence,
hysteresis, cooldown, budget) and records the decision in the drift history, with a PNG chart in
MLflow. `reassess` scores a standing challenger (one whose evidence was insufficient) on the
window's new rows and lets the always-valid test decide; a promotion updates the
`support_intent_champion` asset. When the policy says retrain, `emit_drift` updates the `support_intent_drift` asset (its
event's extra carries the window, the scores and the reasons), which starts the `retrain` DAG.

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
    default_args={"retries": 0, "retry_delay": pendulum.duration(seconds=SCHEDULE.retry_delay_s)},
    params={
        "window_start": Param(
            None, type=["null", "string"], format="date", description="First file date (YYYY-MM-DD)."
        ),
        "window_end": Param(None, type=["null", "string"], format="date", description="Last file date (YYYY-MM-DD)."),
    },
)
def monitor():
    @task(outlets=[DRIFT])
    def emit_drift(plan: dict, drift: dict, decision: dict, *, outlet_events=None) -> dict:
        """Skipped (no asset event) unless the drift policy decided to retrain."""
        from airflow.sdk.exceptions import AirflowSkipException

        from pipeline.flow import drift_event_extra

        if not decision["retrain"]:
            raise AirflowSkipException(f"no retrain: {decision['summary']}")
        extra = drift_event_extra(plan, drift, decision)
        outlet_events[DRIFT].extra = extra
        return extra

    p = tasks.plan()
    ing, ch, dr, dec = tasks.check_window(p)
    after = tasks.reassess(p, ing, ch)  # a standing challenger gathers evidence on every window
    done = tasks.commit(ing)
    emit_drift(p, dr, dec) >> done
    after >> [tasks.announce_champion(ch), done]


monitor()
