"""``retrain``: every step, or the whole loop, outside Airflow with the same code.

Step commands share a ``--run-id``: ``retrain ingest --run-id r1`` writes under
``{artifact_root}/cli__r1/``, and ``retrain validate --run-id r1`` reads what ingest wrote there.

Results are JSON on stdout; logs and progress go to stderr (stdout is redirected there while a
command works, so no library can print into the JSON). Exit codes: 0 done; 1 an error, said in one
line on stderr (``RETRAIN_DEBUG=1`` adds the traceback); 2 a usage error; 3 nothing to do (no new
file in the window, or every row quarantined), said in one line on stderr.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional, TypeVar

import typer

from pipeline import paths
from pipeline.errors import EXIT_NOTHING_TO_DO, NothingToDoError, PipelineError

app = typer.Typer(
    help="Retrain the support-intent classifier: run any step, or the whole loop, outside Airflow.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

RunId = Annotated[str, typer.Option("--run-id", "-r", help="Names the run; step commands with the same id chain.")]
ConfigOpt = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", help="YAML config (default: $RETRAIN_CONFIG or configs/default.yaml)."),
]
R = TypeVar("R")


def _setup(config: Path | None, verbose: bool = True, announce: bool = False) -> Any:
    from pipeline.config import load_config

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    cfg = load_config(config)
    if announce:
        for line in cfg.gate_warnings():
            typer.secho(f"warning: {line}", fg=typer.colors.YELLOW, err=True)
    return cfg


def _fail(exc: BaseException) -> NoReturn:
    """One line on stderr and the exit code: 3 for nothing to do, else 1."""
    if isinstance(exc, NothingToDoError):
        typer.echo(f"nothing to do: {exc}", err=True)
        raise typer.Exit(EXIT_NOTHING_TO_DO)
    if os.environ.get("RETRAIN_DEBUG"):
        traceback.print_exception(exc, file=sys.stderr)
    message = str(exc) if isinstance(exc, PipelineError) else f"unexpected {type(exc).__name__}: {exc}"
    hint = (
        ""
        if isinstance(exc, PipelineError) or os.environ.get("RETRAIN_DEBUG")
        else " (RETRAIN_DEBUG=1 shows the traceback)"
    )
    typer.secho(f"error: {' '.join(message.split())}{hint}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@contextlib.contextmanager
def _guarded() -> Iterator[None]:
    """Work with stdout sent to stderr (progress bars, library prints); any error becomes one line."""
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        _fail(exc)


def _echo(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _run_file(cfg, run_id: str, name: str) -> str:
    return paths.join(paths.run_dir(cfg.artifact_root_uri, paths.pipeline_run_id("cli", run_id)), name)


def _plan(cfg, run_id: str):
    from pipeline import flow, storage

    p = _run_file(cfg, run_id, "plan.json")
    text = storage.read_text(p)
    if text is None:
        raise PipelineError(f"run {run_id!r}: no plan at {p}; start it with `retrain ingest --run-id {run_id}`")
    return flow.Plan.from_dict(json.loads(text))


def _done(cfg, run_id: str, step: str, cls: type[R]) -> R:
    from pipeline import storage

    plan = _plan(cfg, run_id)
    out = paths.step_dir(cfg.artifact_root_uri, plan.pipeline_run_id, step)
    res = storage.load_done(out, cls)  # type: ignore[type-var]
    if res is None:
        raise PipelineError(
            f"run {run_id!r}: step {step} has not finished (no {out}/_SUCCESS); run `retrain {step} --run-id {run_id}`"
        )
    return res  # type: ignore[return-value]


def _champion(cfg, run_id: str):
    """The champion as first seen by this run, so later step commands compare against the same one."""
    from pipeline import flow, storage
    from pipeline.results import ChampionInfo

    p = _run_file(cfg, run_id, "champion.json")
    if (text := storage.read_text(p)) is not None:
        return ChampionInfo.from_dict(json.loads(text))
    champ = flow.champion(cfg)
    storage.write_json_atomic(p, champ.to_dict())
    return champ


@app.command()
def config(
    config: ConfigOpt = None,
    section: Annotated[Optional[str], typer.Option(help="Only this section (e.g. finetune).")] = None,
) -> None:
    """Print the resolved configuration (defaults + YAML + RETRAIN_* environment); warn about null gate thresholds."""
    with _guarded():
        cfg = _setup(config, verbose=False, announce=True)
    data = cfg.model_dump(mode="json", by_alias=True)
    data["validate"] = data.pop("validate_", data.get("validate"))
    _echo(data[section] if section else data)


@app.command()
def simulate(
    config: ConfigOpt = None,
    start: Annotated[Optional[str], typer.Option(help="First day (YYYY-MM-DD); default simulator.start_date.")] = None,
    end: Annotated[Optional[str], typer.Option(help="Last day (YYYY-MM-DD); default start + simulator.days.")] = None,
    landing_dir: Annotated[
        Optional[Path], typer.Option(help="Where to write; default the configured landing folder.")
    ] = None,
) -> None:
    """Write the seasonal support-ticket simulator's dated files into the landing folder."""
    with _guarded():
        cfg = _setup(config)
        from pipeline.data import simulator

        files = simulator.write_landing(
            cfg.simulator,
            landing_dir or cfg.landing_dir_path,
            start=date.fromisoformat(start) if start else None,
            end=date.fromisoformat(end) if end else None,
        )
    _echo({"files": len(files), "landing_dir": str(landing_dir or cfg.landing_dir_path)})


