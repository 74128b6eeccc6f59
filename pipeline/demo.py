"""The demo: replay a simulated year of seasonal support traffic through the real Airflow DAGs.

What is real: the Airflow 3 api-server, scheduler and dag-processor (LocalExecutor, SQLite), the
two DAGs and their tasks, the MLflow store and registry, GX, Evidently, a pretrained MiniLM.
What is compressed: the calendar. A year cannot pass in minutes, so the driver replays it in order:
it triggers each monitor window itself (the monitor's cron is off, ``RETRAIN_SCHEDULE__MONITOR_CRON=null``),
and at each season start it asks Airflow for a *backfill* of the ``retrain`` DAG over that day: the
scheduler creates the run from the DAG's ``SeasonalTimetable`` (a day that is not a season start
would get no run). Drift-triggered retrains are not triggered by the driver either: the monitor's
drift policy emits an asset event and the scheduler starts ``retrain`` on its own.

Everything lives under ``.retrain/demo/``, which each demo run starts afresh.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pipeline import servers
from pipeline.airflow_local import Airflow, airflow_bin, airflow_env, free_port
from pipeline.config import REPO_ROOT

DEMO_HOME = REPO_ROOT / ".retrain" / "demo"

# Sized for 2 CPU cores: MiniLM trains at ~30-45 samples/s there.
SIZES: dict[str, dict[str, Any]] = {
    "small": {
        "days": 90,
        "first_model_day": 28,
        "monitor_every": 28,
        "env": {
            "RETRAIN_SIMULATOR__MESSAGES_PER_DAY": "24",
            # the feedback watcher starts ab_test once 90% of the online phase's feedback is in
            "RETRAIN_AB__TRIGGER_FEEDBACK": "720",
            # half the simulated users meet the challenger, so that a few hundred requests can decide
            "RETRAIN_SERVE__CHALLENGER_SHARE": "0.5",
            "RETRAIN_AB__TRIGGER_POLL_S": "2",
            "RETRAIN_FINETUNE__MAX_TRAIN_ROWS": "200",
            "RETRAIN_FINETUNE__EPOCHS": "2",
            "RETRAIN_FINETUNE__FREEZE_LAYERS": "3",
        },
    },
    "default": {
        "days": 364,
        "first_model_day": 28,
        "monitor_every": 42,
        "env": {
            "RETRAIN_SIMULATOR__MESSAGES_PER_DAY": "30",
            # the feedback watcher starts ab_test once 90% of the online phase's feedback is in
            "RETRAIN_AB__TRIGGER_FEEDBACK": "1800",
            # half the simulated users meet the challenger, so that a few hundred requests can decide
            "RETRAIN_SERVE__CHALLENGER_SHARE": "0.5",
            "RETRAIN_AB__TRIGGER_POLL_S": "2",
            "RETRAIN_FINETUNE__MAX_TRAIN_ROWS": "320",
            "RETRAIN_FINETUNE__EPOCHS": "2",
            "RETRAIN_FINETUNE__FREEZE_LAYERS": "3",
        },
    },
}


@dataclass
class Event:
    day: date
    dag_id: str
    conf: dict[str, Any]
    label: str


@dataclass
class Row:
    dag_id: str
    run_id: str
    trigger: str
    window_end: str
    state: str = "?"
    info: dict[str, Any] = field(default_factory=dict)


def timeline(
    start: date, days: int, first_model_day: int, monitor_every: int, season_starts: tuple[str, ...]
) -> list[Event]:
    """The year as the driver replays it: first model, monitor windows, season starts."""
    end = start + timedelta(days=days)
    first = start + timedelta(days=first_model_day)
    events = [Event(first, "retrain", {"window_end": first.isoformat(), "force_retrain": True}, "first model")]
    d = first + timedelta(days=monitor_every)
    while d <= end:
        events.append(Event(d, "monitor", {"window_end": d.isoformat()}, "monitor window"))
        d += timedelta(days=monitor_every)
    for year in range(start.year, end.year + 1):
        for md in season_starts:
            m, dd = (int(p) for p in md.split("-"))
            s = date(year, m, dd)
            if first < s <= end:
                events.append(
                    Event(s, "retrain", {"window_end": s.isoformat(), "trigger": "schedule"}, f"season start {md}")
                )
    return sorted(events, key=lambda e: (e.day, e.dag_id == "retrain"))


def _marker(cfg: Any, dag_id: str, run_id: str, step: str) -> dict[str, Any] | None:
    from pipeline import paths, storage

    text = storage.read_text(
        paths.join(paths.step_dir(cfg.artifact_root_uri, paths.pipeline_run_id(dag_id, run_id), step), "_SUCCESS")
    )
    return None if text is None else json.loads(text)


def collect(cfg: Any, row: Row, af: Airflow) -> None:
    for step in ("ingest", "drift", "decide", "reassess", "finetune", "evaluate", "register"):
        row.info[step] = _marker(cfg, row.dag_id, row.run_id, step)
    if row.state == "failed":
        from pipeline import paths
        from pipeline.steps.validate import read_failure

        tis = af.api("GET", f"/dags/{row.dag_id}/dagRuns/{row.run_id}/taskInstances")["task_instances"]
        failed = [t["task_id"] for t in tis if t["state"] == "failed"]
        row.info["failed_task"] = failed[0] if failed else "?"
        failure = read_failure(
            paths.step_dir(cfg.artifact_root_uri, paths.pipeline_run_id(row.dag_id, row.run_id), "validate")
        )
        if failure is not None:
            row.info["error"] = failure.get("error")


def _outcome(ev: dict[str, Any] | None, reassessed: dict[str, Any] | None) -> str:
    """The gate's outcome of the run's challenger, or of a standing challenger scored again."""
    word = {"promote": "YES", "insufficient_evidence": "wait", "reject": "no"}
    if ev:
        return word.get(ev.get("outcome", ""), "YES" if ev["promote"] else "no")
    if reassessed:
        return f"{word.get(reassessed.get('outcome', ''), '?')} (standing, look {reassessed.get('look')})"
    return "–"


def _f(x: Any) -> str:
    return "–" if x is None else f"{x:.3f}"


def render(rows: list[Row], title: str) -> str:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, show_lines=False)
    for col in (
        "dag",
        "trigger",
        "window end",
        "rows",
        "drift (text AUC/label JS)",
        "policy",
        "retrained",
        "champion acc / F1",
        "challenger acc / F1",
        "p-value",
        "promoted",
        "version",
    ):
        t.add_column(col)
    for r in rows:
        ing, dr, ev, reg, dec = (r.info.get(k) for k in ("ingest", "drift", "evaluate", "register", "decide"))
        drift = "–"
        if dr:
            drift = (
                "YES " if dr["drift_detected"] else "no "
            ) + f"({_f(dr['text_drift_score'])}/{_f(dr['label_drift_score'])})"
            if not dr["has_reference"]:
                drift = "no reference"
        policy = "–"
        if dec:
            policy = (
                ("RETRAIN " if dec["retrain"] else "no ")
                + dec["rule"]
                + (" (held back)" if dec["suppressed_by"] else "")
            )
        t.add_row(
            r.dag_id,
            r.trigger,
            r.window_end,
            str(ing["rows_kept"]) if ing else ("failed" if r.state == "failed" else "no new data"),
            drift,
            policy,
            "yes"
            if r.info.get("finetune")
            else (f"FAILED at {r.info.get('failed_task')}" if r.state == "failed" else "no"),
            f"{_f(ev['champion_accuracy'])} / {_f(ev['champion_macro_f1'])}" if ev else "–",
            f"{_f(ev['challenger_accuracy'])} / {_f(ev['challenger_macro_f1'])}" if ev else "–",
            (f"{ev['p_value']:.2g}" if ev and ev["p_value"] is not None else "–"),
            _outcome(ev, r.info.get("reassess")),
            reg["version"] if reg else "–",
        )
    console = Console(width=200, record=True)
    console.print(t)
    return console.export_text()


def main(size: str | None = None, keep_running: bool = False) -> int:
    size = size or os.environ.get("DEMO_SIZE", "default")
    if size not in SIZES:
        print(f"DEMO_SIZE must be one of {', '.join(SIZES)}, got {size!r}", file=sys.stderr)
        return 2
    spec = SIZES[size]
    t0 = time.time()
    home = DEMO_HOME
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    port = free_port(int(os.environ.get("DEMO_AIRFLOW_PORT", "8080")))
    extra = {"RETRAIN_SIMULATOR__DAYS": str(spec["days"]), **spec["env"]}
    env = airflow_env(home, port, extra)
    os.environ.update({k: v for k, v in env.items() if k.startswith(("RETRAIN_", "HF_", "TRANSFORMERS_"))})

    from pipeline.config import load_config
    from pipeline.data import simulator

    cfg = load_config()
    files = simulator.write_landing(cfg.simulator, cfg.landing_dir_path)
    print(
        f"[demo] size={size}: {len(files)} landing files for {spec['days']} simulated days in {cfg.landing_dir_path}",
        flush=True,
    )
    events = timeline(
        cfg.simulator.start_date,
        spec["days"],
        spec["first_model_day"],
        spec["monitor_every"],
        cfg.schedule.season_starts,
    )
    af = Airflow(home, env, port)
    rows: list[Row] = []
    # SIGTERM (e.g. a CI timeout) unwinds like Ctrl-C, so the Airflow processes are stopped too
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        print(
            f"[demo] starting Airflow (api-server :{port}, scheduler, dag-processor, triggerer); logs in {home / 'logs'}",
            flush=True,
        )
        af.start()
        af.wait_for_dags(["monitor", "retrain", "ab_test"])
        seen_asset_runs: set[str] = set()
        for ev in events:
            if ev.label.startswith("season start"):
                print(f"[demo] {ev.day} {ev.label}: backfill {ev.dag_id} over {ev.day} (SeasonalTimetable)", flush=True)
                run_id = af.backfill(ev.dag_id, ev.day)
                trigger = "season (backfill)"
            else:
                run_id = f"demo_{ev.dag_id}_{ev.day.isoformat()}"
                print(f"[demo] {ev.day} {ev.label}: trigger {ev.dag_id}", flush=True)
                af.trigger(ev.dag_id, run_id, ev.day, ev.conf)
                trigger = "first model" if "force_retrain" in ev.conf else "window"
            state = af.wait_run(ev.dag_id, run_id)
            row = Row(ev.dag_id, run_id, trigger, ev.day.isoformat(), state)
            collect(cfg, row, af)
            rows.append(row)
            print(f"[demo]   -> {state} ({time.time() - t0:.0f}s)", flush=True)
            if (
                ev.dag_id == "monitor"
                and state == "success"
                and af.task_state("monitor", run_id, "emit_drift") == "success"
            ):
                print("[demo]   drift event emitted; waiting for the scheduler to start retrain", flush=True)
                new = _wait_asset_run(af, seen_asset_runs)
                seen_asset_runs.add(new)
                st = af.wait_run("retrain", new)
                arow = Row("retrain", new, "drift event", ev.day.isoformat(), st)
                collect(cfg, arow, af)
                rows.append(arow)
                print(f"[demo]   -> asset-triggered {new}: {st} ({time.time() - t0:.0f}s)", flush=True)
        from pipeline import demo_online

        last_day = events[-1].day if events else cfg.simulator.start_date
        online = demo_online.run(cfg, af, env, last_day, requests=800 if size == "small" else 2000)
        print(f"[demo] {online} ({time.time() - t0:.0f}s)", flush=True)
    finally:
        if not keep_running:
            af.stop()
    text = render(rows, f"{spec['days']} simulated days ({size}): {len(rows)} DAG runs in {time.time() - t0:.0f}s")
    for r in rows:
        decision = r.info.get("evaluate")
        line = ""
        if decision and not decision["promote"]:
            line = f"  {r.run_id}: not promoted: " + "; ".join(decision["reasons"])
        elif r.state == "failed":
            line = f"  {r.run_id}: failed at {r.info.get('failed_task')}: {r.info.get('error') or 'see the task log'}"
        if line:
            print(line)
            text += line + "\n"
    text += f"\n{online}\n"
    (home / "summary.txt").write_text(text)
    asset_runs = sum(1 for r in rows if r.trigger == "drift event")
    promoted = sum(1 for r in rows if (r.info.get("evaluate") or {}).get("promote"))
    print(f"\n{asset_runs} retrain run(s) started by the scheduler from drift events; {promoted} promotion(s).")
    print(f"Summary saved to {home / 'summary.txt'}\n")
    print("Look at what happened:")
    print(
        f"  Airflow UI:  make airflow-ui   then open http://127.0.0.1:{8080}  (DAGs monitor and retrain, their runs and task logs)"
    )
    print(
        "  MLflow UI:   make mlflow-ui    then open http://127.0.0.1:5000  (experiment support-intent-retraining, model support-intent-classifier)"
    )
    failed = [r for r in rows if r.state != "success"]
    return 1 if failed and all(r.state != "success" for r in rows) else 0


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _wait_asset_run(af: Airflow, seen: set[str], timeout: float = 180) -> str:
    run_id = af.new_run("retrain", "asset_triggered", seen, timeout)
    if run_id is None:
        raise RuntimeError("the scheduler did not start an asset-triggered retrain run within 3 minutes")
    return run_id


def serve(what: str) -> int:
    """Open the UIs on the demo's stores: `airflow` (api-server on :8080) or `mlflow` (:5000)."""
    home = DEMO_HOME
    if what == "airflow":
        port = int(os.environ.get("DEMO_AIRFLOW_PORT", "8080"))
        env = airflow_env(home, port)
        return servers.serve([airflow_bin(), "api-server", "--port", str(port), "--workers", "1"], env=env)
    if what == "mlflow":
        mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
        port = int(os.environ.get("DEMO_MLFLOW_PORT", "5000"))
        return servers.serve(
            [
                mlflow_bin,
                "ui",
                "--backend-store-uri",
                f"sqlite:///{home / 'mlflow.db'}",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ]
        )
    print(f"unknown UI {what!r}: airflow or mlflow", file=sys.stderr)
    return 2


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(SIZES), default=None, help="default or small (also DEMO_SIZE)")
    ap.add_argument("--serve", choices=["airflow", "mlflow"], default=None, help="open a UI on the demo's stores")
    ap.add_argument("--keep-running", action="store_true", help="leave Airflow running after the replay")
    a = ap.parse_args()
    sys.exit(serve(a.serve) if a.serve else main(a.size, a.keep_running))
