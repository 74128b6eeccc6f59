"""End to end through the real DAGs with ``dag.test()``: SQLite Airflow, a temporary MLflow store,
GX, Evidently, and a tiny random BERT. Slow (about a minute), so marked; CI runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path):
    home = tmp_path_factory.mktemp("e2e-home")
    values = {
        "RETRAIN_HOME": str(home),
        "RETRAIN_SIMULATOR__MESSAGES_PER_DAY": "14",
        "RETRAIN_FINETUNE__BASE_MODEL": str(tiny_model_dir),
        "RETRAIN_FINETUNE__EPOCHS": "12",
        "RETRAIN_FINETUNE__BATCH_SIZE": "8",
        "RETRAIN_FINETUNE__EARLY_STOPPING_PATIENCE": "3",
        "RETRAIN_FINETUNE__MAX_LENGTH": "64",
        "RETRAIN_FINETUNE__LEARNING_RATE": "0.003",
        "RETRAIN_FINETUNE__FREEZE_EMBEDDINGS": "false",
        "RETRAIN_FINETUNE__FREEZE_LAYERS": "0",
        "RETRAIN_FINETUNE__MAX_TRAIN_ROWS": "300",
        "RETRAIN_EVALUATE__BOOTSTRAP_SAMPLES": "200",
        "RETRAIN_EVALUATE__FIRST_MODEL_MIN_MACRO_F1": "0.05",
        "RETRAIN_SCHEDULE__TIME_TRIGGERS": "false",
        # one drifted check is enough here: the test has a single monitor window per season
        "RETRAIN_POLICY__PERSIST_K": "1",
        # the tiny model is as poor in summer as in January: its accuracy holds, which would veto the
        # distribution drift this test wants to see turned into an event
        "RETRAIN_POLICY__PERFORMANCE_VETO": "false",
        # the tiny random model's per-segment accuracies are near noise: at the four-fifths floor the
        # promotion below turned on float details that differ between CPUs (0.655 against 0.8 on one
        # machine, a pass on another); the guardrail keeps a floor here and is pinned in tests/gate
        "RETRAIN_EVALUATE__MIN_DISPARATE_IMPACT": "0.5",
    }
    return home, values


@pytest.fixture(scope="module")
def dags(env):
    home, values = env
    mp = pytest.MonkeyPatch()
    for k, v in values.items():
        mp.setenv(k, v)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=os.environ)
    from airflow.dag_processing.dagbag import DagBag

    from pipeline.config import load_config
    from pipeline.data import simulator

    cfg = load_config()
    simulator.write_landing(cfg.simulator, cfg.landing_dir_path, start=date(2025, 1, 1), end=date(2025, 7, 14))
    bag = DagBag(str(REPO / "dags"))
    assert not bag.import_errors
    yield cfg, bag.dags
    mp.undo()


@pytest.fixture(autouse=True)
def _keep_env(env, monkeypatch):
    """conftest strips RETRAIN_* before each test; put this module's settings back."""
    for k, v in env[1].items():
        monkeypatch.setenv(k, v)


def _client(cfg):
    from pipeline import tracking

    return tracking.client(cfg)


def _marker(cfg, dag_id: str, run_id: str, step: str) -> dict | None:
    from pipeline import paths

    p = Path(paths.step_dir(cfg.artifact_root_uri, paths.pipeline_run_id(dag_id, run_id), step)) / "_SUCCESS"
    return json.loads(p.read_text()) if p.is_file() else None


def _asset_events(name: str) -> list:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as s:
        q = select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id).where(AssetModel.name == name)
        return [(e.extra or {}) for e in s.scalars(q.order_by(AssetEvent.id)).all()]


def _artifacts(client, run_id: str, path: str = "") -> set[str]:
    out = set()
    for f in client.list_artifacts(run_id, path):
        out.add(f.path)
        if f.is_dir:
            out |= _artifacts(client, run_id, f.path)
    return out


