"""Child servers (Airflow, MLflow UI) that never outlive the process that started them.

Each server runs in its own process group, so one signal reaches it and every worker it forks;
Linux's parent-death signal stops it even when the launcher itself is killed with SIGKILL. The
launcher turns SIGINT (Ctrl-C) and SIGTERM (``make`` forwards it to its recipe) into a clean stop.

Light module (stdlib only).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: ask the kernel for SIGTERM when the parent dies (Linux only)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def start_group(cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start ``cmd`` as the leader of a new process group that dies with this process."""
    return subprocess.Popen(list(cmd), start_new_session=True, preexec_fn=_die_with_parent, **kwargs)


def stop_group(proc: subprocess.Popen[Any], timeout: float = 20) -> None:
    """SIGTERM to the whole group, then SIGKILL for what is still there after ``timeout`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
            # the leader is gone; its workers may linger a moment: the group gets the same signal
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
            return
        except subprocess.TimeoutExpired:
            continue


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def serve(cmd: Sequence[str], **kwargs: Any) -> int:
    """Run a server in the foreground until it exits or this process gets SIGINT/SIGTERM; stop it then.

    Returns the server's exit code, or 0 after a stop by signal.
    """
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    proc = start_group(cmd, **kwargs)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stop_group(proc)
        signal.signal(signal.SIGTERM, previous)


def wait_http_ok(url: str, timeout: float, interval: float = 0.5) -> bool:
    """Poll ``url`` until it answers 200 (True) or ``timeout`` seconds pass (False)."""
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(urllib.error.URLError, OSError):
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return True
        time.sleep(interval)
    return False
