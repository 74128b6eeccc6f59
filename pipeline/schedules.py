"""When the DAGs run: the seasonal timetable, the drift asset, the monitor cadence, the A/B decision.

Light module: DAG files call these at parse time. Only ``airflow.sdk`` is imported, lazily.
"""

from __future__ import annotations

from typing import Any

from pipeline.config import AbConfig, ScheduleConfig

DRIFT_ASSET_NAME = "support_intent_drift"
DRIFT_ASSET_URI = "retrain://support-intent-classifier/drift"
CHAMPION_ASSET_NAME = "support_intent_champion"
CHAMPION_ASSET_URI = "retrain://support-intent-classifier/champion"
FEEDBACK_ASSET_NAME = "support_intent_feedback"
FEEDBACK_ASSET_URI = "retrain://support-intent-classifier/feedback"


def seasonal_timetable(sched: ScheduleConfig) -> Any:
    """The custom :class:`~pipeline.timetable.SeasonalTimetable` of ``schedule.season_starts``."""
    from pipeline.timetable import SeasonalTimetable

    return SeasonalTimetable(sched.season_starts, timezone=sched.timezone)


def drift_asset() -> Any:
    """The asset the monitor DAG updates when it sees drift; the retrain DAG listens to it."""
    from airflow.sdk import Asset

    return Asset(name=DRIFT_ASSET_NAME, uri=DRIFT_ASSET_URI)


def champion_asset() -> Any:
    """Updated on every promotion (its extra: version, previous version, the gate's numbers), so the
    Assets view lists each one and later DAGs (serving, A/B) can be scheduled on it."""
    from airflow.sdk import Asset

    return Asset(name=CHAMPION_ASSET_NAME, uri=CHAMPION_ASSET_URI)


def retrain_schedule(sched: ScheduleConfig) -> Any:
    """Seasonal timetable OR a drift event; only drift events when time triggers are off."""
    from airflow.sdk import AssetOrTimeSchedule

    asset = drift_asset()
    if not sched.time_triggers:
        return [asset]
    return AssetOrTimeSchedule(timetable=seasonal_timetable(sched), assets=[asset])


def feedback_asset(log_url: str, every: int, poll_s: float) -> Any:
    """Updated by an asset watcher (:class:`~pipeline.ab.trigger.FeedbackVolumeTrigger`) each time
    ``every`` feedback events reach the serving log after the last A/B decision."""
    from airflow.sdk import Asset, AssetWatcher

    from pipeline.ab.trigger import FeedbackVolumeTrigger

    watcher = AssetWatcher(name="feedback_volume", trigger=FeedbackVolumeTrigger(log_url, every, poll_s))
    return Asset(name=FEEDBACK_ASSET_NAME, uri=FEEDBACK_ASSET_URI, watchers=[watcher])


def ab_schedule(sched: ScheduleConfig, ab: AbConfig | None = None, log_url: str | None = None) -> Any:
    """The ab_test DAG's cron (``schedule.ab_cron``) OR feedback volume (``ab.trigger_feedback``
    events since the last decision); either alone when the other is off; None (triggered runs only)
    when both are."""
    cron = sched.ab_cron if sched.time_triggers else None
    if ab is None or log_url is None or ab.trigger_feedback <= 0:
        return cron
    asset = feedback_asset(log_url, ab.trigger_feedback, ab.trigger_poll_s)
    if cron is None:
        return [asset]
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    return AssetOrTimeSchedule(timetable=CronTriggerTimetable(cron, timezone=sched.timezone), assets=[asset])


def monitor_schedule(sched: ScheduleConfig) -> str | None:
    """The monitor's cron; None (triggered runs only) when time triggers are off or the cron is null."""
    return sched.monitor_cron if sched.time_triggers else None
