from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

LABELS = ("order_status", "refund_request", "account_access")  # intent_dir's (tests/conftest.py)
TEXTS = ["where is my order", "i want my money back", "password reset please", "the coat", ""]


@pytest.fixture(scope="module")
def mlflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MLflow store for the module: creating a SQLite store costs seconds."""
    return tmp_path_factory.mktemp("mlflow-home")


@pytest.fixture
def logged(make_cfg, mlflow_home: Path, intent_dir: Path):
    import mlflow

    from pipeline import tracking
    from pipeline.modeling.pyfunc import log_intent_model

    exp_id = tracking.configure(make_cfg(home=str(mlflow_home)))
    with mlflow.start_run(experiment_id=exp_id):
        return log_intent_model(intent_dir, tags={"pipeline_run_id": "test"})


def test_logged_model_predicts_labels_from_raw_text(logged, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    # models from code: loading must not need pickle deserialization
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    assert logged.model_uri.startswith("models:/m-")
    model = mlflow.pyfunc.load_model(logged.model_uri)
    out = model.predict(pd.DataFrame({"text": TEXTS}))

    assert list(out.columns) == ["label", "confidence"]
    assert len(out) == len(TEXTS)
    assert set(out["label"]) <= set(LABELS)
    assert out["confidence"].dtype == "float64"
    assert ((out["confidence"] > 1 / len(LABELS) - 1e-6) & (out["confidence"] <= 1.0)).all()


def test_signature_and_requirements_are_recorded(logged) -> None:
    import mlflow
    from mlflow.models import Model

    sig = logged.signature
    assert sig is not None
    assert sig.inputs.input_names() == ["text"]
    assert sig.outputs.input_names() == ["label", "confidence"]
    assert [s.type.name for s in sig.outputs.inputs] == ["string", "double"]

    local = Path(mlflow.artifacts.download_artifacts(logged.model_uri))
    flavor = Model.load(str(local)).flavors["python_function"]
    assert "python_model" not in flavor  # no cloudpickle
    assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert (local / Path(flavor["model_code_path"]).name).is_file()  # loaded by basename
    reqs = (local / "requirements.txt").read_text().split()
    for name in ("torch", "transformers", "pandas", "mlflow"):
        assert any(r.startswith(f"{name}==") and "+" not in r for r in reqs), reqs


def test_predict_keeps_input_order_for_lists_series_and_batches(intent_dir: Path) -> None:
    from pipeline.modeling.pyfunc import IntentClassifier

    clf = IntentClassifier()
    clf.load_context(SimpleNamespace(artifacts={"hf_model": str(intent_dir)}))
    by_frame = clf.predict(None, pd.DataFrame({"text": TEXTS}))
    by_list = clf.predict(None, TEXTS, params={"batch_size": 2})
    by_series = clf.predict(None, pd.Series(TEXTS))
    pd.testing.assert_frame_equal(by_frame, by_list, atol=1e-5)
    pd.testing.assert_frame_equal(by_frame, by_series, atol=1e-5)
    assert clf.max_length == 16


def test_load_hf_from_model_uri_returns_the_hf_folder(logged, tmp_path: Path) -> None:
    from pipeline.modeling.pyfunc import load_hf_from_model_uri, read_model_meta

    hf_dir = Path(load_hf_from_model_uri(logged.model_uri, tmp_path / "dl"))
    assert (hf_dir / "config.json").is_file()
    assert hf_dir.is_relative_to(tmp_path / "dl")
    assert read_model_meta(hf_dir) == {
        "labels": list(LABELS),
        "max_length": 16,
        "cleaning": {"max_text_chars": 1000, "scrub_pii": True, "pii_patterns": {}},
        "temperature": 1.0,
        "precision": "auto",
    }
    assert json.loads((hf_dir / "config.json").read_text())["id2label"]["2"] == "account_access"


def test_log_refuses_a_folder_without_label_map(tiny_model_dir: Path) -> None:
    from pipeline.modeling.pyfunc import log_intent_model

    with pytest.raises(FileNotFoundError, match="intent_model.json"):
        log_intent_model(tiny_model_dir)


def test_the_served_model_cleans_its_input_as_ingest_cleaned_the_training_text(intent_dir: Path) -> None:
    from pipeline.data.text import clean_text
    from pipeline.modeling.pyfunc import IntentClassifier

    clf = IntentClassifier()
    clf.load_context(SimpleNamespace(artifacts={"hf_model": str(intent_dir)}))
    raw = ["  where\u200b is my   order?  mail jane.doe@example.com", "call +1 415 555 0134 about order #A1234567"]
    cleaned = [clean_text(t, max_chars=1000)[0] for t in raw]
    assert cleaned == ["where is my order? mail [EMAIL]", "call [PHONE] about order [ORDER]"]
    pd.testing.assert_frame_equal(clf.predict(None, raw), clf.predict(None, cleaned))


def test_probe_agrees_with_predict_and_keeps_input_order(intent_dir: Path) -> None:
    """The drift check's logits are the served model's: same argmax and softmax confidence, any batch size."""
    import numpy as np

    from pipeline.modeling.pyfunc import IntentClassifier
    from pipeline.monitoring.stats import softmax

    clf = IntentClassifier()
    clf.load_context(SimpleNamespace(artifacts={"hf_model": str(intent_dir)}))
    logits, emb = clf.probe(TEXTS, batch_size=2)
    served = clf.predict(None, TEXTS)
    assert logits.shape == (len(TEXTS), len(LABELS)) and emb.shape[0] == len(TEXTS)
    assert [LABELS[i] for i in logits.argmax(axis=1)] == list(served["label"])
    np.testing.assert_allclose(softmax(logits).max(axis=1), served["confidence"], atol=1e-5)
    again, emb_again = clf.probe(list(reversed(TEXTS)), batch_size=64)
    np.testing.assert_allclose(again[::-1], logits, atol=1e-5)
    np.testing.assert_allclose(emb_again[::-1], emb, atol=1e-5)


def test_model_signals_on_a_real_intent_model(intent_dir: Path) -> None:
    """Embedding and prediction tests, performance with CIs and CBPE, from the champion's probe."""
    from pipeline.config import DriftConfig
    from pipeline.modeling.pyfunc import IntentClassifier
    from pipeline.monitoring import signals

    clf = IntentClassifier()
    clf.load_context(SimpleNamespace(artifacts={"hf_model": str(intent_dir)}))
    words = ["where is my order", "i want my money back", "password reset please"]
    ref = pd.DataFrame(
        {"text": [f"{words[i % 3]} {i}" for i in range(60)], "label": [LABELS[i % 3] for i in range(60)]}
    )
    cur = ref.assign(label=[LABELS[0]] * 60)
    tests, perf, est = signals.model_signals(clf, cur, ref, DriftConfig(mmd_permutations=50, performance_resamples=50))
    assert set(tests) == {"embedding", "prediction"}
    assert tests["embedding"]["p_value"] > 0.05  # the same texts: no embedding drift
    assert perf is not None and perf["rows"] == 60
    assert perf["accuracy_low"] <= perf["accuracy"] <= perf["accuracy_high"]
    assert 0 < est["accuracy"] <= 1 and est["temperature"] == 1.0


