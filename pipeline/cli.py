"""``retrain``: every step, or the whole loop, outside Airflow with the same code.

Step commands share a ``--run-id``: ``retrain ingest --run-id r1`` writes under
``{artifact_root}/cli__r1/``, and ``retrain validate --run-id r1`` reads what ingest wrote there.
Errors are one line on stderr and exit code 1.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import date
from pathlib import Path
from collections.abc import Callable
from typing import Annotated, Any, Optional, TypeVar

import typer

from pipeline import paths
from pipeline.errors import PipelineError

app = typer.Typer(
    help="Retrain the support-intent classifier: run any step, or the whole loop, outside Airflow.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

RunId = Annotated[str, typer.Option("--run-id", "-r", help="Names the run; step commands with the same id chain.")]
ConfigOpt = Annotated[
    Optional[Path], typer.Option("--config", "-c", help="YAML config (default: $RETRAIN_CONFIG or configs/default.yaml).")
]
R = TypeVar("R")


def _setup(config: Path | None, verbose: bool = True):
    from pipeline.config import load_config

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return load_config(config)


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def _echo(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _run_dir(cfg, run_id: str) -> Path:
    return paths.run_dir(cfg.artifact_root_uri, paths.pipeline_run_id("cli", run_id))


def _plan(cfg, run_id: str):
    from pipeline import flow

    p = _run_dir(cfg, run_id) / "plan.json"
    if not p.is_file():
        raise PipelineError(f"run {run_id!r}: no plan at {p}; start it with `retrain ingest --run-id {run_id}`")
    return flow.Plan.from_dict(json.loads(p.read_text()))


def _done(cfg, run_id: str, step: str, cls: type[R]) -> R:
    from pipeline import storage

    plan = _plan(cfg, run_id)
    out = paths.step_dir(cfg.artifact_root_uri, plan.pipeline_run_id, step)
    res = storage.load_done(out, cls)  # type: ignore[type-var]
    if res is None:
        raise PipelineError(f"run {run_id!r}: step {step} has not finished (no {out}/_SUCCESS); run `retrain {step} --run-id {run_id}`")
    return res  # type: ignore[return-value]


def _champion(cfg, run_id: str):
    """The champion as first seen by this run, so later step commands compare against the same one."""
    from pipeline import flow, storage
    from pipeline.results import ChampionInfo

    p = _run_dir(cfg, run_id) / "champion.json"
    if p.is_file():
        return ChampionInfo.from_dict(json.loads(p.read_text()))
    champ = flow.champion(cfg)
    storage.write_json_atomic(p, champ.to_dict())
    return champ


@app.command()
def config(
    config: ConfigOpt = None,
    section: Annotated[Optional[str], typer.Option(help="Only this section (e.g. finetune).")] = None,
) -> None:
    """Print the resolved configuration (YAML + RETRAIN_* environment)."""
    try:
        cfg = _setup(config, verbose=False)
    except PipelineError as exc:
        _fail(exc)
    data = cfg.model_dump(mode="json", by_alias=True)
    data["validate"] = data.pop("validate_", data.get("validate"))
    _echo(data[section] if section else data)


@app.command()
def simulate(
    config: ConfigOpt = None,
    start: Annotated[Optional[str], typer.Option(help="First day (YYYY-MM-DD); default simulator.start_date.")] = None,
    end: Annotated[Optional[str], typer.Option(help="Last day (YYYY-MM-DD); default start + simulator.days.")] = None,
    landing_dir: Annotated[Optional[Path], typer.Option(help="Where to write; default the configured landing folder.")] = None,
) -> None:
    """Write the seasonal support-ticket simulator's dated files into the landing folder."""
    try:
        cfg = _setup(config)
        from pipeline.data import simulator

        files = simulator.write_landing(
            cfg.simulator,
            landing_dir or cfg.landing_dir_path,
            start=date.fromisoformat(start) if start else None,
            end=date.fromisoformat(end) if end else None,
        )
    except (PipelineError, ValueError) as exc:
        _fail(exc)
    typer.echo(f"wrote {len(files)} files to {landing_dir or cfg.landing_dir_path}")


def _start(cfg, run_id: str, consumer: str, window_start: str | None, window_end: str | None, force: bool):
    """Record the run's plan once; later commands with the same --run-id reuse it."""
    from pipeline import flow, storage

    plan_path = _run_dir(cfg, run_id) / "plan.json"
    if not plan_path.is_file():
        plan = flow.Plan(
            pipeline_run_id=paths.pipeline_run_id("cli", run_id),
            consumer=consumer,
            window_start=window_start,
            window_end=window_end,
            trigger="cli",
            force_retrain=force,
        )
        storage.write_json_atomic(plan_path, plan.to_dict())
    return _plan(cfg, run_id)


