from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from gate_fixtures import (  # noqa: F401 (gate_cfg, template_db: fixtures)
    CLASSES,
    gate_cfg,
    log_model,
    mapping_with_errors,
    template_db,
    write_test_split,
)
from mlflow.tracking import MlflowClient

from pipeline import registry, tracking
from pipeline.errors import RegistryError
from pipeline.results import ChampionInfo, EvaluateResult, RegisterResult
from pipeline.steps import evaluate, register
from pipeline.storage import MARKER

NAME = "test-intent-classifier"


def _evaluation(promote: bool, champion_version: str | None = None, **kw) -> EvaluateResult:
    fields = {
        "promote": promote,
        "is_first_model": champion_version is None,
        "reasons": () if promote else ("McNemar: p=0.61 >= alpha 0.05",),
        "decision_uri": "/artifacts/run/evaluate/decision.json",
        "challenger_accuracy": 0.95,
        "challenger_macro_f1": 0.94,
        "champion_accuracy": None if champion_version is None else 0.75,
        "champion_macro_f1": None if champion_version is None else 0.74,
        "champion_version": champion_version,
        "p_value": None if champion_version is None else 1e-6,
        "macro_f1_diff": None if champion_version is None else 0.2,
        "ci_low": None if champion_version is None else 0.12,
        "ci_high": None if champion_version is None else 0.28,
        "test_rows": 180,
        "mlflow_run_id": "abc123",
    }
    fields["outcome"] = "promote" if promote else "reject"
    fields["primary_variance"] = None if champion_version is None else 0.0016
    return EvaluateResult(**{**fields, **kw})


def _register(cfg, tmp_path: Path, run_id: str, evaluation: EvaluateResult, model_uri: str, **kw) -> RegisterResult:
    return register.run(
        cfg,
        model_uri=model_uri,
        evaluation=evaluation,
        pipeline_run_id=run_id,
        out_dir=str(tmp_path / "out" / run_id / "register"),
        **kw,
    )


def _client(cfg) -> MlflowClient:
    return MlflowClient(tracking_uri=cfg.tracking_uri, registry_uri=cfg.registry_uri)


def _aliases(cfg) -> dict[str, str]:
    return {k: str(v) for k, v in _client(cfg).get_registered_model(NAME).aliases.items()}


def _versions(cfg) -> list[str]:
    return sorted(str(v.version) for v in _client(cfg).search_model_versions(f"name = '{NAME}'"))


@pytest.fixture
def cfg(gate_cfg):
    return gate_cfg()


@pytest.fixture
def model_uri(cfg) -> str:
    return log_model(cfg, mapping_with_errors({}))


def test_get_champion_when_model_or_alias_is_missing(cfg, tmp_path: Path, model_uri: str) -> None:
    assert registry.get_champion(cfg) == ChampionInfo(NAME, None, None, None)
    assert not registry.get_champion(cfg).exists
    _register(cfg, tmp_path, "run1", _evaluation(False), model_uri)  # registered, but no champion alias
    assert registry.get_champion(cfg).version is None


def test_first_model_promoted_and_loadable_by_alias(cfg, tmp_path: Path, model_uri: str) -> None:
    res = _register(cfg, tmp_path, "run1", _evaluation(True), model_uri, train_data_uri="/data/run1/train.parquet")
    assert res == RegisterResult(
        model_name=NAME,
        version="1",
        promoted=True,
        reused=False,
        champion_version="1",
        previous_version=None,
        model_version_uri=f"models:/{NAME}/1",
        registration_uri=str(tmp_path / "out" / "run1" / "register" / "registration.json"),
        outcome="promoted",
    )
    assert _aliases(cfg) == {"champion": "1"}  # nothing stands once promoted
    champion = registry.get_champion(cfg)
    assert (champion.version, champion.model_uri) == ("1", f"models:/{NAME}/1")
    assert champion.train_data_uri == "/data/run1/train.parquet"

    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    out = model.predict(pd.DataFrame({"text": [f"{CLASSES[1]} message 3"]}))
    assert out["label"].tolist() == [CLASSES[1]]

    written = json.loads(Path(res.registration_uri).read_text())
    assert written["version"] == "1" and written["aliases"] == {"champion": "1"}
    assert (Path(res.registration_uri).parent / MARKER).is_file()


def test_a_rejected_first_model_moves_no_alias(cfg, tmp_path: Path, model_uri: str) -> None:
    res = _register(cfg, tmp_path, "run1", _evaluation(False), model_uri)
    assert (res.version, res.promoted, res.champion_version, res.previous_version) == ("1", False, None, None)
    assert _aliases(cfg) == {} and res.outcome == "rejected"
    assert "McNemar: p=0.61" in _client(cfg).get_model_version(NAME, "1").description


