"""The feedback-volume asset watcher: fires once per ``every`` new feedback events, consumes what it
fired for, restarts after a decision, and survives a database it cannot read."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.ab.trigger import FeedbackVolumeTrigger, due
from pipeline.serving import log as serving_log
from pipeline.serving.log import PredictionLog


def _feedback(url: str, start: int, n: int) -> None:
    plog = PredictionLog(url, buffer_max=10**6, flush_interval_s=1)
    ts = datetime.now(UTC)
    plog.record([{"request_id": f"r{i}", "ts": ts, "user_key": "u" * 32, "variant": "champion", "model_version": "1",
                  "label": "refund", "confidence": 0.9, "latency_ms": 1.0, "text": "t"} for i in range(start, start + n)])  # fmt: skip
    plog.flush()
    for i in range(start, start + n):
        plog.feedback(f"r{i}", label=None, correct=True)


async def _first_event(trigger: FeedbackVolumeTrigger, timeout: float) -> dict | None:
    async def first() -> dict:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    try:
        return await asyncio.wait_for(first(), timeout)
    except TimeoutError:
        return None


def test_due_fires_once_per_volume_and_a_decision_resets_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serving.db'}"
    _feedback(url, 0, 9)
    assert due(url, 10) is None
    _feedback(url, 9, 1)
    assert due(url, 10) == {"feedback_total": 10, "new_feedback": 10}
    assert due(url, 10) is None  # consumed: a restarted watcher does not fire again for the same feedback
    _feedback(url, 10, 12)
    assert due(url, 10) == {"feedback_total": 22, "new_feedback": 12}
    serving_log.set_mark(url, serving_log.DECIDED, 30)  # a decision saw more than the watcher did
    _feedback(url, 22, 15)
    assert due(url, 10) is None  # 37 - 30 = 7 new since the decision
    _feedback(url, 37, 3)
    assert due(url, 10) == {"feedback_total": 40, "new_feedback": 10}


def test_the_trigger_waits_then_emits_and_serializes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serving.db'}"
    _feedback(url, 0, 4)
    trigger = FeedbackVolumeTrigger(url, every=5, poll_s=0.05)
    assert asyncio.run(_first_event(trigger, 0.5)) is None
    _feedback(url, 4, 1)
    assert asyncio.run(_first_event(trigger, 5)) == {"feedback_total": 5, "new_feedback": 5}
    classpath, kwargs = trigger.serialize()
    assert classpath == "pipeline.ab.trigger.FeedbackVolumeTrigger" and kwargs == {
        "log_url": url,
        "every": 5,
        "poll_s": 0.05,
    }


def test_an_unreadable_log_is_polled_again_not_raised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "not-a-dir").write_text("x")
    url = f"sqlite:///{tmp_path / 'not-a-dir' / 'serving.db'}"
    trigger = FeedbackVolumeTrigger(url, every=1, poll_s=0.05)
    assert asyncio.run(_first_event(trigger, 0.4)) is None
    out = capsys.readouterr()
    assert "cannot count" in out.out + out.err  # Airflow's structured log, not the stdlib's


def test_every_must_be_positive() -> None:
    with pytest.raises(ValueError, match="every"):
        FeedbackVolumeTrigger("sqlite://", every=0)
