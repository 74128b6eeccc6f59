"""The values files for the official Apache Airflow Helm chart (docker/helm/).

The chart's values.schema.json cannot be had here (no network beyond package registries, and the
chart is not a Python package), so this checks the second way the issue allows: every key the
files set is one the chart documents. ``DOCUMENTED`` is transcribed from the chart's parameter
reference (https://airflow.apache.org/docs/helm-chart/stable/parameters-ref.html, chart 1.19+,
and "Customizing Workers" for ``workers.celery.sets``); subtrees the chart passes through as
Kubernetes objects or airflow.cfg sections are free-form below their key. On top of that, the
pipeline's own settings in ``env`` must load as the typed config, and the GPU placement of the
training work is checked in both variants.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
HELM = REPO / "docker" / "helm"
FILES = {"celery": HELM / "values-celery.yaml", "kubernetes": HELM / "values-kubernetes.yaml"}

# dotted paths the chart documents; a path ending in ".*" takes anything below it
DOCUMENTED = {
    "executor", "airflowVersion", "defaultAirflowRepository", "defaultAirflowTag",
    "images.airflow.repository", "images.airflow.tag", "images.airflow.pullPolicy",
    "postgresql.enabled", "redis.enabled",
    "data.metadataSecretName", "data.resultBackendSecretName", "data.brokerUrlSecretName",
    "fernetKeySecretName", "config.*", "env", "extraEnvFrom", "extraConfigMaps.*",
    "dagProcessor.enabled", "triggerer.enabled",
    "scheduler.extraVolumes", "scheduler.extraVolumeMounts",
    "workers.celery.enableDefault", "workers.celery.queue", "workers.celery.replicas",
    "workers.celery.resources.*", "workers.celery.nodeSelector.*", "workers.celery.tolerations",
    "workers.celery.sets",
    "workers.kubernetes.resources.*", "workers.kubernetes.nodeSelector.*", "workers.kubernetes.tolerations",
}  # fmt: skip
# keys a worker set may override: those of workers.celery, plus its name
SET_KEYS = {
    "name",
    "queue",
    "replicas",
    "resources",
    "nodeSelector",
    "tolerations",
    "extraVolumes",
    "extraVolumeMounts",
}
SECRETISH = re.compile(r"(?i)password|secret(?!Name|Ref)|token|fernet_key|private")
GPU = "nvidia.com/gpu"


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load(FILES[name].read_text())


def _paths(tree: Any, prefix: str = "") -> list[str]:
    if not isinstance(tree, dict):
        return [prefix]
    out: list[str] = []
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        out += [path] if path in DOCUMENTED else _paths(value, path)
    return out


def _documented(path: str) -> bool:
    return path in DOCUMENTED or any(d.endswith(".*") and path.startswith(d[:-1]) for d in DOCUMENTED)


@pytest.mark.parametrize("name", sorted(FILES))
def test_every_key_is_one_the_chart_documents(name: str) -> None:
    unknown = [p for p in _paths(_load(name)) if not _documented(p)]
    assert unknown == [], f"{FILES[name].name}: keys the chart does not document: {unknown}"


def test_the_key_check_catches_a_typo() -> None:
    assert not _documented("workers.celery.nodeSelectr") and not _documented("exeuctor")
    assert _documented("config.core.load_examples") and _documented("workers.celery.resources.limits.memory")


@pytest.mark.parametrize("name", sorted(FILES))
def test_the_pipeline_env_is_valid_config_and_no_secret_is_inline(name: str, monkeypatch) -> None:
    from pipeline.config import load_config

    values = _load(name)
    env = {e["name"]: e["value"] for e in values["env"]}
    for key, value in env.items():
        assert not SECRETISH.search(key), f"{key} is set inline: put it in the retrain-pipeline secret"
        monkeypatch.setenv(key, value)
    cfg = load_config()  # an unknown or ill-typed RETRAIN_* key raises here
    assert cfg.artifact_root_uri.startswith("s3://") and cfg.state_dir_uri.startswith("s3://")
    assert "secretRef" in values["extraEnvFrom"] and "retrain-pipeline" in values["extraEnvFrom"]
    assert all(k.endswith("SecretName") for k in values.get("data", {})) and values["fernetKeySecretName"]


def _gpu_placement(spec: dict[str, Any]) -> None:
    assert spec["nodeSelector"] == {f"{GPU}.present": "true"}
    assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]


def test_celery_training_set_serves_the_finetune_queue_on_gpu_nodes() -> None:
    from pipeline.config import load_config

    values = _load("celery")
    assert values["executor"] == "CeleryExecutor"
    celery = values["workers"]["celery"]
    assert celery["enableDefault"] is True and celery["queue"] == values["config"]["operators"]["default_queue"]
    sets = {s["name"]: s for s in celery["sets"]}
    for s in sets.values():
        assert set(s) <= SET_KEYS, f"set {s['name']}: {sorted(set(s) - SET_KEYS)}"
    training = sets["training"]
    assert training["queue"] == load_config().finetune.queue  # where dags/retrain.py sends finetune
    assert training["resources"]["limits"][GPU] == 1
    _gpu_placement(training)
    assert "nodeSelector" not in celery and "tolerations" not in celery  # the default set stays off GPUs


def test_kubernetes_finetune_pod_template_is_mounted_and_asks_for_a_gpu() -> None:
    values = _load("kubernetes")
    assert values["executor"] == "KubernetesExecutor"
    env = {e["name"]: e["value"] for e in values["env"]}
    template_path = Path(env["RETRAIN_FINETUNE__POD_TEMPLATE_FILE"])
    mounts = {m["name"]: m["mountPath"] for m in values["scheduler"]["extraVolumeMounts"]}
    volumes = {v["name"]: v["configMap"]["name"] for v in values["scheduler"]["extraVolumes"]}
    (volume,) = [n for n, path in mounts.items() if Path(path) == template_path.parent]
    config_map = values["extraConfigMaps"][volumes[volume]]
    files = yaml.safe_load(config_map["data"])
    pod = yaml.safe_load(files[template_path.name])
    assert pod["kind"] == "Pod"
    _gpu_placement(pod["spec"])
    (base,) = pod["spec"]["containers"]
    assert base["name"] == "base" and base["resources"]["limits"][GPU] == 1
    assert "trainer" in base["image"]  # docker/Dockerfile.trainer (the CUDA wheel by build argument)
    assert any(e.get("secretRef", {}).get("name") == "retrain-pipeline" for e in base["envFrom"])
    assert "nodeSelector" not in values["workers"]["kubernetes"]  # other task pods stay off GPUs


def test_readme_production_section_names_both_values_files() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Production", 1)[1].split("\n## ", 1)[0]
    for path in FILES.values():
        assert str(path.relative_to(REPO)) in section
