"""The serving app on a real MLflow registry: models by alias, probabilities, and an alias move."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient


def test_serves_the_registry_aliases_through_the_registry_pyfunc(make_cfg, tmp_path: Path, intent_dir: Path):
    import mlflow

    from pipeline import tracking
    from pipeline.modeling.pyfunc import log_intent_model
    from pipeline.serving.app import create_app

    cfg = make_cfg(serve={"reload_interval_s": 3600, "challenger_share": 1.0})
    name = cfg.register.model_name
    exp = tracking.configure(cfg)
    c = tracking.client(cfg)
    for _ in range(2):
        with mlflow.start_run(experiment_id=exp):
            info = log_intent_model(intent_dir, tags={"pipeline_run_id": "serve-test"})
        mlflow.register_model(info.model_uri, name)
    c.set_registered_model_alias(name, "champion", "1")
    with TestClient(create_app(cfg, start_threads=False)) as client:
        assert client.get("/ready").json()["champion"] == "1"
        body = client.post("/predict", json={"texts": ["where is my order", "refund me"], "user_id": "x"}).json()
        assert body["variant"] == "champion" and body["model_version"] == "1"
        for p in body["predictions"]:
            assert set(p["probabilities"]) == {"order_status", "refund_request", "account_access"}
            assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
            assert p["confidence"] == pytest.approx(max(p["probabilities"].values()), abs=1e-6)
            assert p["label"] == max(p["probabilities"], key=p["probabilities"].get)
        c.set_registered_model_alias(name, "challenger", "2")
        assert client.app.state.holder.refresh() is True  # type: ignore[attr-defined]
        body = client.post("/predict", json={"text": "where is my order", "user_id": "x"}).json()
        assert (body["variant"], body["model_version"]) == ("challenger", "2")