def _start(cfg, run_id: str, consumer: str, window_start: str | None, window_end: str | None, force: bool):
    """Record the run's plan once; later commands with the same --run-id reuse it."""
    from pipeline import flow, storage

    plan_path = _run_file(cfg, run_id, "plan.json")
    if not paths.exists(plan_path):
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


def _step(config: Path | None, call: Callable[[Any], Any], announce: bool = False) -> None:
    """Load config, run ``call(cfg)``, print its result as JSON on stdout; errors are one line on stderr."""
    with _guarded():
        cfg = _setup(config, announce=announce)
        result = call(cfg)
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

    _step(
        config,
        lambda cfg: flow.ingest(cfg, _start(cfg, run_id, consumer, window_start, window_end, force_retrain)),
        announce=True,
    )


@app.command()
def validate(run_id: RunId, config: ConfigOpt = None) -> None:
    """Run the Great Expectations suite on the run's curated data."""
    from pipeline import flow
    from pipeline.results import IngestResult

    _step(config, lambda cfg: flow.validate(cfg, _plan(cfg, run_id), _done(cfg, run_id, "ingest", IngestResult)))


@app.command()
def drift(run_id: RunId, config: ConfigOpt = None) -> None:
    """Drift signals of the run's window and the drift policy's decision (recorded in the drift history)."""
    from pipeline import flow
    from pipeline.results import IngestResult

    def call(cfg: Any) -> Any:
        plan, ing, champ = _plan(cfg, run_id), _done(cfg, run_id, "ingest", IngestResult), _champion(cfg, run_id)
        result = flow.drift(cfg, plan, ing, champ)
        decision = flow.decide(cfg, plan, ing, result, champ)
        if not decision.retrain:
            flow.commit(cfg, ing)  # the run ends here: its files are consumed
        return {"drift": result.to_dict(), "decision": decision.to_dict()}

    _step(config, call)


@app.command()
def finetune(run_id: RunId, config: ConfigOpt = None) -> None:
    """Fine-tune a challenger (warm start from the champion when configured)."""
    from pipeline import flow
    from pipeline.results import IngestResult

    _step(
        config,
        lambda cfg: flow.finetune(
            cfg, _plan(cfg, run_id), _done(cfg, run_id, "ingest", IngestResult), _champion(cfg, run_id)
        ),
    )


@app.command()
def evaluate(run_id: RunId, config: ConfigOpt = None) -> None:
    """Champion vs challenger on the same test split; writes the decision record."""
    from pipeline import flow
    from pipeline.results import FinetuneResult, IngestResult

    _step(
        config,
        lambda cfg: flow.evaluate(
            cfg,
            _plan(cfg, run_id),
            _done(cfg, run_id, "ingest", IngestResult),
            _done(cfg, run_id, "finetune", FinetuneResult),
            _champion(cfg, run_id),
        ),
    )


