"""`make airflow-ui` / `make mlflow-ui` run `pipeline.servers.serve`: the server and every process it
forks stop when the launcher gets Ctrl-C or SIGTERM, and even when the launcher is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# A "server" that forks a worker (as uvicorn and gunicorn do) and writes both pids.
SERVER = """
import subprocess, sys, time, pathlib
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
pathlib.Path(sys.argv[1]).write_text(f"{__import__('os').getpid()} {worker.pid}")
time.sleep(300)
"""
LAUNCHER = """
import sys
from pipeline import servers
sys.exit(servers.serve([sys.executable, "-c", sys.argv[1], sys.argv[2]]))
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def _start(tmp_path: Path) -> tuple[subprocess.Popen, list[int]]:
    pids_file = tmp_path / "pids"
    # SIGINT back to its default in the launcher: a shell without job control starts background jobs
    # (``make test &``) with SIGINT ignored, and Python keeps an inherited "ignore"
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, SERVER, str(pids_file)],
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 30
    while time.time() < deadline and not pids_file.exists():
        time.sleep(0.1)
    time.sleep(0.3)
    pids = [int(p) for p in pids_file.read_text().split()]
    assert all(_alive(p) for p in pids)
    return launcher, pids


def _gone(pids: list[int], timeout: float = 30) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups and /proc: Linux")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_the_server_and_its_workers_stop_with_the_launcher(tmp_path: Path, sig: signal.Signals) -> None:
    launcher, pids = _start(tmp_path)
    launcher.send_signal(sig)
    assert launcher.wait(timeout=30) == 0
    assert _gone(pids), f"still running after {sig.name}: {[p for p in pids if _alive(p)]}"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux")
def test_the_server_stops_even_when_the_launcher_is_killed(tmp_path: Path) -> None:
    launcher, pids = _start(tmp_path)
    launcher.kill()
    launcher.wait(timeout=30)
    assert _gone(pids[:1]), "the server outlived a SIGKILLed launcher"
