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
    "history",
    "rollback",
    "approve",
    "demo",
]


@pytest.mark.parametrize("cmd", [[], *([c] for c in COMMANDS)])
def test_every_command_has_help(cmd: list[str]) -> None:
    res = runner.invoke(app, [*cmd, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage" in res.output


def _json(res) -> dict:
    """stdout is the command's JSON result and nothing else (logs and progress go to stderr)."""
    return json.loads(res.stdout)


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


def _landing(cfg, end: date) -> None:
    from pipeline.data import simulator

    simulator.write_landing(
        cfg.simulator.model_copy(update={"messages_per_day": 10}), cfg.landing_dir_path, start=date(2025, 1, 1), end=end
    )


def test_config_prints_resolved_values(cfg) -> None:
    res = runner.invoke(app, ["config", "--section", "evaluate"], env={"RETRAIN_EVALUATE__ALPHA": "0.01"})
    assert res.exit_code == 0, res.output
    assert _json(res)["alpha"] == 0.01
    assert res.stderr == ""


def test_config_warns_about_an_explicitly_null_gate_threshold() -> None:
    res = runner.invoke(app, ["config", "--section", "evaluate"], env={"RETRAIN_EVALUATE__ALPHA": "null"})
    assert res.exit_code == 0, res.output
    assert _json(res)["alpha"] is None
    assert res.stderr.strip() == (
        "warning: evaluate.alpha is null: a challenger over a champion is never promoted (the gate fails closed)"
    )


def test_unknown_config_key_is_one_line_error() -> None:
    res = runner.invoke(app, ["champion"], env={"RETRAIN_FINETUNE__EPOCHZ": "2"})
    assert res.exit_code == 1
    assert "unknown key 'finetune.epochz'" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and res.stdout == ""


def test_empty_landing_folder_is_named_and_nothing_written(cfg) -> None:
    cfg.landing_dir_path.mkdir(parents=True)
    res = runner.invoke(app, ["ingest", "--run-id", "e1"], env=_env(cfg))
    assert res.exit_code == 1
    assert res.stderr.strip() == (
        f"error: source landing: landing folder {cfg.landing_dir_path} holds no csv/jsonl/parquet files"
    )
    assert not list(Path(cfg.artifact_root_uri).glob("cli__e1/ingest*"))


def test_step_before_its_input_names_the_missing_step(cfg) -> None:
    res = runner.invoke(app, ["validate", "--run-id", "never"], env=_env(cfg))
    assert res.exit_code == 1
    assert "retrain ingest --run-id never" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_steps_chain_by_run_id_and_register_a_model(cfg) -> None:
    env = _env(cfg)
    _landing(cfg, date(2025, 1, 21))
    outputs = {}
    for step in ("ingest", "validate", "drift", "finetune", "evaluate", "register"):
        extra = ["--force-retrain"] if step == "ingest" else []
        res = runner.invoke(app, [step, "--run-id", "c1", *extra], env=env)
        assert res.exit_code == 0, f"{step}: {res.output[-2000:]}"
        outputs[step] = _json(res)
    assert outputs["drift"]["drift"]["has_reference"] is False
    assert outputs["drift"]["decision"]["retrain"] and outputs["drift"]["decision"]["rule"] == "first_model"
    assert outputs["evaluate"]["promote"] is True  # a first model over a floor of 0.01
    assert outputs["register"]["version"] == "1" and outputs["register"]["promoted"] is True
    res = runner.invoke(app, ["champion"], env=env)
    assert _json(res)["version"] == "1"
    hist = _json(runner.invoke(app, ["drift-history"], env=env))
    assert [(h["kind"], h["rule"]) for h in hist] == [("check", "first_model"), ("retrain", "retrained")]
    assert hist[1]["model_version"] == "1" and hist[1]["promoted"] is True
    # register was the run's last step: its files are consumed, so the same window is nothing to do
    again = runner.invoke(app, ["ingest", "--run-id", "c2"], env=env)
    assert again.exit_code == 3 and again.stdout == ""
    assert (
        again.stderr.startswith("nothing to do: sources ['landing']: no new rows")
        and "ingested already" in again.stderr
    )


def test_run_prints_json_only_on_stdout_and_a_failed_run_consumes_nothing(cfg) -> None:
    env = _env(cfg)
    _landing(cfg, date(2025, 1, 14))
    # an unknown label fails validation: nothing is consumed, and the message says what to do
    bad = runner.invoke(
        app,
        ["run", "--run-id", "v1", "--force-retrain"],
        env={**env, "RETRAIN_VALIDATE__LABELS": '["order_status"]', "RETRAIN_VALIDATE__NEW_LABELS": "fail"},
    )
    assert bad.exit_code == 1 and bad.stdout == ""
    line = bad.stderr.strip().splitlines()[-1]
    assert line.startswith("error: validate:") and "add them to validate.labels" in line
    # after the fix, a new run id reads the same window again, trains (progress on stderr), commits
    res = runner.invoke(app, ["run", "--run-id", "v2", "--force-retrain"], env=env)
    assert res.exit_code == 0, res.output[-2000:]
    out = _json(res)  # the whole of stdout is one JSON document
    assert out["ingest"]["files"] == ["support_2025-01-01.jsonl", "support_2025-01-08.jsonl"]
    assert out["register"]["promoted"] is True and out["watermark_committed"] == 2
    assert "finetune epoch" in res.stderr
    again = runner.invoke(app, ["run", "--run-id", "v3"], env=env)
    assert again.exit_code == 3 and again.stderr.startswith("nothing to do:")


def test_a_null_gate_threshold_is_said_at_the_start_of_a_run(cfg) -> None:
    env = {**_env(cfg), "RETRAIN_EVALUATE__ALPHA": "null"}
    cfg.landing_dir_path.mkdir(parents=True)
    res = runner.invoke(app, ["run", "--run-id", "n1"], env=env)
    assert res.stderr.splitlines()[0] == (
        "WARNING pipeline.flow: evaluate.alpha is null: a challenger over a champion is never "
        "promoted (the gate fails closed)"
    )


def test_an_unreachable_tracking_server_is_one_line_naming_it(cfg) -> None:
    env = {
        **_env(cfg),
        "RETRAIN_TRACKING__TRACKING_URI": "http://127.0.0.1:9",
        "RETRAIN_TRACKING__HTTP_MAX_RETRIES": "1",
    }
    res = runner.invoke(app, ["champion"], env=env)
    assert res.exit_code == 1 and res.stdout == ""
    assert len(res.stderr.strip().splitlines()) == 1
    assert res.stderr.startswith("error: MLflow tracking store http://127.0.0.1:9 cannot be reached")


def test_an_unexpected_error_is_one_line_too(cfg, monkeypatch) -> None:
    from pipeline import flow

    def boom(cfg):
        raise KeyError("surprise")

    monkeypatch.setattr(flow, "champion", boom)
    res = runner.invoke(app, ["champion"], env=_env(cfg))
    assert res.exit_code == 1
    assert res.stderr.strip() == "error: unexpected KeyError: 'surprise' (RETRAIN_DEBUG=1 shows the traceback)"


def test_calibrate_prints_thresholds_on_stdout_and_names_what_is_missing(cfg, tmp_path) -> None:
    from datetime import date as day

    import pandas as pd

    from pipeline.config import SimulatorConfig
    from pipeline.data.simulator import simulate_messages

    env = _env(cfg)
    empty = runner.invoke(app, ["calibrate", "--since", "2025-03-01"], env=env)
    assert empty.exit_code == 1 and empty.stdout == "" and "pass --data" in empty.stderr
    rows = simulate_messages(SimulatorConfig(messages_per_day=30), day(2025, 3, 1), day(2025, 4, 15))
    data = tmp_path / "spring.parquet"
    pd.DataFrame(rows)[["text", "label"]].to_parquet(data)
    res = runner.invoke(app, ["calibrate", "--data", str(data), "--rows", "60", "--windows", "20"], env=env)
    assert res.exit_code == 0, res.output[-2000:]
    out = _json(res)
    assert out["files"] == 1 and [s["rows"] for s in out["sizes"]] == [60]
    assert 0 <= out["sizes"][0]["any_signal_false_alarm_rate"] <= 1 and "meets_target" in out