def _step(config: Path | None, call: Callable[[Any], Any]) -> None:
    """Load config, run ``call(cfg)``, print its result as JSON; a PipelineError is one line, exit 1."""
    try:
        cfg = _setup(config)
        result = call(cfg)
    except PipelineError as exc:
        _fail(exc)
    _echo(result if isinstance(result, dict) else result.to_dict())


WindowStart = Annotated[Optional[str], typer.Option(help="First file date (YYYY-MM-DD).")]
WindowEnd = Annotated[Optional[str], typer.Option(help="Last file date (YYYY-MM-DD).")]
Consumer = Annotated[str, typer.Option(help="Watermark name: each consumer reads each file once.")]
Force = Annotated[bool, typer.Option("--force-retrain", help="Train even without drift.")]


@app.command()
def ingest(
    run_id: RunId,
    config: ConfigOpt = None,
    window_start: WindowStart = None,
    window_end: WindowEnd = None,
    consumer: Consumer = "cli",
    force_retrain: Force = False,
) -> None:
    """Read new landing files, clean, dedup, scrub PII, split; start a run."""
    from pipeline import flow

    _step(config, lambda cfg: flow.ingest(cfg, _start(cfg, run_id, consumer, window_start, window_end, force_retrain)))


@app.command()
def validate(run_id: RunId, config: ConfigOpt = None) -> None:
    """Run the Great Expectations suite on the run's curated data."""
    from pipeline import flow
    from pipeline.results import IngestResult

    _step(config, lambda cfg: flow.validate(cfg, _plan(cfg, run_id), _done(cfg, run_id, "ingest", IngestResult)))


@app.command()
def drift(run_id: RunId, config: ConfigOpt = None) -> None:
    """Evidently text and label drift of the run's window against the champion's training data."""
    from pipeline import flow
    from pipeline.results import IngestResult

    _step(config, lambda cfg: flow.drift(
        cfg, _plan(cfg, run_id), _done(cfg, run_id, "ingest", IngestResult), _champion(cfg, run_id)
    ))


@app.command()
def finetune(run_id: RunId, config: ConfigOpt = None) -> None:
    """Fine-tune a challenger (warm start from the champion when configured)."""
    from pipeline import flow
    from pipeline.results import IngestResult

    _step(config, lambda cfg: flow.finetune(
        cfg, _plan(cfg, run_id), _done(cfg, run_id, "ingest", IngestResult), _champion(cfg, run_id)
    ))


@app.command()
def evaluate(run_id: RunId, config: ConfigOpt = None) -> None:
    """Champion vs challenger on the same test split; writes the decision record."""
    from pipeline import flow
    from pipeline.results import FinetuneResult, IngestResult

    _step(config, lambda cfg: flow.evaluate(
        cfg, _plan(cfg, run_id), _done(cfg, run_id, "ingest", IngestResult),
        _done(cfg, run_id, "finetune", FinetuneResult), _champion(cfg, run_id),
    ))


@app.command()
def register(run_id: RunId, config: ConfigOpt = None) -> None:
    """Register the challenger; move `champion` only if the gate passed."""
    from pipeline import flow
    from pipeline.results import DriftResult, EvaluateResult, FinetuneResult

    _step(config, lambda cfg: flow.register(
        cfg, _plan(cfg, run_id), _done(cfg, run_id, "drift", DriftResult),
        _done(cfg, run_id, "finetune", FinetuneResult), _done(cfg, run_id, "evaluate", EvaluateResult),
    ))


@app.command("run")
def run_all(
    run_id: RunId,
    config: ConfigOpt = None,
    window_start: WindowStart = None,
    window_end: WindowEnd = None,
    consumer: Consumer = "cli",
    force_retrain: Force = False,
) -> None:
    """The whole loop: ingest → validate → drift → (fine-tune → evaluate → register)."""
    from pipeline import flow

    _step(config, lambda cfg: flow.run_cycle(cfg, _start(cfg, run_id, consumer, window_start, window_end, force_retrain)))


@app.command()
def champion(config: ConfigOpt = None) -> None:
    """Show the registered model's current champion (version, URI, training data)."""
    from pipeline import flow

    _step(config, flow.champion)


@app.command()
def demo(
    size: Annotated[str, typer.Option(help="default (~15 min) or small (~3 min); also DEMO_SIZE.")] = "",
    keep_running: Annotated[bool, typer.Option(help="Leave the Airflow UI running at the end.")] = False,
) -> None:
    """Replay a simulated year through the real Airflow DAGs, scheduler and MLflow registry."""
    from pipeline import demo as demo_mod

    sys.exit(demo_mod.main(size=size or None, keep_running=keep_running))


if __name__ == "__main__":
    app()
