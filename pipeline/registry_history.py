"""What happened to the registry's aliases, and the evidence gathered for standing challengers.

Two append-only SQL tables (SQLAlchemy Core; SQLite ``{home}/registry_history.db`` by default,
PostgreSQL or any URL through ``register.history_url``):

- ``alias_history``: every alias move: model, alias, from and to version, who or what moved it
  (``actor``: ``pipeline``, ``cli:<user>``), why, the numbers (JSON) and the pipeline run. One row
  per (run, alias, to version): a retried task writes nothing new.
- ``gate_evidence``: one row per look at a challenger against a champion: the primary metric's
  estimate and variance on rows disjoint from every other look, and the outcome then. The
  group-sequential test reads them back as earlier looks.

Light module (SQLAlchemy only).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from pipeline import sqlstore

METADATA = sa.MetaData()
ALIASES = sa.Table(
    "alias_history",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("alias", sa.String(64), nullable=False),
    sa.Column("from_version", sa.String(32)),
    sa.Column("to_version", sa.String(32)),  # None: the alias was removed
    sa.Column("moved_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("numbers", sa.Text),  # JSON object
    sa.Column("pipeline_run_id", sa.String(300), nullable=False),
    sa.UniqueConstraint("pipeline_run_id", "alias", "to_version", name="uq_alias_history_move"),
)
EVIDENCE = sa.Table(
    "gate_evidence",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("challenger_version", sa.String(32), nullable=False),
    sa.Column("champion_version", sa.String(32)),
    sa.Column("pipeline_run_id", sa.String(300), nullable=False),
    sa.Column("window_end", sa.String(10)),
    sa.Column("estimate", sa.Float, nullable=False),
    sa.Column("variance", sa.Float, nullable=False),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("challenger_version", "pipeline_run_id", "model_name", name="uq_gate_evidence_look"),
)


@dataclass(frozen=True)
class Move:
    model_name: str
    alias: str
    from_version: str | None
    to_version: str | None
    actor: str
    reason: str
    pipeline_run_id: str
    numbers: dict[str, Any] | None = None
    moved_at: datetime | None = None


@dataclass(frozen=True)
class Evidence:
    model_name: str
    challenger_version: str
    champion_version: str | None
    pipeline_run_id: str
    window_end: str | None
    estimate: float
    variance: float
    n: int
    outcome: str


def record_move(url: str, move: Move) -> bool:
    """Append one alias move; False when this run already recorded it (a retry)."""
    eng = sqlstore.engine(url, METADATA)
    with eng.begin() as conn:
        q = sa.select(ALIASES.c.id).where(
            ALIASES.c.pipeline_run_id == move.pipeline_run_id,
            ALIASES.c.alias == move.alias,
            (ALIASES.c.to_version == move.to_version)
            if move.to_version is not None
            else ALIASES.c.to_version.is_(None),
        )
        if conn.execute(q).first() is not None:
            return False
        values = {k: getattr(move, k) for k in ("model_name", "alias", "from_version", "to_version", "actor", "reason",
                                                 "pipeline_run_id")}  # fmt: skip
        values["numbers"] = json.dumps(move.numbers or {}, default=str, sort_keys=True)
        values["moved_at"] = move.moved_at or datetime.now(UTC)
        conn.execute(ALIASES.insert().values(**values))
    return True


def moves(url: str, model_name: str, alias: str | None = None) -> list[Move]:
    """Alias moves of a model, oldest first."""
    q = sa.select(ALIASES).where(ALIASES.c.model_name == model_name)
    if alias is not None:
        q = q.where(ALIASES.c.alias == alias)
    with sqlstore.engine(url, METADATA).begin() as conn:
        rows = conn.execute(q.order_by(ALIASES.c.id)).mappings().all()
    return [
        Move(
            r["model_name"],
            r["alias"],
            r["from_version"],
            r["to_version"],
            r["actor"],
            r["reason"],
            r["pipeline_run_id"],
            json.loads(r["numbers"] or "{}"),
            r["moved_at"],
        )  # fmt: skip
        for r in rows
    ]


def record_evidence(url: str, e: Evidence) -> bool:
    with sqlstore.engine(url, METADATA).begin() as conn:
        q = sa.select(EVIDENCE.c.id).where(
            EVIDENCE.c.model_name == e.model_name,
            EVIDENCE.c.challenger_version == e.challenger_version,
            EVIDENCE.c.pipeline_run_id == e.pipeline_run_id,
        )
        if conn.execute(q).first() is not None:
            return False
        conn.execute(EVIDENCE.insert().values(**e.__dict__, recorded_at=datetime.now(UTC)))
    return True


def evidence(url: str, model_name: str, challenger_version: str, champion_version: str | None) -> list[Evidence]:
    """Earlier looks at this challenger against this champion, oldest first."""
    q = sa.select(EVIDENCE).where(
        EVIDENCE.c.model_name == model_name,
        EVIDENCE.c.challenger_version == challenger_version,
        (EVIDENCE.c.champion_version == champion_version)
        if champion_version is not None
        else EVIDENCE.c.champion_version.is_(None),
    )
    with sqlstore.engine(url, METADATA).begin() as conn:
        rows = conn.execute(q.order_by(EVIDENCE.c.id)).mappings().all()
    return [
        Evidence(
            r["model_name"],
            r["challenger_version"],
            r["champion_version"],
            r["pipeline_run_id"],
            r["window_end"],
            r["estimate"],
            r["variance"],
            r["n"],
            r["outcome"],
        )  # fmt: skip
        for r in rows
    ]
