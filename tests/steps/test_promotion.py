"""Standing challengers, approval and rollback: the champion moves only through the rule or a person,
and every move is in the alias history."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gate_fixtures import (  # noqa: F401 (gate_cfg, template_db: fixtures)
    CLASSES,
    ROWS_PER_CLASS,
    gate_cfg,
    log_model,
    mapping_with_errors,
    template_db,
    write_test_split,
)
from mlflow.tracking import MlflowClient
from test_register import NAME, _aliases, _evaluation, _register
from typer.testing import CliRunner

from pipeline import promotion, registry_history
from pipeline.errors import PipelineError
from pipeline.results import ChampionInfo, IngestResult

WORSE = {c: range(15) for c in CLASSES}
BETTER = {c: range(3) for c in CLASSES}


def _ingest(tmp_path: Path, name: str) -> IngestResult:
    test_uri = write_test_split(tmp_path / name / "test.parquet")
    n = len(CLASSES) * ROWS_PER_CLASS
    return IngestResult(
        pipeline_run_id=name, consumer="retrain", window_start=None, window_end="2025-06-01", train_uri="",
        val_uri="", test_uri=test_uri, manifest_uri="", quarantine_uri=None, files=(), rows_read=n, rows_kept=n,
        rows_quarantined=0, split_sizes={"train": 0, "val": 0, "test": n},
    )  # fmt: skip


def _champ(cfg) -> ChampionInfo:
    from pipeline import registry

    return registry.get_champion(cfg)


def test_a_standing_challenger_is_promoted_when_a_new_window_adds_enough_evidence(gate_cfg, tmp_path: Path) -> None:
    cfg = gate_cfg()
    _register(cfg, tmp_path, "run1", _evaluation(True), log_model(cfg, mapping_with_errors(WORSE)))
    unclear = _evaluation(False, champion_version="1", outcome="insufficient_evidence", macro_f1_diff=0.02)
    _register(cfg, tmp_path, "run2", unclear, log_model(cfg, mapping_with_errors(BETTER)))
    assert _aliases(cfg) == {"champion": "1", "challenger": "2"}
    res = promotion.reassess(cfg, "run3", _ingest(tmp_path, "w3"), _champ(cfg), "2025-06-01")
    assert res is not None and res["result"] == "promoted" and res["evaluate"]["look"] == 2
    assert _aliases(cfg) == {"champion": "2", "previous": "1"}
    looks = registry_history.evidence(cfg.registry_history_url, NAME, "2", "1")
    assert [x.pipeline_run_id for x in looks] == ["run2", "run3"] and looks[1].outcome == "promote"
    assert promotion.reassess(cfg, "run4", _ingest(tmp_path, "w4"), _champ(cfg), "2025-07-01") is None  # none stands


@pytest.mark.parametrize(("rows", "splits"), [("window", 3), ("test", 1)])
def test_a_standing_challenger_is_reassessed_on_every_split_of_the_new_window(
    gate_cfg, tmp_path: Path, rows: str, splits: int
) -> None:
    cfg = gate_cfg(evaluate={"reassess_rows": rows})
    _register(cfg, tmp_path, "run1", _evaluation(True), log_model(cfg, mapping_with_errors(WORSE)))
    unclear = _evaluation(False, champion_version="1", outcome="insufficient_evidence", macro_f1_diff=0.02)
    _register(cfg, tmp_path, "run2", unclear, log_model(cfg, mapping_with_errors(BETTER)))
    n = len(CLASSES) * ROWS_PER_CLASS
    ing = IngestResult(
        pipeline_run_id="w3", consumer="retrain", window_start=None, window_end="2025-06-01",
        train_uri=write_test_split(tmp_path / "w3" / "train.parquet"),
        val_uri=write_test_split(tmp_path / "w3" / "val.parquet"),
        test_uri=write_test_split(tmp_path / "w3" / "test.parquet"), manifest_uri="", quarantine_uri=None,
        files=(), rows_read=3 * n, rows_kept=3 * n, rows_quarantined=0, split_sizes={"train": n, "val": n, "test": n},
    )  # fmt: skip
    res = promotion.reassess(cfg, "run3", ing, _champ(cfg), "2025-06-01")
    assert res is not None and res["evaluate"]["test_rows"] == splits * n  # neither model trained on the window


def test_a_standing_challenger_without_a_gain_is_rejected_after_max_looks(gate_cfg, tmp_path: Path) -> None:
    cfg = gate_cfg(evaluate={"max_looks": 2})
    same = mapping_with_errors(WORSE)
    _register(cfg, tmp_path, "run1", _evaluation(True), log_model(cfg, same))
    unclear = _evaluation(False, champion_version="1", outcome="insufficient_evidence", macro_f1_diff=0.0)
    _register(cfg, tmp_path, "run2", unclear, log_model(cfg, same))
    res = promotion.reassess(cfg, "run3", _ingest(tmp_path, "w3"), _champ(cfg), "2025-06-01")
    assert res["result"] == "rejected" and _aliases(cfg) == {"champion": "1"}
    last = registry_history.moves(cfg.registry_history_url, NAME, "challenger")[-1]
    assert (last.from_version, last.to_version) == ("2", None) and "REJECT" in last.reason


@pytest.mark.parametrize("replaces", [True, False])
def test_a_newer_challenger_takes_the_standing_ones_place_only_when_the_rule_lets_it(
    gate_cfg, tmp_path: Path, replaces: bool
) -> None:
    cfg = gate_cfg()
    _register(cfg, tmp_path, "run1", _evaluation(True), log_model(cfg, mapping_with_errors(WORSE)))
    unclear = _evaluation(False, champion_version="1", outcome="insufficient_evidence", macro_f1_diff=0.02)
    _register(cfg, tmp_path, "run2", unclear, log_model(cfg, mapping_with_errors(BETTER)))
    newer = _evaluation(False, champion_version="1", outcome="insufficient_evidence", macro_f1_diff=0.03,
                        rival_version="2", replaces_standing=replaces)  # fmt: skip
    reg = _register(cfg, tmp_path, "run3", newer, log_model(cfg, mapping_with_errors(BETTER)))
    assert _aliases(cfg) == {"champion": "1", "challenger": "3" if replaces else "2"}
    assert reg.outcome == ("standing (replaces v2)" if replaces else "insufficient_evidence (v2 keeps standing)")
    if replaces:
        last = registry_history.moves(cfg.registry_history_url, NAME, "challenger")[-1]
        assert (last.from_version, last.to_version) == ("2", "3") and "replaces standing v2" in last.reason


def test_approval_waits_for_a_person(gate_cfg, tmp_path: Path) -> None:
    cfg = gate_cfg(register={"require_approval": True})
    uri = log_model(cfg, mapping_with_errors({}))
    _register(cfg, tmp_path, "run1", _evaluation(True), uri)
    assert _aliases(cfg) == {"challenger": "1"}  # the gate said promote; a person has not yet
    assert promotion.approve(cfg, "1", actor="cli:alice", run_id="approve-1")
    assert _aliases(cfg) == {"champion": "1"}
    assert registry_history.moves(cfg.registry_history_url, NAME, "champion")[-1].actor == "cli:alice"
    _register(cfg, tmp_path, "run2", _evaluation(False, champion_version="1"), uri)
    with pytest.raises(PipelineError, match="was not promoted by the gate"):
        promotion.approve(cfg, "2", actor="cli:alice", run_id="approve-2")


def test_rollback_goes_to_the_last_known_good_version_not_the_numerically_previous(gate_cfg, tmp_path: Path) -> None:
    cfg = gate_cfg()
    uri = log_model(cfg, mapping_with_errors({}))
    _register(cfg, tmp_path, "run1", _evaluation(True), uri)  # v1 champion
    _register(cfg, tmp_path, "run2", _evaluation(False, champion_version="1"), uri)  # v2 rejected
    _register(cfg, tmp_path, "run3", _evaluation(True, champion_version="1"), uri)  # v3 champion
    _register(cfg, tmp_path, "run4", _evaluation(True, champion_version="3"), uri)  # v4 champion
    assert promotion.rollback(cfg, to=None, actor="cli:bob", why="complaints", run_id="rb1") == ("4", "3")
    assert promotion.rollback(cfg, to=None, actor="cli:bob", why="3 too", run_id="rb2") == ("3", "1")  # never v2
    assert _aliases(cfg)["champion"] == "1"
    with pytest.raises(PipelineError, match="is the champion already"):
        promotion.rollback(cfg, to="1", actor="cli:bob", why="x", run_id="rb3")

    from pipeline.cli import app

    runner = CliRunner()
    env = {"RETRAIN_HOME": cfg.home, "RETRAIN_REGISTER__MODEL_NAME": NAME}
    res = runner.invoke(app, ["rollback", "--to", "4", "--why", "fixed upstream"], env=env)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"model_name": NAME, "from": "1", "to": "4"}
    hist = json.loads(runner.invoke(app, ["history", "--alias", "champion"], env=env).stdout)
    assert [(h["from"], h["to"]) for h in hist] == [
        (None, "1"),
        ("1", "3"),
        ("3", "4"),
        ("4", "3"),
        ("3", "1"),
        ("1", "4"),
    ]
    assert hist[-1]["reason"] == "rollback: fixed upstream" and hist[-1]["actor"].startswith("cli")
    tags = MlflowClient(tracking_uri=cfg.tracking_uri).get_model_version(NAME, "4").tags
    assert json.loads(tags["alias_log"])[-1].startswith("champion: 1 -> 4 by cli")


def test_a_new_challenger_replays_the_newest_data_trained_from_the_champion(gate_cfg, tmp_path: Path) -> None:
    from pipeline import registry

    cfg = gate_cfg()
    data = {}
    for name in ("champ", "rejected", "older"):
        data[name] = tmp_path / f"{name}_train.parquet"
        data[name].write_bytes(b"x")
    _register(cfg, tmp_path, "run1", _evaluation(True), log_model(cfg, mapping_with_errors(WORSE)),
              train_data_uri=str(data["champ"]))  # fmt: skip
    assert registry.replay_source(cfg, _champ(cfg)) == (str(data["champ"]),)  # nothing trained from v1 yet
    for run, key in (("run2", "older"), ("run3", "rejected")):
        _register(cfg, tmp_path, run, _evaluation(False, champion_version="1", outcome="reject"),
                  log_model(cfg, mapping_with_errors(WORSE)), train_data_uri=str(data[key]))  # fmt: skip
    # v3 was rejected, but its rows (its window + its replay of v1's lineage) are not lost to the next one
    assert registry.replay_source(cfg, _champ(cfg)) == (str(data["rejected"]), str(data["champ"]))
    data["rejected"].unlink()  # gone from storage: the next newest that is still there
    assert registry.replay_source(cfg, _champ(cfg)) == (str(data["older"]), str(data["champ"]))


def test_replay_reaches_back_over_earlier_versions_up_to_replay_windows(gate_cfg, tmp_path: Path) -> None:
    from pipeline import registry

    files = []
    cfg = gate_cfg()
    for i in range(4):
        files.append(tmp_path / f"v{i + 1}_train.parquet")
        files[-1].write_bytes(b"x")
        evaluation = _evaluation(True) if i == 0 else _evaluation(True, champion_version=str(i))
        _register(cfg, tmp_path, f"run{i + 1}", evaluation, log_model(cfg, mapping_with_errors(BETTER)),
                  train_data_uri=str(files[-1]))  # fmt: skip
    assert _champ(cfg).version == "4"
    newest_first = tuple(str(f) for f in reversed(files))
    assert registry.replay_source(cfg, _champ(cfg)) == newest_first  # default: 4 files
    assert registry.replay_source(gate_cfg(finetune={"replay_windows": 2}), _champ(cfg)) == newest_first[:2]
