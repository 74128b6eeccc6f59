"""The README's "Your own data" section, copied as it stands into a file, gives a run that
promotes a first model (with the tiny test model in place of MiniLM, and a tmp landing folder)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import REPO_ROOT

pytestmark = pytest.mark.slow
# words the tiny test model's vocabulary knows (pipeline/modeling/tiny.py)
KEYWORDS = {
    "billing": ["charged twice", "payment failed", "card charged", "money back"],
    "cancel": ["account locked", "login password", "reset access", "password reset"],
    "bug_report": ["package not arrived", "shipping late", "delayed package", "not arrived yet"],
    "feature_request": ["size color", "stock available", "gift code", "price match"],
}


def _readme_yaml() -> str:
    section = (REPO_ROOT / "README.md").read_text().split("## Your own data", 1)[1]
    return re.search(r"```yaml\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_config_promotes_a_first_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    text = _readme_yaml()
    landing = tmp_path / "tickets"
    my_yaml = tmp_path / "my.yaml"
    my_yaml.write_text(text.replace("/data/tickets", str(landing)))
    cfg = yaml.safe_load(my_yaml.read_text())
    cols, labels = cfg["ingest"]["columns"], cfg["validate"]["labels"]

    rng = random.Random(3)
    landing.mkdir()
    rows = []
    for i in range(240):
        label = labels[i % len(labels)]
        words = [rng.choice(KEYWORDS[label]), rng.choice(["please", "help", "the", "i", "it"]), f"#{i}"]
        rng.shuffle(words)
        rows.append(
            {
                cols["text"]: " ".join(words),
                cols["label"]: label,
                cols["timestamp"]: f"2025-03-0{1 + i % 5}T10:{i % 60:02d}:00Z",
                cols["segment"]: rng.choice("ab"),
            }
        )
    (landing / "tickets_2025-03-05.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    env = {  # only what the test machine needs: the tiny model, fast training, a private home
        "RETRAIN_CONFIG": str(my_yaml),
        "RETRAIN_HOME": str(tmp_path / "home"),
        "RETRAIN_FINETUNE__BASE_MODEL": str(tiny_model_dir),
        "RETRAIN_FINETUNE__EPOCHS": "12",
        "RETRAIN_FINETUNE__BATCH_SIZE": "8",
        "RETRAIN_FINETUNE__LEARNING_RATE": "0.003",
        "RETRAIN_FINETUNE__FREEZE_EMBEDDINGS": "false",
        "RETRAIN_FINETUNE__FREEZE_LAYERS": "0",
        "RETRAIN_FINETUNE__EARLY_STOPPING_PATIENCE": "3",
    }
    res = CliRunner().invoke(app, ["run", "--run-id", "first", "--force-retrain"], env=env)
    assert res.exit_code == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    assert "warnings" not in out  # the gate is configured by the defaults
    assert out["evaluate"]["is_first_model"] and out["evaluate"]["promote"], out["evaluate"]["reasons"]
    assert out["register"]["promoted"] is True and out["register"]["version"] == "1"


def test_the_readme_sources_example_is_a_valid_config(tmp_path: Path) -> None:
    """The second YAML block of "Your own data" (several sources) loads as the typed config."""
    from pipeline.config import FeedbackSource, HfDiskSource, LandingSource, SqlSource, load_config

    section = (REPO_ROOT / "README.md").read_text().split("## Your own data", 1)[1]
    text = re.findall(r"```yaml\n(.*?)```", section, re.S)[1]
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    cfg = load_config(path)
    kinds = [type(s) for s in cfg.ingest.resolved_sources()]
    assert kinds == [LandingSource, SqlSource, HfDiskSource, FeedbackSource]
