"""Helpers for the evaluate and register tests: tiny deterministic pyfunc models and a fast store.

The models are lookup tables (text -> label), so each test decides exactly which rows a model gets
wrong. A fresh SQLite MLflow store costs seconds of schema migrations, so one migrated empty
database is built per session and copied into each test's home.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from pipeline import tracking
from pipeline.config import PipelineConfig, _merge, load_config

CLASSES = ("order_status", "refund_request", "gift_card")
WRONG = "product_question"  # errors go to a label no test row has, so they cost only recall
ROWS_PER_CLASS = 60

GATE = {
    "alpha": 0.05,
    "min_support": 20,
    "first_model_min_macro_f1": 0.6,
    "bootstrap_samples": 200,
    "permutations": 500,
    "latency_rows": 0,
    "seed": 11,
}


# Logged as *models from code* (like pipeline.modeling.pyfunc): MLflow stores this script and a
# JSON artifact, not a cloudpickle, so loading works even with MLFLOW_ALLOW_PICKLE_DESERIALIZATION
# off and does not depend on how pytest named this module.
_LOOKUP_MODEL_CODE = """
import json

import mlflow
import pandas as pd


class LookupModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        with open(context.artifacts["lookup"]) as f:
            data = json.load(f)
        self.mapping, self.default = data["mapping"], data["default"]

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        labels = [self.mapping.get(t, self.default) for t in model_input["text"]]
        return pd.DataFrame({"label": labels, "confidence": [0.9] * len(labels)})


mlflow.models.set_model(LookupModel())
"""


_template: list[Path] = []  # one per process, although each test module imports the fixture


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, fully migrated MLflow SQLite database to copy into each test's home."""
    if not _template:
        from mlflow.tracking import MlflowClient

        db = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
        uri = f"sqlite:///{db}"
        c = MlflowClient(tracking_uri=uri, registry_uri=uri)
        c.search_experiments()
        c.search_registered_models()
        _template.append(db)
    return _template[0]


@pytest.fixture
def gate_cfg(tmp_path: Path, template_db: Path) -> Callable[..., PipelineConfig]:
    """Build a config rooted in ``tmp_path`` with explicit gate thresholds; overrides deep-merge."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    if not (home / "mlflow.db").exists():
        shutil.copy(template_db, home / "mlflow.db")

    def _make(**overrides) -> PipelineConfig:
        base = {"home": str(home), "evaluate": dict(GATE), "register": {"model_name": "test-intent-classifier"}}
        return load_config(**_merge(base, overrides))

    return _make


def split_rows() -> pd.DataFrame:
    """``ROWS_PER_CLASS`` rows per class; row ``k`` of a class is ``(class, k)``."""
    rows = []
    for label in CLASSES:
        for k in range(ROWS_PER_CLASS):
            i = len(rows)
            rows.append(
                {
                    "example_id": f"ex-{i:04d}",
                    "text": f"{label} message {k}",
                    "label": label,
                    "timestamp": pd.Timestamp("2025-03-01", tz="UTC") + pd.Timedelta(minutes=i),
                    "segment": (None, "web", "app")[i % 3],
                    "source_file": "landing/2025-03-01.jsonl",
                }
            )
    return pd.DataFrame(rows).astype({"segment": "string"})


def write_test_split(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    split_rows().to_parquet(path, index=False)
    return str(path)


def mapping_with_errors(wrong: dict[str, Sequence[int]]) -> dict[str, str]:
    """Correct on every test row except rows ``k`` in ``wrong[class]``, which get ``WRONG``."""
    df = split_rows()
    out = {}
    for text, label in zip(df["text"], df["label"], strict=True):
        k = int(text.rsplit(" ", 1)[1])
        out[text] = WRONG if k in set(wrong.get(label, ())) else label
    return out


def log_model(cfg: PipelineConfig, mapping: dict[str, str], default: str = WRONG) -> str:
    """Log a lookup model (``mapping[text]``, else ``default``) into the config's store; return its URI."""
    exp_id = tracking.configure(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        code = Path(tmp) / "lookup_model.py"
        code.write_text(_LOOKUP_MODEL_CODE)
        lookup = Path(tmp) / "lookup.json"
        lookup.write_text(json.dumps({"mapping": mapping, "default": default}))
        with mlflow.start_run(experiment_id=exp_id):
            info = mlflow.pyfunc.log_model(
                name="model", python_model=str(code), artifacts={"lookup": str(lookup)}, pip_requirements=[]
            )
    return info.model_uri
