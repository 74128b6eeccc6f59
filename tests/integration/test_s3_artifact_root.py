"""artifact_root and state_dir on S3: two "workers" (each its own cache) share only the bucket and
MLflow; and a model's lineage (replay pool, drift reference) survives losing artifact_root.

The S3 server is moto's, on loopback in this process (it speaks the S3 API that MinIO speaks in
docker/), reached through s3fs exactly as a deployment reaches MinIO.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline import paths
from pipeline.cli import app

pytestmark = pytest.mark.slow
runner = CliRunner()
BUCKET = "retrain"


@pytest.fixture
def s3(monkeypatch) -> Iterator[str]:
    import boto3
    import fsspec
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the server's access log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for key, value in {
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": "pipeline",
        "AWS_SECRET_ACCESS_KEY": "pipeline-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    fsspec.filesystem("s3").clear_instance_cache()
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
    yield endpoint
    fsspec.filesystem("s3").clear_instance_cache()
    server.stop()


def _env(cfg, cache: Path) -> dict[str, str]:
    return {
        "RETRAIN_HOME": cfg.home,
        "RETRAIN_ARTIFACT_ROOT": f"s3://{BUCKET}/artifacts",
        "RETRAIN_STATE_DIR": f"s3://{BUCKET}/state",
        paths.CACHE_ENV: str(cache),
        "RETRAIN_FINETUNE__BASE_MODEL": cfg.finetune.base_model,
        "RETRAIN_FINETUNE__EPOCHS": "2",
        "RETRAIN_FINETUNE__BATCH_SIZE": "16",
        "RETRAIN_FINETUNE__LEARNING_RATE": "0.003",
        "RETRAIN_FINETUNE__FREEZE_EMBEDDINGS": "false",
        "RETRAIN_FINETUNE__FREEZE_LAYERS": "0",
        "RETRAIN_FINETUNE__MAX_TRAIN_ROWS": "120",
        "RETRAIN_EVALUATE__BOOTSTRAP_SAMPLES": "200",
        "RETRAIN_EVALUATE__FIRST_MODEL_MIN_MACRO_F1": "0.01",
    }


def _landing(cfg, end: date) -> None:
    from pipeline.data import simulator

    simulator.write_landing(
        cfg.simulator.model_copy(update={"messages_per_day": 10}), cfg.landing_dir_path, start=date(2025, 1, 1), end=end
    )


def _cycle(cfg, run_id: str, default: Path, training: Path) -> dict[str, dict]:
    """The steps of one run, finetune on the 'training worker' (its own cache), the rest on 'default'."""
    out = {}
    for step in ("ingest", "validate", "drift", "finetune", "evaluate", "register"):
        cache = training if step == "finetune" else default
        extra = ["--force-retrain"] if step == "ingest" else []
        res = runner.invoke(app, [step, "--run-id", run_id, *extra], env=_env(cfg, cache))
        assert res.exit_code == 0, f"{step}: {res.output[-3000:]}"
        out[step] = json.loads(res.stdout)
    return out


def _keys(prefix: str) -> list[str]:
    import fsspec

    fs = fsspec.filesystem("s3")
    fs.invalidate_cache()
    return sorted(k.removeprefix(f"{BUCKET}/") for k in fs.find(f"{BUCKET}/{prefix}"))


def test_workers_share_only_the_bucket_and_lineage_survives_losing_it(s3, cfg, tmp_path) -> None:
    from mlflow import MlflowClient

    default, training = tmp_path / "worker-default", tmp_path / "worker-training"
    _landing(cfg, date(2025, 1, 21))
    first = _cycle(cfg, "s1", default, training)

    # everything the steps wrote is in the bucket, each step folder with its marker; nothing local
    run = "artifacts/cli__s1"
    keys = _keys("artifacts")
    for step in ("ingest", "validate", "drift", "finetune", "evaluate", "register"):
        assert f"{run}/{step}/_SUCCESS" in keys, step
    assert f"{run}/ingest/manifest.json" in keys and f"{run}/finetune/model/config.json" in keys
    assert any(k.startswith("artifacts/eval_pool/") for k in keys)
    # committed by the run's last step: the file ledger, the row watermark and the near-duplicate index
    assert _keys("state") == ["state/neardup-cli/cli__s1.parquet", "state/rows-cli/cli__s1.parquet",
                              "state/watermark-cli.json"]  # fmt: skip
    assert not (Path(cfg.home) / "artifacts").exists()
    assert first["ingest"]["train_uri"] == f"s3://{BUCKET}/{run}/ingest/train.parquet"
    # the training worker read the window from the bucket (into its cache), never from the other's
    assert any(p.name == "train.parquet" for p in training.rglob("*.parquet"))
    assert first["register"]["version"] == "1" and first["register"]["promoted"] is True

    # the version's training data and drift reference are copies in its MLflow run
    client = MlflowClient(tracking_uri=cfg.tracking_uri)
    mv = client.get_model_version(cfg.register.model_name, "1")
    assert mv.run_id == first["finetune"]["mlflow_run_id"]
    copied = {a.path for d in ("lineage/train_data", "lineage/reference") for a in client.list_artifacts(mv.run_id, d)}
    assert copied == {
        "lineage/train_data/train_data.parquet",
        "lineage/reference/train.parquet",
        "lineage/reference/val.parquet",
        "lineage/reference/test.parquet",
    }
    inputs = client.get_run(mv.run_id).inputs.dataset_inputs
    assert {i.dataset.name for i in inputs} >= {"train_data/train_data.parquet", "reference/test.parquet"}

    # artifact_root is lost (bucket prefix and both caches): the next cycle still has its reference
    # (drift compares with the champion's window) and its replay pool (the champion's training rows)
    import fsspec

    fsspec.filesystem("s3").rm(f"{BUCKET}/artifacts", recursive=True)
    for cache in (default, training):
        shutil.rmtree(cache, ignore_errors=True)
    _landing(cfg, date(2025, 2, 4))
    second = _cycle(cfg, "s2", default, training)
    assert second["drift"]["drift"]["has_reference"] is True
    assert second["finetune"]["replay_rows"] > 0
    assert second["register"]["version"] == "2"
