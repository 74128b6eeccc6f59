"""The scaled-out topology on loopback (``pipeline.stack_local``): PostgreSQL and Redis of this
machine, the MLflow server with basic auth and the artifact proxy, Airflow with the CeleryExecutor,
and two Celery workers (``default``, ``training``), each in its own working directory.

``retrain`` is triggered through Airflow's authenticated REST API. Then the failures: the MLflow
server down during register, the training worker killed mid-training, PostgreSQL restarted mid-run.
A service test: skipped with a reason without PostgreSQL or Redis, required when ``CI=true``. About
five minutes.
"""

from __future__ import annotations

import time
from datetime import date, datetime
from pathlib import Path

import httpx
import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.service("postgresql"),
    pytest.mark.service("redis"),
    pytest.mark.timeout(600),
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path):
    from pipeline.stack_local import LoopbackStack

    env = {
        "RETRAIN_SIMULATOR__MESSAGES_PER_DAY": "14",
        "RETRAIN_FINETUNE__BASE_MODEL": str(tiny_model_dir),
        "RETRAIN_FINETUNE__EPOCHS": "2",
        "RETRAIN_FINETUNE__BATCH_SIZE": "8",
        "RETRAIN_FINETUNE__MAX_LENGTH": "64",
        "RETRAIN_FINETUNE__LEARNING_RATE": "0.003",
        "RETRAIN_FINETUNE__FREEZE_EMBEDDINGS": "false",
        "RETRAIN_FINETUNE__FREEZE_LAYERS": "0",
        "RETRAIN_FINETUNE__MAX_TRAIN_ROWS": "200",
        "RETRAIN_EVALUATE__BOOTSTRAP_SAMPLES": "200",
        "RETRAIN_EVALUATE__FIRST_MODEL_MIN_MACRO_F1": "0.0",
        # an MLflow server that is down is said after one retry, not after minutes
        "RETRAIN_TRACKING__HTTP_MAX_RETRIES": "1",
        "RETRAIN_TRACKING__HTTP_TIMEOUT_S": "5",
        "RETRAIN_SCHEDULE__RETRY_DELAY_S": "5",
    }
    # a task whose worker died is failed (and retried) after 20 s without a heartbeat, not 5 minutes
    overrides = {
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    }
    st = LoopbackStack(tmp_path_factory.mktemp("stack"), retrain_env=env, airflow_overrides=overrides)
    try:
        st.up()
        mp = pytest.MonkeyPatch()
        for k, v in st.pipeline_env(st.root / "test-home").items():
            mp.setenv(k, v)
        from pipeline.config import load_config
        from pipeline.data import simulator

        cfg = load_config()
        simulator.write_landing(cfg.simulator, cfg.landing_dir_path, start=date(2025, 1, 1), end=date(2025, 1, 29))
        st.api.wait_for_dags(["retrain"])
        yield st, cfg
        mp.undo()
    finally:
        st.down()


def _run(st, run_id: str) -> dict:
    return st.api.api("GET", f"/dags/retrain/dagRuns/{run_id}")


def test_without_credentials_airflow_and_mlflow_refuse(stack) -> None:
    st, _ = stack
    assert httpx.get(f"{st.airflow_url}/api/v2/dags", timeout=10).status_code in (401, 403)
    bad = httpx.post(f"{st.airflow_url}/auth/token", json={"username": st.user, "password": "wrong"}, timeout=10)
    assert bad.status_code in (401, 403)
    assert httpx.get(f"{st.mlflow_url}/api/2.0/mlflow/experiments/search?max_results=1", timeout=10).status_code == 401
    wrong = httpx.get(
        f"{st.mlflow_url}/api/2.0/mlflow/experiments/search?max_results=1", auth=("admin", "x"), timeout=10
    )
    assert wrong.status_code == 401
    ok = httpx.get(f"{st.mlflow_url}/api/2.0/mlflow/experiments/search?max_results=1",
                   auth=("admin", st.mlflow_password), timeout=10)  # fmt: skip
    assert ok.status_code == 200


# ---------------------------------------------------------------- failures


def _tis(st, run_id: str) -> dict[str, dict]:
    return {
        t["task_id"]: t for t in st.api.api("GET", f"/dags/retrain/dagRuns/{run_id}/taskInstances")["task_instances"]
    }


def _wait_run(st, run_id: str, timeout: float = 420, tick=None) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if tick is not None:
            tick()
        state = _run(st, run_id)["state"]
        if state in ("success", "failed"):
            return state
        time.sleep(2)
    raise AssertionError(f"run {run_id} did not finish in {timeout}s: {_run(st, run_id)['state']}")


def _rerun_failed(st, run_id: str) -> None:
    st.api.api("POST", "/dags/retrain/clearTaskInstances",
               json={"dry_run": False, "dag_run_id": run_id, "only_failed": True, "reset_dag_runs": True})  # fmt: skip


def _client(st):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=st.mlflow_url, registry_uri=st.mlflow_url)


def _versions_of(st, cfg, run_id: str) -> list[str]:
    from pipeline import paths

    tag = paths.pipeline_run_id("retrain", run_id)
    found = _client(st).search_model_versions(f"name = '{cfg.register.model_name}' and tags.pipeline_run_id = '{tag}'")
    return [str(v.version) for v in found]