def test_first_retrain_registers_and_promotes_a_champion(dags) -> None:
    cfg, d = dags
    run = d["retrain"].test(run_conf={"force_retrain": True, "window_end": "2025-01-29"})
    assert run.state == "success"
    name = cfg.register.model_name
    c = _client(cfg)
    champ = c.get_model_version_by_alias(name, "champion")
    assert str(champ.version) == "1"
    assert champ.tags["pipeline_run_id"].startswith("retrain__")
    assert champ.tags["train_data_uri"].endswith("train_data.parquet")
    assert champ.tags["window_end"] == "2025-01-29"

    steps = {
        r.data.tags.get("step"): r
        for r in c.search_runs(
            [c.get_experiment_by_name(cfg.tracking.experiment_name).experiment_id],
            filter_string=f"tags.pipeline_run_id = '{champ.tags['pipeline_run_id']}'",
        )
    }
    assert {"ingest", "validate", "drift", "finetune", "evaluate"} <= set(steps)
    assert any("data_docs" in a for a in _artifacts(c, steps["validate"].info.run_id))
    # lineage: version -> its window's manifest (an artifact of the ingest run) -> rows and landing files
    ingest_run = steps["ingest"]
    assert champ.tags["manifest_sha256"] == ingest_run.data.tags["manifest_sha256"]
    assert champ.tags["ingest_run_id"] == ingest_run.info.run_id
    assert "ingest/manifest.json" in _artifacts(c, ingest_run.info.run_id)
    assert ingest_run.data.metrics["rows_read"] > 0
    contexts = {
        t.value for d in c.get_run(steps["finetune"].info.run_id).inputs.dataset_inputs for t in d.tags
        if t.key == "mlflow.data.context"
    }  # fmt: skip
    assert {"training", "window_train", "validation", "evaluation"} <= contexts
    assert any(a.endswith("decision.json") for a in _artifacts(c, steps["evaluate"].info.run_id))
    assert "val_macro_f1" in steps["finetune"].data.metrics

    import mlflow.pyfunc
    import pandas as pd

    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    pred = model.predict(pd.DataFrame({"text": ["where is my order?", "I want a refund"]}))
    assert len(pred) == 2 and set(pred["label"]) <= set(cfg.validate_cfg.labels)


def test_monitor_on_a_later_season_emits_a_drift_event(dags) -> None:
    cfg, d = dags
    run = d["monitor"].test(run_conf={"window_end": "2025-07-14"})
    assert run.state == "success"
    drift = _marker(cfg, "monitor", run.run_id, "drift")
    assert drift["has_reference"] and drift["drift_detected"]
    tis = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert tis["emit_drift"] == "success"
    assert any(e.get("window_end") == "2025-07-14" for e in _asset_events("support_intent_drift"))


def test_retrain_on_drifted_data_produces_a_challenger_and_decision(dags) -> None:
    cfg, d = dags
    run = d["retrain"].test(run_conf={"window_end": "2025-07-14", "trigger": "drift"})
    assert run.state == "success"
    ev = _marker(cfg, "retrain", run.run_id, "evaluate")
    assert ev is not None and not ev["is_first_model"] and ev["champion_version"] == "1"
    decision = json.loads(Path(ev["decision_uri"]).read_text())
    assert decision["promote"] == ev["promote"]
    assert "primary" in {c["name"] for c in decision["checks"]} and decision["rows"]["window"] > 0
    assert decision["methods"]["primary"] == "paired_permutation_one_sided" and decision["thresholds"]["alpha"] == 0.05
    assert Path(ev["decision_uri"]).with_name("decision.md").read_text().startswith(f"**{ev['outcome']}**")
    c = _client(cfg)
    name = cfg.register.model_name
    champion = str(c.get_model_version_by_alias(name, "champion").version)
    # fixed seeds: the summer challenger is better than January's model (validation macro-F1 0.47 vs
    # 0.38 at 12 epochs; at 8 the tiny random model is still underfit and the outcome turned on which
    # near-duplicates a hash function dropped), so the outcome is pinned
    assert ev["promote"] is True and ev["reasons"] == [], ev["reasons"]
    assert champion == "2"
    assert str(c.get_model_version_by_alias(name, "previous").version) == "1"
    assert "challenger" not in c.get_registered_model(name).aliases  # promoted: nothing stands
    tis = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert tis["commit"] == "success" and tis["announce_champion"] == "success"
    events = _asset_events("support_intent_champion")
    assert (events[-1]["version"], events[-1]["previous_version"], events[-1]["outcome"]) == ("2", "1", "promote")