@app.command()
def register(run_id: RunId, config: ConfigOpt = None) -> None:
    """Register the challenger; move `champion` only if the gate passed; mark the run's files consumed."""
    from pipeline import flow
    from pipeline.results import DecisionResult, DriftResult, EvaluateResult, FinetuneResult, IngestResult

    def call(cfg: Any) -> Any:
        plan = _plan(cfg, run_id)
        result = flow.register(
            cfg,
            plan,
            _done(cfg, run_id, "drift", DriftResult),
            _done(cfg, run_id, "finetune", FinetuneResult),
            _done(cfg, run_id, "evaluate", EvaluateResult),
            _done(cfg, run_id, "ingest", IngestResult),
            _done(cfg, run_id, "decide", DecisionResult),
        )
        flow.commit(cfg, _done(cfg, run_id, "ingest", IngestResult))  # the run's last step: files consumed
        return result

    _step(config, call)


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

    _step(
        config, lambda cfg: flow.run_cycle(cfg, _start(cfg, run_id, consumer, window_start, window_end, force_retrain))
    )


@app.command()
def champion(config: ConfigOpt = None) -> None:
    """Show the registered model's current champion (version, URI, training data)."""
    from pipeline import flow

    _step(config, flow.champion)


@app.command()
def calibrate(
    since: Annotated[str | None, typer.Option(help="First window end (YYYY-MM-DD) of the no-drift period.")] = None,
    until: Annotated[str | None, typer.Option(help="Last window end (YYYY-MM-DD) of the no-drift period.")] = None,
    data: Annotated[
        list[Path] | None, typer.Option(help="Curated Parquet files to use instead of the history.")
    ] = None,
    rows: Annotated[str, typer.Option(help="Window sizes (rows), comma-separated.")] = "40,120,280,1120",
    windows: Annotated[int, typer.Option(min=20, help="Bootstrap windows per size.")] = 200,
    target: Annotated[float, typer.Option(min=0.0001, max=0.5, help="Acceptable false-alarm rate per check.")] = 0.05,
    config: ConfigOpt = None,
) -> None:
    """Thresholds from past no-drift windows by bootstrap, and the false-alarm rate they imply."""
    with _guarded():
        cfg = _setup(config)
        import pandas as pd

        from pipeline import paths
        from pipeline.errors import PipelineError
        from pipeline.monitoring import calibrate as cal
        from pipeline.monitoring import history

        if data:
            uris = [str(p) for p in data]
        else:
            checks = history.rows(cfg.drift_history_url, cfg.register.model_name, kind="check")
            chosen = [
                r
                for r in checks
                if (since is None or r.window_end >= since) and (until is None or r.window_end <= until)
            ]
            uris = [u for r in chosen for u in r.current_uris]
        files = [u for u in dict.fromkeys(uris) if paths.exists(u)]
        if not files:
            raise PipelineError(
                f"calibrate: no curated window files for {since or 'the start'}..{until or 'now'} in the drift history "
                f"{cfg.drift_history_url}; pass --data FILE.parquet"
            )
        pool = pd.concat(
            [pd.read_parquet(paths.local_path(u), columns=["text", "label"]) for u in files], ignore_index=True
        )
        sizes = [int(x) for x in rows.split(",") if x.strip()]
        result = {"files": len(files), **cal.calibrate(cfg, pool.dropna(), sizes, windows, target)}
    _echo(result)  # outside _guarded: the result goes to stdout


@app.command("drift-history")
def drift_history(
    limit: Annotated[int, typer.Option(min=1, help="Most recent rows to show.")] = 20, config: ConfigOpt = None
) -> None:
    """The drift history: each check's decision (rule, reasons, cooldown) and each retrain."""
    with _guarded():
        cfg = _setup(config, verbose=False)
        from pipeline.monitoring import history

        rows = history.rows(cfg.drift_history_url, cfg.register.model_name)[-limit:]
    _echo([r.brief() for r in rows])  # outside _guarded: the result goes to stdout


@app.command()
def demo(
    size: Annotated[str, typer.Option(help="default (~15 min) or small (~3 min); also DEMO_SIZE.")] = "",
    keep_running: Annotated[bool, typer.Option(help="Leave the Airflow UI running at the end.")] = False,
) -> None:
    """Replay a simulated year through the real Airflow DAGs, scheduler and MLflow registry."""
    from pipeline import demo as demo_mod

    sys.exit(demo_mod.main(size=size or None, keep_running=keep_running))


from pipeline import cli_online, cli_registry  # noqa: E402, F401  (register history, rollback, approve, serve, ab)

if __name__ == "__main__":
    app()
