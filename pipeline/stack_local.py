"""The scaled-out topology of ``docker/docker-compose.yaml`` as processes on loopback (no Docker).

PostgreSQL and Redis are the ones already running; the rest is started here, each component with
its own working directory so that nothing is shared by accident:

- the MLflow tracking server through ``mlflow/entrypoint.sh`` (PostgreSQL backend store, basic auth,
  the artifact proxy);
- Airflow with the CeleryExecutor: api-server (simple auth manager, a password file), scheduler,
  dag-processor;
- two Celery workers, one per queue (``default``, and ``training`` for ``finetune``), each with its
  own ``AIRFLOW_HOME`` (so its own task logs) and its own ``RETRAIN_HOME``.

What the tasks must share goes through services (MLflow, the PostgreSQL tables) or the one folder
that stands for shared storage (``artifact_root``, ``state_dir``, the landing folder). Every database
and the Redis database are created for the stack and removed by :meth:`LoopbackStack.down`.

Light module (stdlib, httpx and psycopg2 when used).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import servers
from pipeline.airflow_local import QUIET_ENV, Airflow, airflow_bin, free_port
from pipeline.config import REPO_ROOT

WORKERS = {"default": "default", "training": "training"}  # worker name -> queue


@dataclass
class LoopbackStack:
    root: Path
    retrain_env: dict[str, str] = field(default_factory=dict)  # the pipeline's own settings (model, sizes)
    pg: str = "postgresql://postgres@127.0.0.1:5432"
    redis: str = "redis://127.0.0.1:6379"
    redis_db: int = 11
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    user: str = "admin"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    mlflow_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    executor: str = "CeleryExecutor"  # LocalExecutor: the same stack without Celery (benchmarks/cycle.py)
    airflow_overrides: dict[str, str] = field(default_factory=dict)  # AIRFLOW__* for every component

    def __post_init__(self) -> None:
        self.dbs = {k: f"stack_{self.tag}_{k}" for k in ("airflow", "mlflow", "mlflow_auth", "retrain")}
        self.airflow_port = free_port(18080)
        self.mlflow_port = free_port(15000)
        self.shared = self.root / "shared"
        self.api = Airflow(self.root / "api-server", {}, self.airflow_port)
        self.api.credentials = (self.user, self.password)

    # ---- URLs
    def db_url(self, key: str, driver: str = "postgresql+psycopg2") -> str:
        return f"{self.pg.replace('postgresql://', driver + '://', 1)}/{self.dbs[key]}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def airflow_url(self) -> str:
        return f"http://127.0.0.1:{self.airflow_port}"

    # ---- environment
    def pipeline_env(self, home: Path) -> dict[str, str]:
        """The pipeline's settings for one component: its own home, the shared folder, the services."""
        return {
            "RETRAIN_HOME": str(home),
            "RETRAIN_ARTIFACT_ROOT": str(self.shared / "artifacts"),
            "RETRAIN_STATE_DIR": str(self.shared / "state"),
            "RETRAIN_INGEST__LANDING_DIR": str(self.shared / "landing"),
            "RETRAIN_TRACKING__TRACKING_URI": self.mlflow_url,
            "RETRAIN_DRIFT__HISTORY_URL": self.db_url("retrain"),
            "RETRAIN_REGISTER__HISTORY_URL": self.db_url("retrain"),
            "RETRAIN_SERVE__LOG_URL": self.db_url("retrain"),
            "RETRAIN_SCHEDULE__TIME_TRIGGERS": "false",
            "RETRAIN_AB__TRIGGER_FEEDBACK": "0",
            "MLFLOW_TRACKING_USERNAME": "admin",
            "MLFLOW_TRACKING_PASSWORD": self.mlflow_password,
            **QUIET_ENV,
            **self.retrain_env,
        }

    def airflow_env(self, name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        home = self.root / name
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__", "RETRAIN_"))}
        env |= self.pipeline_env(home / "retrain-home")
        env |= {
            "AIRFLOW_HOME": str(home / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": self.executor,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db_url("airflow"),
            "AIRFLOW__CELERY__BROKER_URL": f"{self.redis}/{self.redis_db}",
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.db_url("airflow"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.airflow_url}/execution/",
            "AIRFLOW__API__PORT": str(self.airflow_port),
            "AIRFLOW__API__BASE_URL": self.airflow_url,
            "AIRFLOW__API_AUTH__JWT_SECRET": self._secret("jwt"),
            "AIRFLOW__API__SECRET_KEY": self._secret("api"),
            "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.user}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.root / "airflow-passwords.json"),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": "default",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        }
        return env | self.airflow_overrides | (extra or {})

    def _secret(self, name: str) -> str:
        path = self.root / f".{name}-secret"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32))
        return path.read_text()

    # ---- lifecycle
    def up(self, timeout: float = 240) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for d in ("artifacts", "state", "landing"):
            (self.shared / d).mkdir(parents=True, exist_ok=True)
        (self.root / "airflow-passwords.json").write_text(json.dumps({self.user: self.password}))
        self._create_databases()
        self._start_mlflow(timeout)
        migrate = subprocess.run([airflow_bin(), "db", "migrate"], env=self.airflow_env("api-server"),
                                 capture_output=True, text=True, timeout=timeout)  # fmt: skip
        if migrate.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed: {migrate.stderr.strip().splitlines()[-1:]}")
        self._start("api-server", ["api-server", "--port", str(self.airflow_port), "--workers", "1"])
        self._start("scheduler", ["scheduler"])
        self._start("dag-processor", ["dag-processor"])
        for name, queue in WORKERS.items() if self.executor == "CeleryExecutor" else ():
            self.start_worker(name, queue)
        if not servers.wait_http_ok(f"{self.airflow_url}/api/v2/monitor/health", timeout=timeout):
            raise RuntimeError(f"the Airflow api-server did not answer; see {self.root}/api-server/*.log")

    def start_worker(self, name: str, queue: str) -> None:
        """A Celery worker ``worker-{name}`` on ``queue``, one task at a time, in its own folder."""
        extra = {"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port(18793 + 10 * len(self.procs)))}
        self._start(f"worker-{name}", ["celery", "worker", "--queues", queue, "--concurrency", "1",
                                       "--celery-hostname", f"{name}@%h"], extra)  # fmt: skip

    # ---- failures (tests/integration/test_loopback_stack.py)
    def kill(self, name: str) -> None:
        """SIGKILL a component's whole process group (a crashed node: no cleanup, no goodbye)."""
        proc = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop_mlflow(self) -> None:
        servers.stop_group(self.procs.pop("mlflow"))

    def start_mlflow(self, timeout: float = 120) -> None:
        self._start_mlflow(timeout)

    def exited(self) -> list[str]:
        """The components whose process has exited (what a supervisor's restart policy would restart)."""
        return [name for name, proc in self.procs.items() if proc.poll() is not None]

    def restart(self, name: str) -> None:
        """Start an exited component again: the MLflow server through its entrypoint, an Airflow
        component with the arguments it had."""
        proc = self.procs.pop(name)
        if name == "mlflow":
            self._start_mlflow(timeout=120)
            return
        args = [str(a) for a in proc.args[1:]]  # type: ignore[union-attr, index]
        extra = None
        if name.startswith("worker-"):
            extra = {"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port(18893 + 10 * len(self.procs)))}
        self._start(name, args, extra)

    def _start(self, name: str, args: list[str], extra: dict[str, str] | None = None) -> None:
        cwd = self.root / name
        cwd.mkdir(parents=True, exist_ok=True)
        with open(cwd / f"{name}.log", "ab") as out:  # the child keeps its own copy of the descriptor
            self.procs[name] = servers.start_group([airflow_bin(), *args], env=self.airflow_env(name, extra),
                                                   cwd=cwd, stdout=out, stderr=out)  # fmt: skip

    def _start_mlflow(self, timeout: float) -> None:
        cwd = self.root / "mlflow"
        cwd.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RETRAIN_"))}
        env |= {
            "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}",
            "TMPDIR": str(cwd),
            "MLFLOW_BACKEND_STORE_URI": self.db_url("mlflow"),
            "MLFLOW_ARTIFACTS_DESTINATION": str(self.root / "mlflow-artifacts"),
            "MLFLOW_AUTH_DATABASE_URI": self.db_url("mlflow_auth"),
            "MLFLOW_AUTH_ADMIN_PASSWORD": self.mlflow_password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": self._secret("mlflow"),
            "MLFLOW_HOST": "127.0.0.1",
            "MLFLOW_PORT": str(self.mlflow_port),
            "MLFLOW_WORKERS": "1",
        }
        with open(cwd / "mlflow.log", "ab") as out:
            self.procs["mlflow"] = servers.start_group(["sh", str(REPO_ROOT / "mlflow" / "entrypoint.sh")], env=env,
                                                       cwd=cwd, stdout=out, stderr=out)  # fmt: skip
        if not servers.wait_http_ok(f"{self.mlflow_url}/health", timeout=timeout):
            raise RuntimeError(f"the MLflow server did not answer; see {cwd / 'mlflow.log'}")

    def _admin(self) -> Any:
        import psycopg2

        conn = psycopg2.connect(f"{self.pg}/postgres", connect_timeout=5)
        conn.autocommit = True
        return conn

    def _create_databases(self) -> None:
        conn = self._admin()
        with conn.cursor() as cur:
            for db in self.dbs.values():
                cur.execute(f'CREATE DATABASE "{db}"')
        conn.close()

    def down(self) -> None:
        for proc in reversed(list(self.procs.values())):
            servers.stop_group(proc)
        self.procs.clear()
        try:
            conn = self._admin()
            with conn.cursor() as cur:
                for db in self.dbs.values():
                    cur.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            conn.close()
        finally:
            import redis

            redis.Redis.from_url(f"{self.redis}/{self.redis_db}").flushdb()

    def wipe(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    # ---- what ran where
    def task_logs(self, worker: str, dag_id: str, run_id: str) -> set[str]:
        """Task ids whose logs this worker wrote for the run (each worker has its own AIRFLOW_HOME)."""
        base = self.root / f"worker-{worker}" / "airflow" / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
        return {p.name.removeprefix("task_id=") for p in base.glob("task_id=*")} if base.exists() else set()
