"""``retrain history``, ``retrain rollback`` and ``retrain approve``: the registry side of the CLI.

Registered on :data:`pipeline.cli.app` when that module is imported. Results are JSON on stdout.
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from typing import Annotated, Optional

import typer

from pipeline.cli import ConfigOpt, _echo, _guarded, _setup, app


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _run_id(kind: str) -> str:
    return f"{kind}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}"


@app.command()
def history(
    alias: Annotated[Optional[str], typer.Option(help="Only this alias (champion, challenger, previous).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Most recent moves to show.")] = 50,
    config: ConfigOpt = None,
) -> None:
    """Every alias move: when, which alias, from and to which version, who or what, why, the numbers."""
    with _guarded():
        cfg = _setup(config, verbose=False)
        from pipeline import registry_history

        rows = registry_history.moves(cfg.registry_history_url, cfg.register.model_name, alias)[-limit:]
        out = [
            {
                "moved_at": str(m.moved_at),
                "alias": m.alias,
                "from": m.from_version,
                "to": m.to_version,
                "actor": m.actor,
                "reason": m.reason,
                "run": m.pipeline_run_id,
                "numbers": m.numbers,
            }  # fmt: skip
            for m in rows
        ]
    _echo(out)  # outside _guarded: the result goes to stdout


@app.command()
def rollback(
    to: Annotated[Optional[str], typer.Option("--to", help="Version to serve (default: the last known-good).")] = None,
    why: Annotated[str, typer.Option(help="Why: recorded in the alias history.")] = "manual rollback",
    config: ConfigOpt = None,
) -> None:
    """Move `champion` back to the last known-good version (not merely the numerically previous one)."""
    with _guarded():
        cfg = _setup(config, verbose=False)
        from pipeline import promotion

        before, after = promotion.rollback(cfg, to=to, actor=_actor(), why=why, run_id=_run_id("rollback"))
    _echo({"model_name": cfg.register.model_name, "from": before, "to": after})


@app.command()
def approve(
    version: Annotated[str, typer.Argument(help="The version waiting for approval (register.require_approval).")],
    config: ConfigOpt = None,
) -> None:
    """Promote a version the gate passed and that waits for a person's approval."""
    with _guarded():
        cfg = _setup(config, verbose=False)
        from pipeline import promotion

        moved = promotion.approve(cfg, version, actor=_actor(), run_id=_run_id("approve"))
    _echo({"model_name": cfg.register.model_name, "version": version, "promoted": moved})
