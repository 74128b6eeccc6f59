from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parent.parent

# Airflow reads its config when first imported: point it at a throwaway home before any test does.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="retrain-test-airflow-")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["GX_ANALYTICS_ENABLED"] = "False"

# Tests never reach a hub: every model is built locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")


# Services a test may need, as host:port on loopback (overridable for another machine).
SERVICES = {
    "postgresql": os.environ.get("RETRAIN_TEST_PG", "postgresql://postgres@127.0.0.1:5432"),
    "redis": os.environ.get("RETRAIN_TEST_REDIS", "redis://127.0.0.1:6379"),
}


def _reachable(url: str, timeout: float = 2.0) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=timeout):
            return True
    except OSError:
        return False


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``@pytest.mark.service("postgresql")``: skip with a one-line reason when the service is not
    reachable; with CI=true the service is required, so the test fails instead of skipping."""
    for marker in item.iter_markers("service"):
        name = marker.args[0]
        url = SERVICES[name]
        if _reachable(url):
            continue
        where = urlsplit(url)
        reason = f"{name} at {where.hostname}:{where.port} is not reachable (start it, or set its RETRAIN_TEST_* URL)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true requires every service: {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No RETRAIN_* variable from the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith("RETRAIN_"):
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer BERT with a tiny WordPiece vocabulary: trains in seconds on CPU."""
    from pipeline.modeling.tiny import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def intent_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A random 3-label intent model folder (weights + tokenizer + intent_model.json): labels
    order_status, refund_request, account_access."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from pipeline.modeling.pyfunc import write_model_meta

    labels = ("order_status", "refund_request", "account_access")
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("intent")
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_model_dir,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    write_model_meta(out, labels=labels, max_length=16)
    return out


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, fully migrated MLflow SQLite database (migrations cost seconds; a copy costs nothing)."""
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("mlflow-template-home") / "mlflow.db"
    uri = f"sqlite:///{db}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.search_experiments()
    client.search_registered_models()
    return db


@pytest.fixture
def make_cfg(tmp_path: Path, tiny_model_dir: Path, mlflow_template: Path):
    """Build a PipelineConfig rooted in ``tmp_path`` with fast settings; keyword overrides deep-merge.
    The home starts with an empty, migrated MLflow store (a copy of a session template)."""
    import shutil

    from pipeline.config import load_config

    home_db = tmp_path / "home" / "mlflow.db"
    if not home_db.exists():
        home_db.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(mlflow_template, home_db)

    def _make(**overrides):
        base = {
            "home": str(tmp_path / "home"),
            "finetune": {
                "base_model": str(tiny_model_dir),
                "epochs": 2,
                "batch_size": 16,
                "max_length": 32,
                "learning_rate": 5e-3,
                "freeze_embeddings": False,
                "freeze_layers": 0,
            },
            "evaluate": {"bootstrap_samples": 200},
        }
        from pipeline.config import _merge

        return load_config(**_merge(base, overrides))

    return _make


@pytest.fixture
def cfg(make_cfg):
    return make_cfg()


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A shared SQLite MLflow store (a fresh one costs seconds of schema migrations); tests tell
    their runs apart by pipeline_run_id. Pass it as ``make_cfg(tracking=mlflow_store)``."""
    root = tmp_path_factory.getbasetemp() / "shared-mlflow"
    root.mkdir(exist_ok=True)
    return {"tracking_uri": f"sqlite:///{root / 'mlflow.db'}", "artifact_location": (root / "artifacts").as_uri()}


@pytest.fixture
def pg_db():
    """A fresh PostgreSQL database (dropped afterwards), as a SQLAlchemy URL; use with
    ``@pytest.mark.service("postgresql")``, which checks reachability first."""
    import uuid

    psycopg2 = pytest.importorskip("psycopg2")
    pg = SERVICES["postgresql"]
    name = f"retrain_it_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(f"{pg}/postgres", connect_timeout=5)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; name the installed driver
    yield f"{pg.replace('postgresql://', 'postgresql+psycopg2://', 1)}/{name}"
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()
