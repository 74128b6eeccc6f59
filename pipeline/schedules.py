"""When the DAGs run: the seasonal timetable, the drift asset and the monitor cadence.

Light module: DAG files call these at parse time. Only ``airflow.sdk`` is imported, lazily.
"""

from __future__ import annotations

from typing import Any

from pipeline.config import ScheduleConfig

DRIFT_ASSET_NAME = "support_intent_drift"
DRIFT_ASSET_URI = "retrain://support-intent-classifier/drift"


def season_crons(sched: ScheduleConfig) -> list[str]:
    """One cron per season start, at 00:00 UTC: ``"11-20"`` → ``"0 0 20 11 *"``."""
    crons = []
    for md in sched.season_starts:
        month, day = (int(p) for p in md.split("-"))
        crons.append(f"0 0 {day} {month} *")
    return crons


def drift_asset() -> Any:
    """The asset the monitor DAG updates when it sees drift; the retrain DAG listens to it."""
    from airflow.sdk import Asset

    return Asset(name=DRIFT_ASSET_NAME, uri=DRIFT_ASSET_URI)


def retrain_schedule(sched: ScheduleConfig) -> Any:
    """Seasonal timetable OR a drift event; only drift events when time triggers are off."""
    from airflow.sdk import AssetOrTimeSchedule, MultipleCronTriggerTimetable

    asset = drift_asset()
    if not sched.time_triggers:
        return [asset]
    return AssetOrTimeSchedule(
        timetable=MultipleCronTriggerTimetable(*season_crons(sched), timezone="UTC"), assets=[asset]
    )


def monitor_schedule(sched: ScheduleConfig) -> str | None:
    return sched.monitor_cron if sched.time_triggers else None
