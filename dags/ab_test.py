"""
### ab_test

Hourly, and sooner when `ab.trigger_feedback` feedback events arrive (an asset watcher on the
serving log updates `support_intent_feedback`): the **online A/B decision**. The serving app (`retrain serve`) sends a share of users
(`serve.challenger_share`, sticky by user) to the registry's `challenger` and logs every prediction
and every feedback. This DAG replays the test's feedback into looks and applies the always-valid
rule (normal-mixture mSPRT with its confidence sequence on the accuracy difference; valid however
often it looks): **promote** (`champion` moves, `previous` keeps the old one, `challenger` is
removed, the move is recorded with its numbers), **stop** for harm or futility, **inconclusive**
after `ab.max_days` or `ab.max_samples` (`challenger` removed), or **continue**. A promotion updates
the `support_intent_champion` asset. The summary is in the `ab_decide` task log; the decision and a
PNG of the running confidence sequence are in the MLflow run `ab_test`.

After a promotion the **guard** runs here too: for `ab.guard_days` the `previous` version keeps
`serve.guard_share` of users, and a significant drop of the new champion's live accuracy below it
**rolls back** (`champion` returns to `previous`, recorded in the alias history).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from pipeline import tasks
from pipeline.config import load_config
from pipeline.schedules import ab_schedule

CONFIG = load_config()
SCHEDULE = CONFIG.schedule


@dag(
    dag_id="ab_test",
    schedule=ab_schedule(SCHEDULE, CONFIG.ab, CONFIG.serving_log_url),
    start_date=pendulum.datetime(
        SCHEDULE.start_date.year, SCHEDULE.start_date.month, SCHEDULE.start_date.day, tz="UTC"
    ),
    catchup=False,
    max_active_runs=1,
    tags=["ab-test", "support-intent"],
    doc_md=__doc__,
    default_args={"retries": 0, "retry_delay": pendulum.duration(seconds=SCHEDULE.retry_delay_s)},
)
def ab_test():
    before = tasks.champion()
    decided = tasks.ab_decide()
    before >> decided >> tasks.announce_champion(before)


ab_test()