def test_insufficient_evidence_stands_as_challenger_and_its_look_is_recorded(
    cfg, tmp_path: Path, model_uri: str
) -> None:
    from pipeline import promotion, registry_history

    _register(cfg, tmp_path, "run1", _evaluation(True), model_uri)
    unclear = _evaluation(False, champion_version="1", outcome="insufficient_evidence", macro_f1_diff=0.01)
    res = _register(cfg, tmp_path, "run2", unclear, model_uri, tags={"window_end": "2025-06-01"})
    assert res.outcome == "standing" and _aliases(cfg) == {"champion": "1", "challenger": "2"}
    looks = registry_history.evidence(cfg.registry_history_url, NAME, "2", "1")
    assert [(x.estimate, x.variance, x.window_end, x.outcome) for x in looks] == [
        (0.01, 0.0016, "2025-06-01", "insufficient_evidence")
    ]
    assert promotion.standing(cfg, "1").version == "2"
    # a later unclear challenger does not displace the standing one
    res3 = _register(cfg, tmp_path, "run3", unclear, model_uri)
    assert "keeps standing" in res3.outcome and _aliases(cfg)["challenger"] == "2"


def test_better_challenger_promoted_and_old_champion_becomes_previous(cfg, tmp_path: Path, model_uri: str) -> None:
    _register(cfg, tmp_path, "run1", _evaluation(True), model_uri)
    res = _register(cfg, tmp_path, "run2", _evaluation(True, champion_version="1"), model_uri)
    assert (res.version, res.promoted, res.champion_version, res.previous_version) == ("2", True, "2", "1")
    assert _aliases(cfg) == {"champion": "2", "previous": "1"}


def test_rejected_challenger_leaves_champion_and_previous_untouched(cfg, tmp_path: Path, model_uri: str) -> None:
    _register(cfg, tmp_path, "run1", _evaluation(True), model_uri)
    _register(cfg, tmp_path, "run2", _evaluation(True, champion_version="1"), model_uri)
    res = _register(cfg, tmp_path, "run3", _evaluation(False, champion_version="2"), model_uri)
    assert (res.version, res.promoted, res.champion_version, res.previous_version) == ("3", False, "2", "1")
    assert _aliases(cfg) == {"champion": "2", "previous": "1"}
    tags = _client(cfg).get_model_version(NAME, "3").tags
    assert tags["outcome"] == "reject" and tags["evaluated_against_version"] == "2"


def test_retry_reuses_the_version_and_does_not_move_previous_twice(cfg, tmp_path: Path, model_uri: str) -> None:
    _register(cfg, tmp_path, "run1", _evaluation(True), model_uri)
    first = _register(cfg, tmp_path, "run2", _evaluation(True, champion_version="1"), model_uri)
    # the task died after the registry calls but before its marker: the retry starts from scratch
    shutil.rmtree(tmp_path / "out" / "run2")
    retry = _register(cfg, tmp_path, "run2", _evaluation(True, champion_version="1"), model_uri)
    assert retry.reused and not first.reused
    assert (retry.version, retry.champion_version, retry.previous_version) == ("2", "2", "1")
    assert _versions(cfg) == ["1", "2"]
    assert _aliases(cfg) == {"champion": "2", "previous": "1"}
    from pipeline import registry_history

    moves = registry_history.moves(cfg.registry_history_url, NAME)
    assert [(m.alias, m.from_version, m.to_version) for m in moves] == [
        ("champion", None, "1"),
        ("previous", None, "1"),
        ("champion", "1", "2"),
    ]  # the retry recorded nothing twice
    assert moves[-1].actor == "pipeline" and moves[-1].numbers["p_value"] == 1e-6


