"""The whole loop with MLflow's tracking and registry store on a real PostgreSQL server.

Needs PostgreSQL on 127.0.0.1:5432 with trust auth: skipped with a reason when it is not reachable,
required (fails) when ``CI=true``. Each run creates and drops its own database, so runs never see
each other's models.
"""

from __future__ import annotations

import os
from datetime import date

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.service("postgresql")]

PG = os.environ.get("RETRAIN_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


def test_loop_registers_and_promotes_on_postgres(make_cfg, pg_db, tmp_path) -> None:
    from pipeline import flow, tracking
    from pipeline.data import simulator

    cfg = make_cfg(
        tracking={"tracking_uri": pg_db, "artifact_location": (tmp_path / "mlartifacts").as_uri()},
        simulator={"messages_per_day": 12},
        finetune={
            "epochs": 6,
            "batch_size": 8,
            "max_length": 64,
            "learning_rate": 3e-3,
            "max_train_rows": 200,
            "early_stopping_patience": 3,
        },
        evaluate={"first_model_min_macro_f1": 0.05},
    )
    simulator.write_landing(cfg.simulator, cfg.landing_dir_path, start=date(2025, 1, 1), end=date(2025, 1, 28))
    plan = flow.Plan(
        pipeline_run_id="it__pg1",
        consumer="it",
        window_start=None,
        window_end="2025-01-28",
        trigger="cli",
        force_retrain=True,
    )
    out = flow.run_cycle(cfg, plan)
    assert out["register"]["promoted"] is True

    c = tracking.client(cfg)
    assert c.tracking_uri.startswith("postgresql+psycopg2://")
    mv = c.get_model_version_by_alias(cfg.register.model_name, "champion")
    assert mv.tags["pipeline_run_id"] == "it__pg1"
    champ = flow.champion(cfg)
    assert champ.version == str(mv.version) and champ.train_data_uri
    # a retry of register on the same run reuses the version
    from pipeline.results import DriftResult, EvaluateResult, FinetuneResult

    again = flow.register(
        cfg,
        plan,
        DriftResult.from_dict(out["drift"]),
        FinetuneResult.from_dict(out["finetune"]),
        EvaluateResult.from_dict(out["evaluate"]),
    )
    assert again.version == out["register"]["version"]
    assert len(c.search_model_versions(f"name = '{cfg.register.model_name}'")) == 1


def test_drift_history_on_postgres_is_idempotent_and_ordered(pg_db) -> None:
    from pipeline.monitoring import history

    row = history.Row(model_name="m", pipeline_run_id="monitor__a", kind="check", window_end="2025-03-08",
                      retrain=True, rule="distribution_drift", signals_on=("text",), signals={"tests": {}},
                      reasons=[{"signal": "text", "fired": True}], current_uris=("/x/a.parquet",))  # fmt: skip
    assert history.record(pg_db, row) is True
    assert history.record(pg_db, row) is False  # a retried task writes nothing twice
    history.record(pg_db, history.Row(model_name="m", pipeline_run_id="retrain__b", kind="retrain",
                                      window_end="2025-03-01", reference_after=("/x/r.parquet",), promoted=False))  # fmt: skip
    rows = history.rows(pg_db, "m")
    assert [r.kind for r in rows] == ["retrain", "check"]
    assert rows[1].signals_on == ("text",) and rows[1].reasons == [{"signal": "text", "fired": True}]
    assert rows[1].past().kind == "check" and rows[0].reference_after == ("/x/r.parquet",)


def test_alias_history_and_gate_evidence_on_postgres(pg_db) -> None:
    from pipeline import registry_history as rh

    move = rh.Move("m", "champion", "1", "2", "pipeline", "gate: promote", "run-a", {"p_value": 0.001})
    assert rh.record_move(pg_db, move) and not rh.record_move(pg_db, move)  # a retry writes nothing
    assert rh.record_move(pg_db, rh.Move("m", "challenger", "2", None, "pipeline", "promoted", "run-a"))
    got = rh.moves(pg_db, "m")
    assert [(m.alias, m.from_version, m.to_version) for m in got] == [("champion", "1", "2"), ("challenger", "2", None)]
    assert got[0].numbers == {"p_value": 0.001} and got[0].moved_at is not None
    look = rh.Evidence("m", "3", "2", "run-b", "2025-06-01", 0.02, 0.0004, 250, "insufficient_evidence")
    assert rh.record_evidence(pg_db, look) and not rh.record_evidence(pg_db, look)
    assert rh.evidence(pg_db, "m", "3", "2") == [look] and rh.evidence(pg_db, "m", "3", "1") == []


def test_serving_logs_and_feedback_on_postgres(make_cfg, pg_db) -> None:
    """The prediction and feedback logs on PostgreSQL: each row once, duplicates refused, counts per arm."""
    from fastapi.testclient import TestClient

    from pipeline.serving.app import create_app
    from pipeline.serving.log import counts, wait_flushed

    class Model:
        labels = ("order_status", "refund_request")

        def predict(self, df):
            import pandas as pd

            return pd.DataFrame({"label": ["order_status"] * len(df), "confidence": [0.8] * len(df)})

    class Source:
        def aliases(self):
            return {"champion": "1", "challenger": "2"}

        def load(self, version):
            return Model()

    cfg = make_cfg(serve={"log_url": pg_db, "challenger_share": 0.5, "reload_interval_s": 3600})
    with TestClient(create_app(cfg, source=Source(), start_threads=False)) as client:
        ids = [
            client.post("/predict", json={"text": "where is my order", "user_id": f"u{i}"}).json() for i in range(20)
        ]
        assert wait_flushed(client.app.state.log)
        for i, body in enumerate(ids):
            r = client.post("/feedback", json={"request_id": body["request_id"], "correct": i % 4 != 0})
            assert r.status_code == 200, r.text
        assert client.post("/feedback", json={"request_id": ids[0]["request_id"], "correct": True}).status_code == 409
    arms = counts(pg_db)
    assert sum(a.n for a in arms) == 20 and sum(a.successes for a in arms) == 15
    assert {a.variant for a in arms} == {"champion", "challenger"}
