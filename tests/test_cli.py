from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app

runner = CliRunner()
COMMANDS = [
    "config",
    "simulate",
    "ingest",
    "validate",
    "drift",
    "finetune",
    "evaluate",
    "register",
    "run",
    "champion",
    "demo",
]


@pytest.mark.parametrize("cmd", [[], *([c] for c in COMMANDS)])
def test_every_command_has_help(cmd: list[str]) -> None:
    res = runner.invoke(app, [*cmd, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage" in res.output


def _json(output: str) -> dict:
    """The command's JSON result; log lines may surround it in the captured output."""
    start = output.find('{\n  "')  # json.dumps(indent=2): only the top level starts like this
    return json.JSONDecoder().raw_decode(output[start:])[0]


def _env(cfg) -> dict[str, str]:
    ft = cfg.finetune
    return {
        "RETRAIN_HOME": cfg.home,
        "RETRAIN_FINETUNE__BASE_MODEL": ft.base_model,
        "RETRAIN_FINETUNE__EPOCHS": "6",
        "RETRAIN_FINETUNE__BATCH_SIZE": "8",
        "RETRAIN_FINETUNE__LEARNING_RATE": "0.003",
        "RETRAIN_FINETUNE__FREEZE_EMBEDDINGS": "false",
        "RETRAIN_FINETUNE__FREEZE_LAYERS": "0",
        "RETRAIN_FINETUNE__MAX_TRAIN_ROWS": "150",
        "RETRAIN_EVALUATE__BOOTSTRAP_SAMPLES": "200",
        "RETRAIN_EVALUATE__FIRST_MODEL_MIN_MACRO_F1": "0.01",
        "RETRAIN_SIMULATOR__MESSAGES_PER_DAY": "10",
    }


def test_config_prints_resolved_values(cfg) -> None:
    res = runner.invoke(app, ["config", "--section", "evaluate"], env={"RETRAIN_EVALUATE__ALPHA": "0.01"})
    assert res.exit_code == 0, res.output
    assert _json(res.output)["alpha"] == 0.01


def test_unknown_config_key_is_one_line_error() -> None:
    res = runner.invoke(app, ["champion"], env={"RETRAIN_FINETUNE__EPOCHZ": "2"})
    assert res.exit_code == 1
    assert "unknown key 'finetune.epochz'" in res.output
    assert "Traceback" not in res.output


def test_empty_landing_folder_is_named_and_nothing_written(cfg) -> None:
    cfg.landing_dir_path.mkdir(parents=True)
    res = runner.invoke(app, ["ingest", "--run-id", "e1"], env=_env(cfg))
    assert res.exit_code == 1
    assert str(cfg.landing_dir_path) in res.output and "no" in res.output
    assert not list(Path(cfg.artifact_root_uri).glob("cli__e1/ingest*"))


def test_step_before_its_input_names_the_missing_step(cfg) -> None:
    res = runner.invoke(app, ["validate", "--run-id", "never"], env=_env(cfg))
    assert res.exit_code == 1
    assert "retrain ingest --run-id never" in res.output


def test_steps_chain_by_run_id_and_register_a_model(cfg) -> None:
    env = _env(cfg)
    from pipeline.data import simulator

    simulator.write_landing(
        cfg.simulator.model_copy(update={"messages_per_day": 10}),
        cfg.landing_dir_path,
        start=date(2025, 1, 1),
        end=date(2025, 1, 21),
    )
    outputs = {}
    for step in ("ingest", "validate", "drift", "finetune", "evaluate", "register"):
        extra = ["--force-retrain"] if step == "ingest" else []
        res = runner.invoke(app, [step, "--run-id", "c1", *extra], env=env)
        assert res.exit_code == 0, f"{step}: {res.output[-2000:]}"
        outputs[step] = _json(res.output)
    assert outputs["drift"]["has_reference"] is False
    assert outputs["register"]["version"] == "1"
    res = runner.invoke(app, ["champion"], env=env)
    champ = _json(res.output)
    assert champ["version"] == ("1" if outputs["evaluate"]["promote"] else None)
