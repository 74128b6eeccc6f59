"""Feedback volume starts the ``ab_test`` DAG: an Airflow asset watcher on the serving log.

:class:`FeedbackVolumeTrigger` runs in the triggerer. Every ``poll_s`` it counts the feedback log;
once ``every`` events arrived since the later of the last A/B decision (mark ``decided``, written by
:func:`pipeline.ab.online.run`) and its own last firing (mark ``fired``), it records the count as
``fired`` and emits an event: the ``support_intent_feedback`` asset is updated and ``ab_test`` runs
before its hour. Recording the mark consumes the volume (as a file watcher deletes its file), so a
restarted trigger does not fire twice for the same feedback. A database that cannot be read is
logged and polled again; it never fails the triggerer.

Light module: the DAG file imports it at parse time (SQLAlchemy is imported when it polls).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

CLASSPATH = "pipeline.ab.trigger.FeedbackVolumeTrigger"


def due(url: str, every: int) -> dict[str, int] | None:
    """The counts when ``every`` feedback events arrived since the last decision or firing (and
    mark this firing), else None."""
    from pipeline.serving import log as serving_log

    total = serving_log.feedback_total(url)
    seen = serving_log.marks(url)
    base = max(seen.get(serving_log.DECIDED, 0), seen.get(serving_log.FIRED, 0))
    if total - base < every:
        return None
    serving_log.set_mark(url, serving_log.FIRED, total)
    return {"feedback_total": total, "new_feedback": total - base}


class FeedbackVolumeTrigger(BaseEventTrigger):
    def __init__(self, log_url: str, every: int, poll_s: float = 60.0) -> None:
        super().__init__()
        if every < 1:
            raise ValueError(f"every: {every} must be at least 1 feedback event")
        self.log_url, self.every, self.poll_s = log_url, every, poll_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return CLASSPATH, {"log_url": self.log_url, "every": self.every, "poll_s": self.poll_s}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            try:
                counts = await asyncio.to_thread(due, self.log_url, self.every)
            except Exception as exc:  # the log database is down or not created yet: poll again
                self.log.warning("feedback watcher: cannot count %s (%s)", _safe(self.log_url), type(exc).__name__)
                counts = None
            if counts is not None:
                self.log.info(
                    "feedback watcher: %d new feedback events: an A/B decision is due", counts["new_feedback"]
                )
                yield TriggerEvent(counts)
                return
            await asyncio.sleep(self.poll_s)


def _safe(url: str) -> str:
    """A URL without its password, for logs."""
    import sqlalchemy as sa

    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"
