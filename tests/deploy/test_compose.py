"""The scaled-out deployment's files: the compose stack's structure, its secrets, the images' pins,
and the MLflow server's entrypoint (run with a stand-in ``mlflow``). No Docker engine is needed."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE = yaml.safe_load((DOCKER / "docker-compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
ONE_SHOT = {"airflow-init", "minio-init"}
REF = re.compile(r"(?<!\$)\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")
SECRETISH = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|ACCESS_KEY", re.IGNORECASE)


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    return {k: str(v) for k, v in env.items()}


def _inline_secrets(env: dict[str, str]) -> list[str]:
    """Keys whose value holds a secret in clear: a secret-named key not set from the environment or a
    secrets file, or a URL with a password that is not a ``${...}`` reference."""
    bad = []
    for key, value in env.items():
        if SECRETISH.search(key) and not (value.startswith("${") or value.startswith("/run/secrets/")):
            bad.append(key)
        elif any(c and not REF.fullmatch(c) for c in re.findall(r"://[^/@:]*:([^@]*)@", value)):
            bad.append(key)
    return bad


def test_every_component_of_the_stack_is_there() -> None:
    assert set(SERVICES) == {
        "postgres", "redis", "minio", "minio-init", "mlflow", "airflow-init", "airflow-apiserver",
        "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker",
        "airflow-worker-training", "serving",
    }  # fmt: skip
    airflow = {n: s for n, s in SERVICES.items() if n.startswith("airflow-")}
    assert {_env(s)["AIRFLOW__CORE__EXECUTOR"] for s in airflow.values()} == {"CeleryExecutor"}
    assert SERVICES["airflow-worker"]["command"] == ["celery", "worker", "--queues", "default"]
    training = SERVICES["airflow-worker-training"]
    assert training["command"][:4] == ["celery", "worker", "--queues", "training"]
    assert (
        training["build"]["dockerfile"] == "docker/Dockerfile.trainer"
        and "TORCH_INDEX_URL" in training["build"]["args"]
    )
    mlflow_cmd = (REPO / "mlflow" / "entrypoint.sh").read_text()
    assert "--serve-artifacts" in mlflow_cmd and "--app-name basic-auth" in mlflow_cmd
    assert _env(SERVICES["airflow-scheduler"])["RETRAIN_TRACKING__TRACKING_URI"] == "http://mlflow:5000"


def test_the_training_queue_is_the_one_finetune_uses() -> None:
    from pipeline.config import FinetuneConfig

    queue = FinetuneConfig().queue
    assert SERVICES["airflow-worker-training"]["command"][3] == queue
    assert (
        _env(SERVICES["airflow-worker"])["AIRFLOW__OPERATORS__DEFAULT_QUEUE"]
        == SERVICES["airflow-worker"]["command"][3]
    )


def test_long_running_services_have_healthchecks_and_dependencies_wait_for_them() -> None:
    for name, svc in SERVICES.items():
        if name in ONE_SHOT:
            assert svc.get("restart") == "no", name
            continue
        hc = svc.get("healthcheck")
        assert hc and hc["test"] and hc.get("retries"), f"{name}: no healthcheck"
        assert svc.get("restart") == "unless-stopped", name
    for name, svc in SERVICES.items():
        deps = svc.get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: depends_on without conditions"
        for dep, cond in deps.items():
            assert dep in SERVICES, f"{name} depends on unknown {dep}"
            want = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            assert cond == {"condition": want}, f"{name} -> {dep}: {cond}"


def test_volumes_and_secrets_are_declared() -> None:
    named = set(COMPOSE["volumes"])
    for name, svc in SERVICES.items():
        for vol in svc.get("volumes") or []:
            src = vol.split(":", 1)[0]
            if src.startswith("."):
                assert (DOCKER / src).exists(), f"{name}: {src} is missing"
            else:
                assert src in named, f"{name}: volume {src} is not declared"
        for secret in svc.get("secrets") or []:
            assert secret in COMPOSE["secrets"]
    assert "retrain-home" in named and "postgres-data" in named


def test_no_secret_is_written_inline_and_every_reference_is_documented() -> None:
    text = (DOCKER / "docker-compose.yaml").read_text()
    documented = {
        line.split("=", 1)[0]
        for line in (DOCKER / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    used = set(REF.findall(text))
    assert used <= documented, f"not in .env.example: {sorted(used - documented)}"
    for name, svc in SERVICES.items():
        assert _inline_secrets(_env(svc)) == [], name
    # the detector itself catches both kinds
    assert _inline_secrets({"DB": "postgresql://u:hunter2@db/x", "API_SECRET": "abc", "OK": "${X:?x}"}) == [
        "DB",
        "API_SECRET",
    ]
    for line in (DOCKER / ".env.example").read_text().splitlines():
        key, _, value = line.partition("=")
        if not line.startswith("#") and SECRETISH.search(key):
            assert value == "", f".env.example gives {key} a value"
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert "docker/.env" in ignored and "docker/secrets/" in ignored


def test_images_install_from_the_constraints_file() -> None:
    for dockerfile in ("docker/Dockerfile.airflow", "docker/Dockerfile.trainer", "mlflow/Dockerfile"):
        text = (REPO / dockerfile).read_text().replace("\\\n", " ")
        installs = re.findall(r"pip install[^\n&]*", text)
        assert installs, dockerfile
        for cmd in installs:
            pinned = re.findall(r'"([A-Za-z0-9_.\[\]-]+)==', cmd)
            assert "-c constraints.txt" in cmd or pinned, f"{dockerfile}: unpinned {cmd!r}"
    pins = (REPO / "constraints.txt").read_text()
    for pkg in ("apache-airflow-providers-celery", "s3fs", "boto3", "Flask-WTF"):
        assert re.search(rf"^{re.escape(pkg)}==", pins, re.MULTILINE), pkg


@pytest.fixture
def fake_mlflow(tmp_path: Path) -> Path:
    """A stand-in ``mlflow`` that prints its arguments and the auth config it was given."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mlflow").write_text('#!/bin/sh\necho "ARGS $*"\ncat "$MLFLOW_AUTH_CONFIG_PATH"\n')
    (bin_dir / "mlflow").chmod(0o755)
    (bin_dir / "python").symlink_to(Path(os.sys.executable))
    return bin_dir


