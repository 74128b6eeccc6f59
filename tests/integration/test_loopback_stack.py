"""The scaled-out topology on loopback (``pipeline.stack_local``): PostgreSQL and Redis of this
machine, the MLflow server with basic auth and the artifact proxy, Airflow with the CeleryExecutor,
and two Celery workers (``default``, ``training``), each in its own working directory.

``retrain`` is triggered through Airflow's authenticated REST API. A service test: skipped with a
reason without PostgreSQL or Redis, required when ``CI=true``. About two minutes.
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
    }
    st = LoopbackStack(tmp_path_factory.mktemp("stack"), retrain_env=env)
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


def test_retrain_runs_across_the_queues_and_registers_on_the_mlflow_server(stack) -> None:
    st, cfg = stack
    conf = {"force_retrain": True, "window_end": "2025-01-29"}
    first = st.api.trigger("retrain", "first", date(2025, 1, 29), conf)
    second = st.api.trigger("retrain", "second", date(2025, 1, 30), {"window_end": "2025-01-29"})
    saw_queued = False
    deadline = time.time() + 420
    while time.time() < deadline:
        a, b = _run(st, first)["state"], _run(st, second)["state"]
        assert not (a == "running" and b == "running"), "two retrain runs at once (max_active_runs=1)"
        saw_queued |= a == "running" and b == "queued"
        if a in ("success", "failed") and b in ("success", "failed"):
            break
        time.sleep(2)
    assert (a, b) == ("success", "success")
    assert saw_queued  # the second trigger waited for the first
    ra, rb = _run(st, first), _run(st, second)
    assert datetime.fromisoformat(rb["start_date"]) >= datetime.fromisoformat(ra["end_date"])

    # each worker wrote the logs of the tasks it ran: finetune on the training worker, the rest on default
    default, training = st.task_logs("default", "retrain", first), st.task_logs("training", "retrain", first)
    assert training == {"finetune"}
    assert {"ingest", "validate", "evaluate", "register"} <= default and "finetune" not in default

    # the model is in the server's registry (through basic auth), with its alias
    from mlflow import MlflowClient

    c = MlflowClient(tracking_uri=st.mlflow_url, registry_uri=st.mlflow_url)
    champion = c.get_model_version_by_alias(cfg.register.model_name, "champion")
    assert str(champion.version) == "1" and champion.tags["window_end"] == "2025-01-29"
    assert len(c.search_model_versions(f"name = '{cfg.register.model_name}'")) == 1  # the second run trained none


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