def _error_lines(st, worker: str, run_id: str, task_id: str, attempt: int) -> list[str]:
    import json

    log = (st.root / f"worker-{worker}" / "airflow" / "logs" / "dag_id=retrain" / f"run_id={run_id}"
           / f"task_id={task_id}" / f"attempt={attempt}.log")  # fmt: skip
    out = []
    for line in log.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        for exc in rec.get("error_detail") or []:
            out.append(f"{exc.get('exc_type')}: {exc.get('exc_value')}")
    return out


def _restart_postgres() -> None:
    import shutil
    import subprocess

    clusters = sorted(Path("/etc/postgresql").glob("*/main"))
    assert clusters and shutil.which("pg_ctlcluster"), "PostgreSQL cannot be restarted here (no pg_ctlcluster)"
    version = clusters[-1].parent.name
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True, timeout=120)


def test_retrain_across_the_queues_survives_postgres_restart_a_killed_worker_and_mlflow_down(stack) -> None:
    """One retrain run through the REST API, and a second trigger while it is active; the first run
    meets three failures in the order a run meets them (one run keeps the suite short):

    - PostgreSQL restarted while validate runs: exited components are restarted (the compose
      stack's restart policy); the run recovers, or fails clearly and its failed tasks run again;
    - the training worker SIGKILLed mid-finetune: the heartbeat timeout fails that try and the retry
      runs on a second training worker;
    - the MLflow server down when register is queued: register retries, then fails in one line, no
      version is created and no alias moves; with the server back, the rerun finishes with one
      version, registered on the server with its alias, and the second run never ran beside it.
    """
    from pipeline.monitoring import history

    st, cfg = stack
    client = _client(st)
    name = cfg.register.model_name
    run = st.api.trigger("retrain", "first", date(2025, 1, 29), {"force_retrain": True, "window_end": "2025-01-29"})
    second: str | None = None  # triggered while the first is active again, after its rerun
    restarted: list[str] = []
    saw_queued = False

    def tick() -> None:
        nonlocal saw_queued
        if second is not None:
            a, b = _run(st, run)["state"], _run(st, second)["state"]
            assert not (a == "running" and b == "running"), "two retrain runs at once (max_active_runs=1)"
            saw_queued |= a == "running" and b == "queued"
        for component in st.exited():  # what `restart: unless-stopped` does in the compose stack
            restarted.append(component)
            st.restart(component)

    def reach(task_id: str, states: tuple[str, ...]) -> None:
        deadline = time.time() + 300
        while time.time() < deadline:
            tick()
            if _tis(st, run).get(task_id, {}).get("state") in states:
                return
            if _run(st, run)["state"] == "failed":  # allowed after the restart, if clear: run it again
                failed = [t for t, ti in _tis(st, run).items() if ti["state"] == "failed"]
                assert failed, "a failed run names its failed task"
                _rerun_failed(st, run)
            time.sleep(0.3)
        raise AssertionError(f"{task_id} never reached {states}: {_tis(st, run).get(task_id)}")

    reach("validate", ("running",))
    _restart_postgres()
    reach("finetune", ("running",))
    time.sleep(3)  # into the task: the model is loading or training
    st.kill("worker-training")
    st.start_worker("training2", "training")
    reach("register", ("scheduled", "queued", "running"))
    st.stop_mlflow()
    try:
        assert _wait_run(st, run, tick=tick) == "failed"
        tis = _tis(st, run)
        assert tis["finetune"]["state"] == "success" and tis["finetune"]["try_number"] == 2
        assert tis["register"]["state"] == "failed" and tis["register"]["try_number"] == 3  # retries=2
        assert tis["commit"]["state"] == "upstream_failed"  # the window is not consumed
        # the task's own error (first; the chained causes follow) is one line naming the server
        errors = _error_lines(st, "default", run, "register", 3)
        assert errors and "\n" not in errors[0], errors
        assert errors[0].startswith(f"TrackingError: MLflow tracking store {st.mlflow_url} cannot be reached"), errors
    finally:
        st.start_mlflow()
    assert not client.search_model_versions(f"name = '{name}'")  # no version, so no alias either

    _rerun_failed(st, run)
    deadline = time.time() + 60
    while _run(st, run)["state"] != "running" and time.time() < deadline:
        time.sleep(0.3)
    second = st.api.trigger("retrain", "second", date(2025, 1, 30), {"window_end": "2025-01-29"})
    assert _wait_run(st, run, tick=tick) == "success", f"restarted after the PostgreSQL restart: {restarted}"
    assert _wait_run(st, second, tick=tick) == "success"
    assert saw_queued  # the second trigger waited for the first
    ra, rb = _run(st, run), _run(st, second)
    assert datetime.fromisoformat(rb["start_date"]) >= datetime.fromisoformat(ra["end_date"])

    # each worker wrote the logs of the tasks it ran: finetune on the training workers (try 1 on the
    # killed one, try 2 on its replacement), everything else on default
    default = st.task_logs("default", "retrain", run)
    assert st.task_logs("training", "retrain", run) == {"finetune"} == st.task_logs("training2", "retrain", run)
    assert {"ingest", "validate", "evaluate", "register"} <= default and "finetune" not in default

    # one version, in the server's registry (through basic auth), with its alias; the second run
    # trained none; the drift history (PostgreSQL) kept every row
    champion = client.get_model_version_by_alias(name, "champion")
    assert str(champion.version) == "1" and champion.tags["window_end"] == "2025-01-29"
    assert len(client.search_model_versions(f"name = '{name}'")) == 1 == len(_versions_of(st, cfg, run))
    kinds = [r.kind for r in history.rows(cfg.drift_history_url, name)]
    assert "retrain" in kinds and "check" in kinds
