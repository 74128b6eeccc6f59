"""The prediction and feedback logs (SQLAlchemy Core; SQLite by default, PostgreSQL by URL).

``serving_predictions``: one row per served text: ``request_id`` (primary key), ``ts``, ``user_key``
(a hash of the user id, never the id), ``variant``, ``model_version``, ``label``, ``confidence``,
``latency_ms``, and ``text`` as the model saw it (normalized, PII replaced by placeholders), so that
corrections can train later. ``serving_feedback``: at most one row per prediction: ``request_id``
(primary key, the prediction's), ``ts``, ``label`` (the true label, when given), ``correct``.
``serving_marks``: named counters of the feedback log (``name``, ``value``, ``ts``): how much
feedback the last A/B decision saw (``decided``) and the asset watcher's last firing (``fired``).
The tables are created with ``create_all`` on first use (:mod:`pipeline.sqlstore`).

Predictions never wait for the database: :class:`PredictionLog` buffers rows in memory (bounded by
``serve.log_buffer_max``) and a background thread writes them; while the database is down they
wait, and past the bound they are dropped and counted. Each row is written once (the insert skips
ids already present, so a retry after a lost acknowledgement does not write it twice).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from pipeline import sqlstore

log = logging.getLogger(__name__)

METADATA = sa.MetaData()
PREDICTIONS = sa.Table(
    "serving_predictions",
    METADATA,
    sa.Column("request_id", sa.String(80), primary_key=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("user_key", sa.String(32), nullable=False),
    sa.Column("variant", sa.String(16), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
)
FEEDBACK = sa.Table(
    "serving_feedback",
    METADATA,
    sa.Column("request_id", sa.String(80), sa.ForeignKey("serving_predictions.request_id"), primary_key=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("label", sa.String(200), nullable=True),
    sa.Column("correct", sa.Boolean, nullable=False),
)
MARKS = sa.Table(
    "serving_marks",
    METADATA,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
)
DECIDED, FIRED = "decided", "fired"


class UnknownRequest(LookupError):
    pass


class DuplicateFeedback(ValueError):
    pass


def now() -> datetime:
    return datetime.now(UTC)


class PredictionLog:
    """Buffered, at-most-once-per-id writer of prediction rows, plus feedback and the A/B counts."""

    def __init__(self, url: str, *, buffer_max: int, flush_interval_s: float) -> None:
        self.url = url
        self.buffer: deque[dict[str, Any]] = deque()
        self.buffer_max = buffer_max
        self.flush_interval_s = flush_interval_s
        self.dropped = 0
        self.written = 0
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one writer at a time: a batch is popped only once
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _engine(self) -> sa.Engine:
        return sqlstore.engine(self.url, METADATA)

    # ---- predictions: never block the caller
    def record(self, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            room = self.buffer_max - len(self.buffer)
            if room < len(rows):
                self.dropped += len(rows) - max(room, 0)
                log.error("serving log: buffer full (%d rows); %d rows dropped", self.buffer_max, len(rows) - room)
            self.buffer.extend(rows[: max(room, 0)])

    def flush(self) -> int:
        """Write what is buffered; on a database error keep it for the next try. Returns rows written."""
        with self._flush_lock:
            return self._flush()

    def _flush(self) -> int:
        with self._lock:
            batch = list(self.buffer)
        if not batch:
            return 0
        try:
            with self._engine().begin() as conn:
                ids = [r["request_id"] for r in batch]
                have = set(
                    conn.execute(sa.select(PREDICTIONS.c.request_id).where(PREDICTIONS.c.request_id.in_(ids))).scalars()
                )
                fresh = [r for r in batch if r["request_id"] not in have]
                if fresh:
                    conn.execute(PREDICTIONS.insert(), fresh)
        except sa.exc.SQLAlchemyError as exc:
            self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            log.warning("serving log: %d rows wait, the database failed (%s)", len(batch), self.last_error)
            return 0
        with self._lock:
            for _ in range(len(batch)):
                self.buffer.popleft()
        self.last_error = None
        self.written += len(fresh)
        return len(fresh)

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.flush_interval_s):
                self.flush()

        self._thread = threading.Thread(target=loop, name="serving-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()

    # ---- feedback: synchronous (the caller must know whether it counted)
    def feedback(self, request_id: str, *, label: str | None, correct: bool | None) -> dict[str, Any]:
        """Record the truth for one prediction. Raises :class:`UnknownRequest`, :class:`DuplicateFeedback`,
        or SQLAlchemyError when the database is down."""
        self.flush()
        with self._engine().begin() as conn:
            pred = conn.execute(sa.select(PREDICTIONS).where(PREDICTIONS.c.request_id == request_id)).mappings().first()
            if pred is None:
                with self._lock:
                    waiting = any(r["request_id"] == request_id for r in self.buffer)
                raise UnknownRequest(
                    f"request_id {request_id!r}: "
                    + (
                        "its prediction is not written yet (the log database is down)"
                        if waiting
                        else "no such prediction"
                    )
                )
            if conn.execute(sa.select(FEEDBACK.c.request_id).where(FEEDBACK.c.request_id == request_id)).first():
                raise DuplicateFeedback(f"request_id {request_id!r}: feedback already recorded")
            ok = bool(correct) if label is None else label == pred["label"]
            row = {"request_id": request_id, "ts": now(), "label": label, "correct": ok}
            try:
                conn.execute(FEEDBACK.insert(), [row])
            except sa.exc.IntegrityError as exc:  # a concurrent duplicate
                raise DuplicateFeedback(f"request_id {request_id!r}: feedback already recorded") from exc
        return {
            "request_id": request_id,
            "correct": ok,
            "variant": pred["variant"],
            "model_version": pred["model_version"],
        }


@dataclass(frozen=True)
class ArmCounts:
    variant: str
    model_version: str
    n: int
    successes: int


def counts(url: str, *, since: datetime | None = None) -> list[ArmCounts]:
    """Judged predictions and how many were right, per (variant, model version), since ``since``."""
    q = (
        sa.select(
            PREDICTIONS.c.variant,
            PREDICTIONS.c.model_version,
            sa.func.count().label("n"),
            sa.func.sum(sa.case((FEEDBACK.c.correct, 1), else_=0)).label("successes"),
        )
        .select_from(PREDICTIONS.join(FEEDBACK, FEEDBACK.c.request_id == PREDICTIONS.c.request_id))
        .group_by(PREDICTIONS.c.variant, PREDICTIONS.c.model_version)
    )
    if since is not None:
        q = q.where(PREDICTIONS.c.ts >= since)
    with sqlstore.engine(url, METADATA).connect() as conn:
        return [ArmCounts(r.variant, str(r.model_version), int(r.n), int(r.successes or 0)) for r in conn.execute(q)]


def wait_flushed(plog: PredictionLog, timeout_s: float = 10.0) -> bool:
    """Block until the buffer is empty (tests, shutdown); False on timeout."""
    end = time.monotonic() + timeout_s
    while plog.buffer and time.monotonic() < end:
        plog.flush()
        time.sleep(0.05)
    return not plog.buffer


@dataclass(frozen=True)
class Judged:
    """One feedback event of the running test: when it arrived, on which variant, and whether right."""

    ts: datetime
    variant: str
    correct: bool


def judged(url: str, champion_version: str, challenger_version: str) -> tuple[datetime | None, list[Judged]]:
    """(the test's start, its feedback events in arrival order). The test starts at the first
    prediction the challenger version served as ``challenger``; champion predictions before that are
    not part of it (they come from another time)."""
    p = PREDICTIONS.c
    with sqlstore.engine(url, METADATA).connect() as conn:
        start = conn.execute(
            sa.select(sa.func.min(p.ts)).where(p.variant == "challenger", p.model_version == challenger_version)
        ).scalar()
    if start is None:
        return None, []
    return _aware(start), events(url, {"champion": champion_version, "challenger": challenger_version}, _aware(start))


def events(url: str, arms: dict[str, str], since: datetime) -> list[Judged]:
    """Feedback events, in arrival order, on predictions served since ``since`` by the given
    (variant -> model version) arms."""
    p, f = PREDICTIONS.c, FEEDBACK.c
    arm = sa.or_(*(sa.and_(p.variant == variant, p.model_version == version) for variant, version in arms.items()))
    q = (
        sa.select(f.ts, p.variant, f.correct)
        .select_from(PREDICTIONS.join(FEEDBACK, f.request_id == p.request_id))
        .where(arm, p.ts >= since)
        .order_by(f.ts, f.request_id)
    )
    with sqlstore.engine(url, METADATA).connect() as conn:
        return [Judged(_aware(r.ts), r.variant, bool(r.correct)) for r in conn.execute(q)]


def feedback_total(url: str) -> int:
    """Feedback events ever recorded."""
    with sqlstore.engine(url, METADATA).connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(FEEDBACK)).scalar() or 0)


def marks(url: str) -> dict[str, int]:
    with sqlstore.engine(url, METADATA).connect() as conn:
        return {r.name: int(r.value) for r in conn.execute(sa.select(MARKS.c.name, MARKS.c.value))}


def set_mark(url: str, name: str, value: int) -> None:
    with sqlstore.engine(url, METADATA).begin() as conn:
        if conn.execute(sa.update(MARKS).where(MARKS.c.name == name).values(value=value, ts=now())).rowcount == 0:
            conn.execute(MARKS.insert(), [{"name": name, "value": value, "ts": now()}])


def _aware(ts: datetime) -> datetime:
    """SQLite hands back naive datetimes; every timestamp written here is UTC."""
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