def _entrypoint(bin_dir: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": f"{bin_dir}:/usr/bin:/bin", "TMPDIR": str(tmp_path)}
    return subprocess.run(["sh", str(REPO / "mlflow" / "entrypoint.sh"), "--expose-prometheus", "/metrics"],
                          env={**base, **env}, capture_output=True, text=True, timeout=30)  # fmt: skip


def test_the_mlflow_entrypoint_refuses_a_missing_secret(fake_mlflow: Path, tmp_path: Path) -> None:
    out = _entrypoint(fake_mlflow, tmp_path, MLFLOW_BACKEND_STORE_URI="postgresql://m@db/mlflow",
                      MLFLOW_ARTIFACTS_DESTINATION="s3://b", MLFLOW_AUTH_DATABASE_URI="sqlite:///a.db")  # fmt: skip
    assert out.returncode != 0 and "MLFLOW_AUTH_ADMIN_PASSWORD" in out.stderr


def test_the_mlflow_entrypoint_starts_the_auth_app_with_the_artifact_proxy(fake_mlflow: Path, tmp_path: Path) -> None:
    out = _entrypoint(
        fake_mlflow, tmp_path,
        MLFLOW_BACKEND_STORE_URI="postgresql://mlflow:pw@db:5432/mlflow",
        MLFLOW_ARTIFACTS_DESTINATION="s3://mlflow-artifacts",
        MLFLOW_AUTH_DATABASE_URI="postgresql://mlflow:p%&|w@db:5432/mlflow_auth",
        MLFLOW_AUTH_ADMIN_PASSWORD="s3cret",
        MLFLOW_FLASK_SERVER_SECRET_KEY="k",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    args = out.stdout.splitlines()[0]
    for flag in ("server", "--app-name basic-auth", "--serve-artifacts", "--artifacts-destination s3://mlflow-artifacts",
                 "--backend-store-uri postgresql://mlflow:pw@db:5432/mlflow", "--expose-prometheus /metrics"):  # fmt: skip
        assert flag in args, flag
    import configparser

    conf = configparser.ConfigParser()
    conf.read_string("\n".join(out.stdout.splitlines()[1:]))
    assert conf["mlflow"]["database_uri"] == "postgresql://mlflow:p%&|w@db:5432/mlflow_auth"  # any character survives
    assert conf["mlflow"]["admin_username"] == "admin" and "s3cret" not in out.stdout
    assert oct(next(tmp_path.glob("mlflow-basic-auth.ini")).stat().st_mode & 0o777) == "0o600"