def test_bad_landing_file_fails_the_run_and_changes_nothing(dags, monkeypatch) -> None:
    monkeypatch.setenv("RETRAIN_VALIDATE__NEW_LABELS", "fail")  # an unknown label fails the window
    cfg, d = dags
    c = _client(cfg)
    name = cfg.register.model_name
    before = {v.version for v in c.search_model_versions(f"name = '{name}'")}
    champ_before = c.get_model_version_by_alias(name, "champion").version
    bad = cfg.landing_dir_path / "support_2025-08-01.csv"
    rows = ["text,label,timestamp,segment"] + [
        f"order {i} never arrived and i want my money,refnd,2025-08-01T10:{i:02d}:00Z,web" for i in range(40)
    ]
    bad.write_text("\n".join(rows) + "\n")
    run = d["retrain"].test(run_conf={"window_end": "2025-08-01", "force_retrain": True})
    assert run.state == "failed"
    tis = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert tis["validate"] == "failed" and tis["finetune"] != "success"
    assert tis["commit"] == "upstream_failed"  # the window's file is not consumed
    assert {v.version for v in c.search_model_versions(f"name = '{name}'")} == before
    assert c.get_model_version_by_alias(name, "champion").version == champ_before
    assert _marker(cfg, "retrain", run.run_id, "validate") is None

    # the user fixes the file; a new run reads the same window again, trains and consumes it
    fixed = ["text,label,timestamp,segment"] + [
        f"order {i} never arrived and i want my money,{'refund_request' if i % 2 else 'order_status'},"
        f"2025-08-01T10:{i:02d}:00Z,web"
        for i in range(40)
    ]
    bad.write_text("\n".join(fixed) + "\n")
    again = d["retrain"].test(run_conf={"window_end": "2025-08-01", "force_retrain": True})
    assert again.state == "success"
    assert _marker(cfg, "retrain", again.run_id, "ingest")["files"] == ["support_2025-08-01.csv"]
    assert {ti.task_id: ti.state for ti in again.get_task_instances()}["commit"] == "success"


def test_ab_test_promotes_a_challenger_that_wins_online(dags) -> None:
    """The serving log says the challenger is right far more often: the ab_test DAG promotes it,
    keeps the old champion as previous, and announces the new champion on the asset."""
    from datetime import UTC, datetime, timedelta

    from pipeline.serving.log import PredictionLog

    cfg, d = dags
    c = _client(cfg)
    name = cfg.register.model_name
    champion = str(c.get_model_version_by_alias(name, "champion").version)
    challenger = "1" if champion != "1" else "2"
    c.set_registered_model_alias(name, "challenger", challenger)
    plog = PredictionLog(cfg.serving_log_url, buffer_max=10**6, flush_interval_s=1)
    t0 = datetime.now(UTC) - timedelta(hours=6)
    for i in range(400):
        for variant, version in (("champion", champion), ("challenger", challenger)):
            plog.record([{"request_id": f"{variant}-{i}", "ts": t0 + timedelta(seconds=30 * i), "user_key": "u" * 32,
                          "variant": variant, "model_version": version, "label": "order_status", "confidence": 0.7,
                          "latency_ms": 2.0, "text": "where is my order"}])  # fmt: skip
    plog.flush()
    for i in range(400):
        plog.feedback(f"champion-{i}", label=None, correct=i % 10 < 6)  # 60% right
        plog.feedback(f"challenger-{i}", label=None, correct=i % 10 < 9)  # 90% right
    run = d["ab_test"].test()
    assert run.state == "success"
    assert str(c.get_model_version_by_alias(name, "champion").version) == challenger
    assert str(c.get_model_version_by_alias(name, "previous").version) == champion
    assert "challenger" not in c.get_registered_model(name).aliases
    events = _asset_events("support_intent_champion")
    assert (events[-1]["version"], events[-1]["previous_version"]) == (challenger, champion)

    # the guard: the new champion does far worse than previous on live traffic: ab_test rolls it back
    from pipeline.ab import guard

    g = guard.active(cfg)
    assert g is not None and (g.champion, g.previous) == (challenger, champion)
    for i in range(300):
        for variant, version in (("champion", challenger), ("previous", champion)):
            plog.record([{"request_id": f"guard-{variant}-{i}", "ts": g.since + timedelta(seconds=1 + i),
                          "user_key": "u" * 32, "variant": variant, "model_version": version,
                          "label": "order_status", "confidence": 0.7, "latency_ms": 2.0, "text": "where is it"}])  # fmt: skip
    plog.flush()
    for i in range(300):
        plog.feedback(f"guard-champion-{i}", label=None, correct=i % 10 < 5)  # 50% right
        plog.feedback(f"guard-previous-{i}", label=None, correct=i % 10 < 9)  # 90% right
    run = d["ab_test"].test()
    assert run.state == "success"
    assert str(c.get_model_version_by_alias(name, "champion").version) == champion
    events = _asset_events("support_intent_champion")
    assert (events[-1]["version"], events[-1]["previous_version"]) == (champion, challenger)


def test_no_pii_anywhere_under_home_after_the_runs(dags) -> None:
    """After ingest, training, evaluation, registry, serving and A/B runs: no value a user typed as
    PII is in any file under home (curated data, MLflow store and artifacts, Airflow logs and DB)."""
    from pii_scan import leaks, planted

    cfg, _ = dags
    values = planted(cfg.landing_dir_path)
    assert len(values) > 100
    assert leaks(cfg.home_path, values, skip=[cfg.landing_dir_path]) == []
