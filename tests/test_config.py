from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import PipelineConfig, load_config
from pipeline.errors import ConfigError


def test_committed_defaults_load_and_fill_paths_under_home(tmp_path: Path) -> None:
    cfg = load_config(home=str(tmp_path))
    assert cfg.evaluate.alpha == 0.05  # the typed default
    assert cfg.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert cfg.artifact_root_uri == str(tmp_path / "artifacts")
    assert cfg.landing_dir_path == tmp_path / "landing"


def test_the_typed_config_holds_every_default_and_the_yaml_holds_none() -> None:
    import yaml

    from pipeline.config import DEFAULT_CONFIG_PATH

    assert yaml.safe_load(DEFAULT_CONFIG_PATH.read_text()) == {}
    cfg = PipelineConfig()
    assert cfg.evaluate.alpha == 0.05 and cfg.evaluate.first_model_min_macro_f1 == 0.6
    assert (cfg.finetune.batch_size, cfg.finetune.learning_rate, cfg.finetune.freeze_layers) == (16, 2e-4, 2)
    assert cfg.drift.text_drift_threshold == 0.55 and cfg.ingest.split.test_fraction == 0.25
    assert cfg.gate_warnings() == []


def test_a_user_yaml_layers_over_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    y = tmp_path / "my.yaml"
    y.write_text("ingest:\n  columns: {text: body, label: intent, timestamp: created_at, segment: plan}\n")
    monkeypatch.setenv("RETRAIN_CONFIG", str(y))
    cfg = load_config()
    assert cfg.ingest.columns.text == "body"
    assert cfg.ingest.columns.timestamp == "created_at" and cfg.ingest.split.test_fraction == 0.25
    assert cfg.evaluate.alpha == 0.05 and cfg.evaluate.class_f1_margin == 0.05  # the gate stays configured
    assert cfg.gate_warnings() == []


def test_an_explicit_null_threshold_fails_closed_and_says_so(tmp_path: Path, monkeypatch) -> None:
    y = tmp_path / "c.yaml"
    y.write_text("evaluate: {alpha: null}\n")
    cfg = load_config(y)
    assert cfg.evaluate.alpha is None
    assert cfg.gate_warnings() == [
        "evaluate.alpha is null: a challenger over a champion is never promoted (the gate fails closed)"
    ]
    monkeypatch.setenv("RETRAIN_EVALUATE__FIRST_MODEL_MIN_MACRO_F1", "null")
    assert load_config().gate_warnings() == [
        "evaluate.first_model_min_macro_f1 is null: a first model is never promoted (the gate fails closed)"
    ]


def test_readme_config_table_is_generated_from_the_typed_config() -> None:
    from pipeline.config import REPO_ROOT
    from pipeline.config_doc import render_table, replace_block

    readme = (REPO_ROOT / "README.md").read_text()
    assert replace_block(readme, render_table()) == readme, "run: make docs"
    assert "| `finetune.batch_size` | `16` |" in readme and "| `evaluate.alpha` | `0.05` |" in readme


def test_every_config_key_is_described() -> None:
    from pipeline.config_doc import _rows

    assert [key for key, _, meaning in _rows(PipelineConfig) if not meaning] == []


def test_environment_beats_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    y = tmp_path / "c.yaml"
    y.write_text("finetune: {epochs: 5}\nvalidate: {min_rows: 9}\n")
    monkeypatch.setenv("RETRAIN_FINETUNE__EPOCHS", "2")
    monkeypatch.setenv("RETRAIN_VALIDATE__MIN_ROWS", "4")
    cfg = load_config(y)
    assert cfg.finetune.epochs == 2
    assert cfg.validate_cfg.min_rows == 4


def test_unknown_key_in_yaml_is_named(tmp_path: Path) -> None:
    y = tmp_path / "c.yaml"
    y.write_text("finetune:\n  epochz: 3\n")
    with pytest.raises(ConfigError, match=r"c\.yaml.*unknown key 'finetune\.epochz'"):
        load_config(y)


def test_unknown_top_level_section_is_rejected(tmp_path: Path) -> None:
    y = tmp_path / "c.yaml"
    y.write_text("trainer: {epochs: 3}\n")
    with pytest.raises(ConfigError, match="unknown key 'trainer'"):
        load_config(y)


def test_unknown_key_in_environment_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETRAIN_FINETUNE__EPOCHZ", "3")
    with pytest.raises(ConfigError, match="finetune.epochz"):
        load_config()


def test_bad_value_names_key_and_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'finetune\.epochs'.*got 0"):
        load_config(finetune={"epochs": 0})


@pytest.mark.parametrize("bad", ["13-01", "02-30", "spring"])
def test_season_start_must_be_a_month_day(bad: str) -> None:
    with pytest.raises(ConfigError, match="season start"):
        load_config(schedule={"season_starts": [bad]})


def test_split_must_leave_training_rows() -> None:
    with pytest.raises(ConfigError, match="at least 20%"):
        load_config(ingest={"split": {"val_fraction": 0.4, "test_fraction": 0.45}})


def test_config_is_frozen() -> None:
    from pydantic import ValidationError

    cfg = load_config()
    with pytest.raises(ValidationError, match="frozen"):
        cfg.finetune.epochs = 7  # type: ignore[misc]


def test_missing_or_broken_yaml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("finetune: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