def test_the_inference_path_returns_rows_in_input_order_as_if_each_ran_alone(tiny_model_dir) -> None:
    import numpy as np
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from pipeline.modeling import inference

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=3).eval()
    texts = ["where is my order", "refund", "i can not log in to my account since yesterday please help", "hi"]
    ids = [list(x) for x in tok(texts, truncation=True, max_length=32)["input_ids"]]
    batched = inference.logits(model, ids, batch_size=3, pad_id=tok.pad_token_id, device="cpu")
    alone = np.vstack([inference.logits(model, [r], batch_size=1, pad_id=tok.pad_token_id, device="cpu") for r in ids])
    np.testing.assert_allclose(batched, alone, atol=1e-5)  # padding is masked; order is restored
    z, emb = inference.logits_and_embeddings(model, ids, batch_size=2, pad_id=tok.pad_token_id, device="cpu")
    np.testing.assert_allclose(z, alone, atol=1e-5)
    assert emb.shape == (4, model.config.hidden_size) and np.isfinite(emb).all()
    from pipeline.modeling.precision import bf16_supported

    if bf16_supported("cpu"):  # the bf16 path really runs in bf16: close to fp32, not equal to it
        bf16 = inference.logits(model, ids, batch_size=3, pad_id=tok.pad_token_id, device="cpu", precision="bf16")
        assert not np.array_equal(bf16, batched) and np.allclose(bf16, batched, atol=0.1)