def test_retry_after_a_crash_between_the_alias_moves(
    cfg, tmp_path: Path, model_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register(cfg, tmp_path, "run1", _evaluation(True), model_uri)
    real = MlflowClient.set_registered_model_alias

    def crash_on_champion(self, name, alias, version):
        if alias == registry.CHAMPION:
            raise RuntimeError("worker lost")
        return real(self, name, alias, version)

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", crash_on_champion)
    with pytest.raises(RuntimeError, match="worker lost"):
        _register(cfg, tmp_path, "run2", _evaluation(True, champion_version="1"), model_uri)
    assert _aliases(cfg) == {"champion": "1", "previous": "1"}  # the old champion still serves
    assert not (tmp_path / "out" / "run2" / "register").exists()

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", real)
    res = _register(cfg, tmp_path, "run2", _evaluation(True, champion_version="1"), model_uri)
    assert (res.version, res.reused, res.champion_version, res.previous_version) == ("2", True, "2", "1")
    assert _versions(cfg) == ["1", "2"]


def test_rerun_with_marker_returns_the_recorded_result(cfg, tmp_path: Path, model_uri: str) -> None:
    first = _register(cfg, tmp_path, "run1", _evaluation(True), model_uri)
    again = _register(cfg, tmp_path, "run1", _evaluation(True), "models:/does-not-matter")
    assert again == first
    assert _versions(cfg) == ["1"]


def test_promotion_over_a_champion_that_moved_since_evaluation_is_refused(cfg, tmp_path: Path, model_uri: str) -> None:
    _register(cfg, tmp_path, "run1", _evaluation(True), model_uri)
    # run2 was gated as a first model, but run1 promoted a champion in the meantime
    with pytest.raises(RegistryError, match="champion is version 1, but the decision compared against no champion"):
        _register(cfg, tmp_path, "run2", _evaluation(True), model_uri)
    assert _aliases(cfg) == {"champion": "1"}


def test_version_tags(cfg, tmp_path: Path, model_uri: str) -> None:
    extra = {
        "window_start": "2025-03-01",
        "window_end": "2025-06-01",
        "text_drift_score": "0.71",
        "trigger": "drift",
        "pipeline_run_id": "spoofed",
    }
    _register(cfg, tmp_path, "run1", _evaluation(True), model_uri, tags=extra, train_data_uri="/data/train.parquet")
    tags = _client(cfg).get_model_version(NAME, "1").tags
    assert tags[tracking.TAG_RUN] == "run1"  # the idempotency key cannot be overridden by the caller
    assert tags[tracking.TAG_SHA] == tracking.git_sha()
    assert tags["train_data_uri"] == "/data/train.parquet"
    assert tags["decision_uri"] == "/artifacts/run/evaluate/decision.json"
    assert tags["outcome"] == "promote" and float(tags["challenger_accuracy"]) == 0.95
    assert {k: tags[k] for k in ("window_end", "trigger")} == {k: extra[k] for k in ("window_end", "trigger")}
    assert "text_drift_score" not in tags and "p_value" not in tags  # in registration.json and the decision record
    assert len(tags) <= 10 and json.loads(tags["alias_log"]) == ["champion: - -> 1 by pipeline"]
    res = json.loads((tmp_path / "out" / "run1" / "register" / "registration.json").read_text())
    assert res["caller_tags"]["text_drift_score"] == "0.71"


def test_find_version_by_run(cfg, tmp_path: Path, model_uri: str) -> None:
    assert registry.find_version_by_run(cfg, "run1") is None
    _register(cfg, tmp_path, "run1", _evaluation(False), model_uri)
    _register(cfg, tmp_path, "run2", _evaluation(False), model_uri)
    assert str(registry.find_version_by_run(cfg, "run2").version) == "2"
    assert registry.find_version_by_run(cfg, "run3") is None


def test_evaluate_then_register_end_to_end(cfg, tmp_path: Path) -> None:
    """First model over the floor becomes champion; a worse challenger then changes nothing but `challenger`."""
    test_uri = write_test_split(tmp_path / "data" / "test.parquet")
    good = log_model(cfg, mapping_with_errors({c: range(3) for c in CLASSES}))
    worse = log_model(cfg, mapping_with_errors({c: range(20) for c in CLASSES}))

    def cycle(run_id: str, challenger_uri: str) -> tuple[EvaluateResult, RegisterResult]:
        champion = registry.get_champion(cfg)
        ev = evaluate.run(
            cfg,
            test_uri=test_uri,
            challenger_uri=challenger_uri,
            champion_uri=champion.model_uri,
            champion_version=champion.version,
            out_dir=str(tmp_path / "out" / run_id / "evaluate"),
            pipeline_run_id=run_id,
        )
        reg = _register(cfg, tmp_path, run_id, ev, challenger_uri, tags={"trigger": "manual"})
        return ev, reg

    ev1, reg1 = cycle("run1", good)
    assert ev1.is_first_model and ev1.promote and reg1.promoted and reg1.champion_version == "1"
    ev2, reg2 = cycle("run2", worse)
    assert ev2.outcome == "reject" and ev2.champion_version == "1" and ev2.reasons
    assert (reg2.version, reg2.promoted, reg2.champion_version, reg2.previous_version) == ("2", False, "1", None)
    assert _aliases(cfg) == {"champion": "1"}
    assert _client(cfg).get_model_version(NAME, "2").tags["decision_uri"] == ev2.decision_uri
    loaded = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    assert loaded.predict(pd.DataFrame({"text": [f"{CLASSES[0]} message 10"]}))["label"].tolist() == [CLASSES[0]]
