"""One full retrain cycle at the small demo size, timed per step, beside an empty DAG of the same shape.

Both DAGs run with ``dag.test()`` in this one process, against the same SQLite Airflow metadata
DB, so the difference is what the pipeline's own work costs. Measured:

* per step: wall seconds of the step function itself (``pipeline.flow.<step>``, imports included
  on first use);
* the DAG run's wall time, and the orchestration overhead = DAG wall − sum of step seconds;
* the empty DAG's wall time (same task ids and edges, every task returns at once).

A first, untimed cycle makes the champion; the timed cycle is the drift-triggered second one, so
it includes the warm start, the replay and the champion-vs-challenger evaluation.

Run: ``make bench`` (writes benchmarks/results/cycle.md). Numbers are ratios within one process
on one machine, never thresholds.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
STEPS = ("ingest", "validate", "champion", "drift", "finetune", "evaluate", "register")


def _setup_env(home: Path) -> None:
    sys.path.insert(0, str(REPO))
    from pipeline.demo import SIZES

    os.environ.update(
        {
            "AIRFLOW_HOME": str(home / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "RETRAIN_HOME": str(home),
            "RETRAIN_SCHEDULE__TIME_TRIGGERS": "false",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "GX_ANALYTICS_ENABLED": "False",
            **SIZES["small"]["env"],
        }
    )
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)


def _empty_twin(dag):
    """A DAG with the same task ids and edges whose tasks do nothing."""
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    twin = DAG(dag_id=f"{dag.dag_id}_empty", schedule=None, start_date=dag.start_date, catchup=False)
    with twin:
        ops = {t.task_id: EmptyOperator(task_id=t.task_id) for t in dag.tasks}
    for t in dag.tasks:
        for down in t.downstream_task_ids:
            ops[t.task_id] >> ops[down]
    return twin


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="bench-cycle-"))
    _setup_env(home)

    from airflow.dag_processing.dagbag import DagBag

    from pipeline import flow
    from pipeline.config import load_config
    from pipeline.data import simulator

    cfg = load_config()
    simulator.write_landing(cfg.simulator, cfg.landing_dir_path, start=date(2025, 1, 1), end=date(2025, 4, 30))
    timings: dict[str, float] = {}

    def timed(name, fn):
        @functools.wraps(fn)
        def wrapper(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                timings[name] = timings.get(name, 0.0) + time.perf_counter() - t

        return wrapper

    for name in STEPS:
        setattr(flow, name, timed(name, getattr(flow, name)))

    dags = DagBag(str(REPO / "dags")).dags
    retrain = dags["retrain"]
    print("[bench] first cycle (makes the champion; not timed)", flush=True)
    first = retrain.test(run_conf={"force_retrain": True, "window_end": "2025-01-29"})
    assert first.state == "success", first.state

    timings.clear()
    print("[bench] timed cycle: drift-triggered retrain with warm start, replay and A/B evaluation", flush=True)
    t = time.perf_counter()
    run = retrain.test(run_conf={"window_end": "2025-04-02", "trigger": "drift"})
    wall = time.perf_counter() - t
    assert run.state == "success", run.state

    twin = _empty_twin(retrain)
    twin.test()  # warm-up: first run of a new DAG serializes it
    t = time.perf_counter()
    empty = twin.test()
    empty_wall = time.perf_counter() - t
    assert empty.state == "success"

    compute = sum(timings.values())
    overhead = wall - compute
    lines = [
        "# Retrain cycle benchmark (small demo size)",
        "",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}; "
        f"base model {cfg.finetune.base_model}; max_train_rows {os.environ['RETRAIN_FINETUNE__MAX_TRAIN_ROWS']}, "
        f"epochs {os.environ['RETRAIN_FINETUNE__EPOCHS']}",
        "",
        "| what | seconds | share of DAG wall |",
        "|---|---:|---:|",
    ]
    for name in STEPS:
        s = timings.get(name, 0.0)
        lines.append(f"| step `{name}` | {s:.2f} | {s / wall:.1%} |")
    lines += [
        f"| **steps' own compute** | {compute:.2f} | {compute / wall:.1%} |",
        f"| **retrain DAG run wall** | {wall:.2f} | 100.0% |",
        f"| orchestration overhead (wall − compute) | {overhead:.2f} | {overhead / wall:.1%} |",
        f"| empty DAG of the same shape, wall | {empty_wall:.2f} | {empty_wall / wall:.1%} |",
        "",
        f"overhead / empty-DAG wall = {overhead / empty_wall:.2f}x "
        "(near 1: the pipeline adds no orchestration cost beyond Airflow's own per-task cost)",
    ]
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cycle.md").write_text(table + "\n")
    print(f"\nwritten to {RESULTS / 'cycle.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
