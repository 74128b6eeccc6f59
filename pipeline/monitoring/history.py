"""The drift history: every check's decision and every retrain, in one append-only SQL table.

SQLAlchemy Core; SQLite by default (``{home}/drift_history.db``), PostgreSQL (or any SQLAlchemy
URL) through ``drift.history_url``. One row per (pipeline run, kind): a retried task writes the same
row again and changes nothing, so recording is idempotent.

- ``kind = "check"``: a policy decision (monitor runs, manual runs): the window, every signal
  (``signals``), the reasons (signal, value, threshold, rule, fired), the verdict, the cooldown.
- ``kind = "retrain"``: a retrain finished (promoted or not). Its ``reference_after`` (a JSON list of
  files) is the window it answered, which becomes the reference of later checks, so the drift it
  answered does not fire again; its ``test_uri`` calibrates the champion's probabilities for CBPE.

``scope`` (full / incremental, :mod:`pipeline.monitoring.scope`) came later: a table made before it
gets the column added on first use (:func:`pipeline.sqlstore.engine`), older rows read as unknown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from pipeline import sqlstore
from pipeline.monitoring.policy import PastRecord

METADATA = sa.MetaData()
TABLE = sa.Table(
    "drift_history",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("pipeline_run_id", sa.String(300), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("window_start", sa.String(10)),
    sa.Column("window_end", sa.String(10), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("trigger", sa.String(32)),
    sa.Column("retrain", sa.Boolean, nullable=False, default=False),
    sa.Column("rule", sa.String(64)),
    sa.Column("suppressed_by", sa.Text),
    sa.Column("cooldown_until", sa.String(10)),
    sa.Column("signals_on", sa.Text),  # JSON list
    sa.Column("signals", sa.Text),  # JSON object
    sa.Column("reasons", sa.Text),  # JSON list
    sa.Column("summary", sa.Text),
    sa.Column("reference_uri", sa.Text),
    sa.Column("reference_after", sa.Text),  # JSON list
    sa.Column("current_uris", sa.Text),  # JSON list
    sa.Column("test_uri", sa.Text),
    sa.Column("champion_version", sa.String(32)),
    sa.Column("model_version", sa.String(32)),
    sa.Column("promoted", sa.Boolean),
    sa.Column("scope", sa.String(16)),  # full / incremental: a retrain's (check: the decision's, retrain: what ran)
    sa.UniqueConstraint("pipeline_run_id", "kind", name="uq_drift_history_run_kind"),
)
KINDS = ("check", "retrain")


@dataclass(frozen=True)
class Row:
    model_name: str
    pipeline_run_id: str
    kind: str
    window_end: str
    window_start: str | None = None
    trigger: str | None = None
    retrain: bool = False
    rule: str | None = None
    suppressed_by: str | None = None
    cooldown_until: str | None = None
    signals_on: tuple[str, ...] = ()
    signals: dict[str, Any] | None = None
    reasons: list[dict[str, Any]] | None = None
    summary: str | None = None
    reference_uri: str | None = None
    reference_after: tuple[str, ...] = ()
    current_uris: tuple[str, ...] = ()
    test_uri: str | None = None
    champion_version: str | None = None
    model_version: str | None = None
    promoted: bool | None = None
    scope: str | None = None
    recorded_at: datetime | None = None

    BRIEF = ("kind", "window_end", "trigger", "retrain", "rule", "suppressed_by", "cooldown_until", "summary",
             "model_version", "promoted", "scope")  # fmt: skip

    def brief(self) -> dict[str, Any]:
        """The fields a person reads first (``retrain drift-history``)."""
        return {k: getattr(self, k) for k in self.BRIEF}

    def past(self) -> PastRecord:
        day = date.fromisoformat(self.window_end)
        if self.kind == "retrain":
            return PastRecord(day, "retrain", tuple(self.signals_on), self.retrain, self.model_version, self.scope)
        return PastRecord(day, "check", tuple(self.signals_on), self.retrain, scope=self.scope)


def engine(url: str) -> sa.Engine:
    """One engine per URL per process; the table is created on first use."""
    return sqlstore.engine(url, METADATA)


def record(url: str, row: Row) -> bool:
    """Append ``row``; False (and nothing written) when its (pipeline run, kind) is already there."""
    if row.kind not in KINDS:
        raise ValueError(f"drift history: kind must be one of {KINDS}, got {row.kind!r}")
    values = {
        **{
            k: getattr(row, k)
            for k in (
                "model_name",
                "pipeline_run_id",
                "kind",
                "window_start",
                "window_end",
                "trigger",
                "retrain",
                "rule",
                "suppressed_by",
                "cooldown_until",
                "summary",
                "reference_uri",
                "test_uri",
                "champion_version",
                "model_version",
                "promoted",
                "scope",
            )
        },  # fmt: skip
        "signals_on": json.dumps(list(row.signals_on)),
        "signals": json.dumps(row.signals or {}, sort_keys=True, default=str),
        "reasons": json.dumps(row.reasons or [], default=str),
        "current_uris": json.dumps(list(row.current_uris)),
        "reference_after": json.dumps(list(row.reference_after)),
        "recorded_at": row.recorded_at or datetime.now(UTC),
    }
    with engine(url).begin() as conn:
        exists = conn.execute(
            sa.select(TABLE.c.id).where(TABLE.c.pipeline_run_id == row.pipeline_run_id, TABLE.c.kind == row.kind)
        ).first()
        if exists is not None:
            return False
        conn.execute(TABLE.insert().values(**values))
    return True


def _row(m: sa.RowMapping) -> Row:
    return Row(
        model_name=m["model_name"],
        pipeline_run_id=m["pipeline_run_id"],
        kind=m["kind"],
        window_end=m["window_end"],
        window_start=m["window_start"],
        trigger=m["trigger"],
        retrain=bool(m["retrain"]),
        rule=m["rule"],
        suppressed_by=m["suppressed_by"],
        cooldown_until=m["cooldown_until"],
        signals_on=tuple(json.loads(m["signals_on"] or "[]")),
        signals=json.loads(m["signals"] or "{}"),
        reasons=json.loads(m["reasons"] or "[]"),
        summary=m["summary"],
        reference_uri=m["reference_uri"],
        reference_after=tuple(json.loads(m["reference_after"] or "[]")),
        current_uris=tuple(json.loads(m["current_uris"] or "[]")),
        test_uri=m["test_uri"],
        champion_version=m["champion_version"],
        model_version=m["model_version"],
        promoted=m["promoted"],
        scope=m["scope"],
        recorded_at=m["recorded_at"],
    )


def rows(url: str, model_name: str, *, before: str | None = None, kind: str | None = None) -> list[Row]:
    """The model's rows ordered by window end then insertion; ``before``: window_end ≤ this day."""
    q = sa.select(TABLE).where(TABLE.c.model_name == model_name)
    if before is not None:
        q = q.where(TABLE.c.window_end <= before)
    if kind is not None:
        q = q.where(TABLE.c.kind == kind)
    with engine(url).begin() as conn:
        return [_row(m) for m in conn.execute(q.order_by(TABLE.c.window_end, TABLE.c.id)).mappings()]


def get(url: str, pipeline_run_id: str, kind: str) -> Row | None:
    q = sa.select(TABLE).where(TABLE.c.pipeline_run_id == pipeline_run_id, TABLE.c.kind == kind)
    with engine(url).begin() as conn:
        m = conn.execute(q).mappings().first()
    return None if m is None else _row(m)
