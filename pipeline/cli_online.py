"""``retrain serve`` and ``retrain ab``: the online side of the CLI.

Registered on :data:`pipeline.cli.app` when that module is imported. Results are JSON on stdout.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Optional

import typer

from pipeline.cli import ConfigOpt, _echo, _guarded, _setup, app


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option(help="Bind address (default: serve.host).")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port (default: serve.port).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Serve the registry's champion (and challenger, for a share of users) over HTTP: /predict,
    /feedback, /health, /ready, /metrics. Predictions and feedback go to serve.log_url."""
    with _guarded():
        cfg = _setup(config)
        import uvicorn

        from pipeline.serving.app import create_app

        web = create_app(cfg)
    uvicorn.run(web, host=host or cfg.serve.host, port=port or cfg.serve.port, log_level="info")


@app.command()
def ab(
    dry_run: Annotated[bool, typer.Option(help="Decide and report; move no alias.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Decide the online A/B test from the feedback log (always-valid mSPRT): promote the challenger,
    stop it (harm, futility, out of time), or continue. Applies the outcome to the registry."""
    with _guarded():
        cfg = _setup(config, verbose=False)
        from pipeline.ab import online

        result = online.run(cfg, run_id=f"ab-cli-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}", apply=not dry_run)
    _echo(result.to_dict())  # outside _guarded: the result goes to stdout
