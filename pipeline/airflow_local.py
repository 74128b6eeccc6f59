"""A local Airflow for the demo, the benchmark and `make airflow-ui`: its environment, its three
processes (api-server, scheduler, dag-processor, triggerer) and a small REST client.

Light until used (httpx is imported when the client first talks to the API server).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

from pipeline import servers
from pipeline.config import REPO_ROOT


def free_port(preferred: int) -> int:
    for port in [preferred, *range(preferred + 1, preferred + 50)]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError(f"no free port near {preferred}")


# every process the project starts: no hub, no telemetry, unbuffered logs
QUIET_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "GX_ANALYTICS_ENABLED": "False",
    "GIT_PYTHON_REFRESH": "quiet",
    "PYTHONUNBUFFERED": "1",
}


def airflow_env(home: Path, port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for every Airflow process of the demo (and for `make airflow-ui`)."""
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "RETRAIN_HOME": str(home),
            # the retrain DAG keeps its seasonal timetable (the demo backfills season starts through it);
            # catchup is off, so the scheduler itself only ever schedules the next real season start.
            # The monitor runs only when triggered: the demo replays its windows.
            "RETRAIN_SCHEDULE__MONITOR_CRON": "null",
            **QUIET_ENV,
        }
    )
    env.update(extra or {})
    return env


def airflow_bin() -> str:
    return str(Path(sys.executable).with_name("airflow"))


class Airflow:
    """api-server + scheduler + dag-processor + triggerer as child process groups, and a tiny REST client."""

    def __init__(self, home: Path, env: dict[str, str], port: int):
        self.home, self.env, self.port = home, env, port
        self.procs: list[subprocess.Popen] = []
        self.base = f"http://127.0.0.1:{port}"
        self._token: str | None = None
        self.credentials: tuple[str, str] | None = None  # None: the all-admins simple auth manager

    def start(self) -> None:
        import httpx

        logs = self.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        subprocess.run([airflow_bin(), "db", "migrate"], env=self.env, check=True, capture_output=True)
        for name, args in (
            ("api-server", ["api-server", "--port", str(self.port), "--workers", "1"]),
            ("scheduler", ["scheduler"]),
            ("dag-processor", ["dag-processor"]),
            ("triggerer", ["triggerer"]),  # runs asset watchers (ab_test on feedback volume)
        ):
            out = open(logs / f"{name}.log", "ab")
            self.procs.append(servers.start_group([airflow_bin(), *args], env=self.env, stdout=out, stderr=out))
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                if httpx.get(f"{self.base}/api/v2/monitor/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            self._check_alive()
            time.sleep(1)
        raise RuntimeError(f"Airflow api-server did not answer on {self.base}; see {logs}")

    def _check_alive(self) -> None:
        for p in self.procs:
            if p.poll() is not None:
                raise RuntimeError(f"Airflow process {p.args!r} exited with {p.returncode}; see {self.home / 'logs'}")

    def stop(self) -> None:
        for p in self.procs:
            servers.stop_group(p)

    def _headers(self) -> dict[str, str]:
        import httpx

        if self._token is None and self.credentials is not None:
            user, password = self.credentials
            r = httpx.post(f"{self.base}/auth/token", json={"username": user, "password": password}, timeout=10)
            if r.status_code >= 400:
                raise RuntimeError(f"Airflow refused the credentials of {user!r}: {r.status_code} {r.text[:200]}")
            self._token = r.json()["access_token"]
        elif self._token is None:
            # all-admins simple auth manager: GET /auth/token hands out a JWT without credentials
            self._token = httpx.get(f"{self.base}/auth/token", timeout=10).json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def api(self, method: str, path: str, **kw: Any) -> Any:
        import httpx

        r = httpx.request(method, f"{self.base}/api/v2{path}", headers=self._headers(), timeout=30, **kw)
        if r.status_code >= 400:
            raise RuntimeError(f"Airflow API {method} {path}: {r.status_code} {r.text[:300]}")
        return r.json()

    def wait_for_dags(self, dag_ids: list[str], timeout: float = 180) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = {d["dag_id"] for d in self.api("GET", "/dags")["dags"]}
            if set(dag_ids) <= found:
                for d in dag_ids:
                    self.api("PATCH", f"/dags/{d}", json={"is_paused": False})
                return
            self._check_alive()
            time.sleep(2)
        raise RuntimeError(f"DAGs {dag_ids} were not parsed in {timeout}s; see {self.home / 'logs'}")

    def trigger(self, dag_id: str, run_id: str, day: date, conf: dict[str, Any]) -> str:
        body = {"dag_run_id": run_id, "logical_date": f"{day.isoformat()}T00:00:00Z", "conf": conf}
        return self.api("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]

    def backfill(self, dag_id: str, day: date, timeout: float = 120) -> str:
        """Backfill ``dag_id`` over the single day ``day``: the DAG's timetable says which runs that
        day has (none: Airflow answers 4xx and this raises); returns the backfill run's id."""
        stamp = f"{day.isoformat()}T00:00:00Z"
        body = {
            "dag_id": dag_id,
            "from_date": stamp,
            "to_date": stamp,
            "max_active_runs": 1,
            "reprocess_behavior": "none",
        }
        self.api("POST", "/backfills", json=body)
        deadline = time.time() + timeout
        while time.time() < deadline:
            runs = self.api("GET", f"/dags/{dag_id}/dagRuns", params={"run_type": "backfill", "limit": 100})["dag_runs"]
            for r in runs:
                if str(r.get("logical_date") or "").startswith(day.isoformat()):
                    return str(r["dag_run_id"])
            self._check_alive()
            time.sleep(2)
        raise RuntimeError(f"the backfill of {dag_id} on {day} created no run in {timeout}s")

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 1800) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            state = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in ("success", "failed"):
                return state
            self._check_alive()
            time.sleep(2)
        raise RuntimeError(f"{dag_id} run {run_id} did not finish in {timeout}s")

    def run_ids(self, dag_id: str, run_type: str) -> list[str]:
        runs = self.api("GET", f"/dags/{dag_id}/dagRuns", params={"run_type": run_type, "limit": 100})["dag_runs"]
        return [r["dag_run_id"] for r in runs]

    def new_run(self, dag_id: str, run_type: str, seen: set[str], timeout: float) -> str | None:
        """The first run of ``dag_id`` of ``run_type`` not in ``seen`` within ``timeout`` s (e.g. one
        the scheduler started from an asset event), else None."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            new = [r for r in self.run_ids(dag_id, run_type) if r not in seen]
            if new:
                return new[0]
            self._check_alive()
            time.sleep(2)
        return None

    def task_state(self, dag_id: str, run_id: str, task_id: str) -> str | None:
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}").get("state")
