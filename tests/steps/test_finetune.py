from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import TrainingError

L3 = ("order_status", "refund_request", "account_access")
PHRASES = {
    "order_status": ["where is my order", "my package not arrived yet", "order still not arrived"],
    "refund_request": ["i want a refund", "money back please", "refund for the item"],
    "account_access": ["can not login", "password reset", "account locked"],
    "price_match": ["price match please", "it was cheaper", "do you price match"],
}
FILLER = ["please", "help", "the", "coat", "jacket", "boots", "item", "i", "it"]


def make_frame(labels, n: int, *, seed: int, prefix: str) -> pd.DataFrame:
    """Curated-contract rows: keyword phrases per label, shuffled with filler words, balanced labels."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = labels[i % len(labels)]
        words = rng.choice(PHRASES[label]).split() + rng.sample(FILLER, 2)
        rng.shuffle(words)
        rows.append(
            {
                "example_id": f"{prefix}-{i}",
                "text": " ".join(words),
                "label": label,
                "timestamp": pd.Timestamp("2025-03-01", tz="UTC") + pd.Timedelta(hours=i),
                "segment": None if i % 3 else "s1",
                "source_file": f"{prefix}.jsonl",
            }
        )
    return pd.DataFrame(rows)


def write(df: pd.DataFrame, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False)
    return str(path)


@pytest.fixture(scope="module")
def mlflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MLflow store for the module: creating a SQLite store costs seconds."""
    return tmp_path_factory.mktemp("mlflow-home")


@pytest.fixture
def fcfg(make_cfg, mlflow_home: Path):
    """make_cfg on the module's MLflow store; keyword overrides go to the finetune section."""
    return lambda **ft: make_cfg(home=str(mlflow_home), finetune=ft)


@pytest.fixture
def data(tmp_path: Path) -> dict[str, str]:
    return {
        "train_uri": write(make_frame(L3, 90, seed=1, prefix="t"), tmp_path / "in" / "train.parquet"),
        "val_uri": write(make_frame(L3, 30, seed=2, prefix="v"), tmp_path / "in" / "val.parquet"),
    }


def _run(cfg, data: dict[str, str], out_dir: Path, run_id: str, **kw):
    from pipeline.steps import finetune

    return finetune.run(cfg, **data, out_dir=str(out_dir), pipeline_run_id=run_id, **kw)


def _client(cfg):
    from pipeline import tracking

    return tracking.client(cfg)


def _history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def test_run_writes_model_and_data_and_logs_each_epoch(fcfg, data, tmp_path: Path) -> None:
    import mlflow

    cfg = fcfg(epochs=3)
    out = tmp_path / "out"
    result = _run(cfg, data, out, "p-basic")

    assert result.labels == tuple(sorted(L3))  # cold start: sorted labels
    assert (result.train_rows, result.replay_rows, result.val_rows) == (90, 0, 30)
    assert result.epochs_run == 3 and not result.stopped_early
    assert result.warm_started_from is None
    assert result.model_dir == str(out / "model")
    assert (out / "model" / "config.json").is_file() and (out / "model" / "intent_model.json").is_file()
    assert (out / "_SUCCESS").is_file()
    assert len(pd.read_parquet(result.train_data_uri)) == 90
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "in", "out"]  # no staging folder left

    client = _client(cfg)
    run = client.get_run(result.mlflow_run_id)
    assert run.data.tags["pipeline_run_id"] == "p-basic" and run.data.tags["step"] == "finetune"
    assert run.data.tags["warm_started_from"] == "none"
    assert run.data.tags["base_model"] == cfg.finetune.base_model
    assert run.data.params["learning_rate"] == str(cfg.finetune.learning_rate)
    assert run.data.params["train_rows"] == "90" and run.data.params["labels"] == ",".join(result.labels)
    for key in ("train_loss", "val_accuracy", "val_macro_f1", "learning_rate", "epoch_seconds", "samples_per_second"):
        assert [step for step, _ in _history(client, result.mlflow_run_id, key)] == [1, 2, 3], key
    f1s = [v for _, v in _history(client, result.mlflow_run_id, "val_macro_f1")]
    assert result.best_val_macro_f1 == pytest.approx(max(f1s))
    losses = [v for _, v in _history(client, result.mlflow_run_id, "train_loss")]
    assert losses[-1] < losses[0]  # it learns something

    logged_model = client.get_logged_model(result.model_uri.removeprefix("models:/"))
    assert logged_model.tags["pipeline_run_id"] == "p-basic"
    assert {m.key for m in logged_model.metrics or []} >= {"best_val_macro_f1", "best_val_accuracy"}

    # the logged model serves raw text and can be registered; its confidences use the val-fitted temperature
    from pipeline.modeling.pyfunc import read_model_meta

    temperature = read_model_meta(result.model_dir)["temperature"]
    assert temperature > 0 and temperature != 1.0
    assert client.get_run(result.mlflow_run_id).data.metrics["temperature"] == pytest.approx(temperature)
    loaded = mlflow.pyfunc.load_model(result.model_uri)
    preds = loaded.predict(pd.DataFrame({"text": ["where is my order"]}))
    assert preds.loc[0, "label"] in L3
    clf = loaded.unwrap_python_model()
    logits, _ = clf.probe(["where is my order"])
    z = logits[0] / temperature
    assert preds.loc[0, "confidence"] == pytest.approx(float(np.exp(z.max()) / np.exp(z).sum()), rel=1e-5)
    version = mlflow.register_model(result.model_uri, "test-intent-basic")
    assert str(version.version) == "1"


def test_crash_then_retry_uses_a_fresh_run_and_rerun_reuses_the_result(fcfg, data, tmp_path: Path, monkeypatch) -> None:
    from pipeline.steps import finetune

    cfg = fcfg(epochs=1)
    out = tmp_path / "out"

    def boom(*args, **kwargs):
        raise RuntimeError("artifact store down")

    with monkeypatch.context() as m:
        m.setattr(finetune, "log_intent_model", boom)
        with pytest.raises(RuntimeError, match="artifact store down"):
            _run(cfg, data, out, "p-retry")
    assert not out.exists()
    # nothing half-written; only the finished training's checkpoint, which the retry resumes from
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.checkpoints", "home", "in"]

    first = _run(cfg, data, out, "p-retry")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "in", "out"]  # checkpoints removed on success
    client = _client(cfg)
    runs = client.search_runs(
        [client.get_run(first.mlflow_run_id).info.experiment_id],
        filter_string="tags.pipeline_run_id = 'p-retry' and tags.step = 'finetune'",
    )
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]

    # a rerun of a finished step returns the recorded result without training
    monkeypatch.setattr(finetune, "_train", boom)
    assert _run(cfg, data, out, "p-retry") == first
    again = client.search_runs(
        [runs[0].info.experiment_id], "tags.pipeline_run_id = 'p-retry' and tags.step = 'finetune'"
    )
    assert len(again) == 2


def test_same_seed_gives_identical_metrics(fcfg, data, tmp_path: Path) -> None:
    cfg = fcfg(epochs=2)
    a = _run(cfg, data, tmp_path / "a", "p-seed-a")
    b = _run(cfg, data, tmp_path / "b", "p-seed-b")
    client = _client(cfg)
    for key in ("train_loss", "val_macro_f1", "val_accuracy"):
        assert _history(client, a.mlflow_run_id, key) == _history(client, b.mlflow_run_id, key)
    assert a.best_val_macro_f1 == b.best_val_macro_f1


@pytest.mark.parametrize(("patience", "epochs_run"), [(0, 2), (1, 3)])
def test_early_stopping_when_val_f1_cannot_improve(fcfg, data, tmp_path: Path, patience: int, epochs_run: int) -> None:
    # a learning rate of 1e-12 leaves predictions, hence val macro-F1, unchanged after epoch 1
    cfg = fcfg(epochs=5, learning_rate=1e-12, early_stopping_patience=patience)
    result = _run(cfg, data, tmp_path / "out", f"p-early-{patience}")
    assert result.epochs_run == epochs_run
    assert result.stopped_early
    assert len(_history(_client(cfg), result.mlflow_run_id, "val_macro_f1")) == epochs_run


def test_warm_start_with_a_new_label_grows_the_head_and_keeps_old_rows(fcfg, data, tmp_path: Path) -> None:
    import mlflow
    import torch
    from transformers import AutoModelForSequenceClassification

    from pipeline.modeling.pyfunc import read_model_meta

    champion = _run(fcfg(epochs=1), data, tmp_path / "season1", "p-warm-1")
    version = mlflow.register_model(champion.model_uri, "test-intent-warm")
    champion_uri = f"models:/test-intent-warm/{version.version}"

    labels4 = (*L3, "price_match")
    season2 = {
        "train_uri": write(make_frame(labels4, 80, seed=3, prefix="t2"), tmp_path / "in2" / "train.parquet"),
        "val_uri": write(make_frame(labels4, 40, seed=4, prefix="v2"), tmp_path / "in2" / "val.parquet"),
    }
    # a learning rate of 1e-12 keeps the weights where the warm start put them
    cfg = fcfg(epochs=1, learning_rate=1e-12)
    result = _run(cfg, season2, tmp_path / "season2", "p-warm-2", init_model_uri=champion_uri)

    assert result.labels == (*champion.labels, "price_match")
    assert result.warm_started_from == champion_uri
    assert read_model_meta(result.model_dir)["labels"] == list(result.labels)
    assert _client(cfg).get_run(result.mlflow_run_id).data.tags["warm_started_from"] == champion_uri

    old = AutoModelForSequenceClassification.from_pretrained(champion.model_dir).classifier
    new = AutoModelForSequenceClassification.from_pretrained(result.model_dir).classifier
    assert new.weight.shape[0] == 4
    torch.testing.assert_close(new.weight[:3], old.weight, atol=1e-6, rtol=0)
    torch.testing.assert_close(new.bias[:3], old.bias, atol=1e-6, rtol=0)
    assert new.weight[3].abs().sum() > 0


def test_replay_adds_stratified_old_rows_without_duplicates(fcfg, data, tmp_path: Path) -> None:
    new = pd.read_parquet(data["train_uri"])
    val = pd.read_parquet(data["val_uri"])
    old = make_frame(L3, 90, seed=9, prefix="old")
    # 12 rows of the pool are already in the new train or val data: they must not be replayed
    clashes = pd.concat([new.head(9), val.head(3)]).assign(text="an older copy of the item")
    pool = pd.concat([old, clashes], ignore_index=True)
    replay_uri = write(pool, tmp_path / "champion" / "train_data.parquet")

    cfg = fcfg(epochs=1, replay_fraction=0.5, max_train_rows=60)
    result = _run(cfg, data, tmp_path / "out", "p-replay", replay_uri=replay_uri)

    assert result.replay_rows == 30  # round(0.5 x 60 capped new rows)
    assert result.train_rows == 90
    trained = pd.read_parquet(result.train_data_uri)
    assert len(trained) == 90 and trained["example_id"].is_unique
    replayed = trained[trained["example_id"].str.startswith("old-")]
    assert len(replayed) == 30
    assert replayed["label"].value_counts().to_dict() == {label: 10 for label in L3}
    capped_new = trained[trained["example_id"].str.startswith("t-")]
    assert capped_new["label"].value_counts().to_dict() == {label: 20 for label in L3}
    assert list(trained.columns) == list(new.columns)
    assert _client(cfg).get_run(result.mlflow_run_id).data.params["replay_rows"] == "30"


def test_replay_from_several_files_counts_each_row_once(fcfg, data, tmp_path: Path) -> None:
    champion = make_frame(L3, 30, seed=9, prefix="old")
    rejected = pd.concat([make_frame(L3, 30, seed=10, prefix="rej"), champion.head(15)], ignore_index=True)
    uris = (write(rejected, tmp_path / "v3" / "train_data.parquet"), write(champion, tmp_path / "v1" / "t.parquet"))
    result = _run(fcfg(epochs=1, replay_fraction=1.0, max_train_rows=60), data, tmp_path / "out", "p-two",
                  replay_uri=uris)  # fmt: skip
    trained = pd.read_parquet(result.train_data_uri)
    assert result.replay_rows == 60 and trained["example_id"].is_unique  # 60 of the 60 distinct pool rows
    prefixes = trained["example_id"].str.split("-").str[0].value_counts().to_dict()
    assert prefixes["old"] == 30 and prefixes["rej"] == 30  # the champion's 30 once, though 15 are in both files


def test_frozen_embeddings_and_lower_layers_keep_their_weights(fcfg, data, tmp_path: Path, tiny_model_dir) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, BertModel

    cfg = fcfg(epochs=1, freeze_embeddings=True, freeze_layers=1)
    result = _run(cfg, data, tmp_path / "out", "p-freeze")

    base = BertModel.from_pretrained(tiny_model_dir).state_dict()
    tuned = AutoModelForSequenceClassification.from_pretrained(result.model_dir).bert.state_dict()
    frozen = [k for k in base if k.startswith(("embeddings.", "encoder.layer.0."))]
    trained = [k for k in base if k.startswith("encoder.layer.1.") and k.endswith("weight")]
    assert frozen and trained
    for k in frozen:
        assert torch.equal(base[k], tuned[k]), k
    assert any(not torch.equal(base[k], tuned[k]) for k in trained)


@pytest.mark.parametrize(
    ("which", "frame", "message"),
    [
        ("train", lambda df: df.drop(columns=["label"]), r"train file .*train\.parquet has no column 'label'"),
        ("val", lambda df: df.drop(columns=["text"]), r"val file .*val\.parquet has no column 'text'"),
        ("train", lambda df: df.iloc[0:0], r"train file .*train\.parquet has no rows"),
        ("val", lambda df: df.iloc[0:0], r"val file .*val\.parquet has no rows"),
    ],
)
def test_bad_input_names_file_and_column(fcfg, data, tmp_path: Path, which, frame, message) -> None:
    uri = data[f"{which}_uri"]
    write(frame(pd.read_parquet(uri)), Path(uri))
    with pytest.raises(TrainingError, match=message):
        _run(fcfg(), data, tmp_path / "out", "p-bad")
    assert not (tmp_path / "out").exists()


def test_missing_file_base_model_or_init_model_are_training_errors(fcfg, data, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"train file .*nope\.parquet cannot be read"):
        _run(fcfg(), {**data, "train_uri": str(tmp_path / "nope.parquet")}, tmp_path / "out", "p-bad")
    with pytest.raises(TrainingError, match=r"finetune\.base_model .*no-model: no such folder"):
        _run(fcfg(base_model=str(tmp_path / "no-model")), data, tmp_path / "out", "p-bad")
    with pytest.raises(TrainingError, match=r"init model models:/no-such-model/1 cannot be downloaded"):
        _run(fcfg(), data, tmp_path / "out", "p-bad", init_model_uri="models:/no-such-model/1")
    assert not (tmp_path / "out").exists()


def test_stratified_sample_keeps_label_shares_and_is_seeded() -> None:
    from pipeline.steps.finetune import label_order, stratified_sample

    df = pd.DataFrame({"label": ["a"] * 50 + ["b"] * 30 + ["c"] * 20, "x": range(100)})
    s = stratified_sample(df, 10, seed=1)
    assert s["label"].value_counts().to_dict() == {"a": 5, "b": 3, "c": 2}
    assert s.equals(stratified_sample(df, 10, seed=1))
    assert not s.equals(stratified_sample(df, 10, seed=2))
    assert s["x"].is_monotonic_increasing  # original order kept
    assert len(stratified_sample(df, 7, seed=1)) == 7
    assert len(stratified_sample(df, 500, seed=1)) == 100
    assert label_order(["z", "a"], {"a", "q", "b", "z"}) == ["z", "a", "b", "q"]


def test_a_cap_keeps_every_class_with_at_least_min_rows_per_class() -> None:
    from pipeline.steps.finetune import stratified_sample

    df = pd.DataFrame({"label": ["a"] * 300 + ["b"] * 100 + ["rare"] * 3, "text": [str(i) for i in range(403)]})
    capped = stratified_sample(df, 40, seed=1, min_per_class=3)
    counts = capped["label"].value_counts().to_dict()
    assert counts["rare"] == 3  # with shares alone it would get round(40 * 3 / 403) = 0
    assert len(capped) == 40 and counts["a"] > counts["b"] > 3
    assert stratified_sample(df, 40, seed=1)["label"].value_counts().get("rare", 0) == 0  # the old behaviour


def test_a_capped_rare_class_is_still_trained_on(fcfg, tmp_path: Path) -> None:
    frame = pd.concat(
        [make_frame(L3[:2], 200, seed=1, prefix="t"), make_frame(["account_access"], 3, seed=3, prefix="r")]
    )
    data = {
        "train_uri": write(frame, tmp_path / "in" / "train.parquet"),
        "val_uri": write(make_frame(L3, 30, seed=2, prefix="v"), tmp_path / "in" / "val.parquet"),
    }
    result = _run(fcfg(epochs=1, max_train_rows=30), data, tmp_path / "out", "p-rare-cap")
    trained = pd.read_parquet(result.train_data_uri)
    assert trained["label"].value_counts()["account_access"] == 3
    assert set(result.labels) == set(L3)


def test_labels_the_new_rows_lack_are_replayed_even_without_a_replay_share(fcfg, tmp_path: Path) -> None:
    data = {
        "train_uri": write(make_frame(L3[:2], 60, seed=1, prefix="t"), tmp_path / "in" / "train.parquet"),
        "val_uri": write(make_frame(L3[:2], 20, seed=2, prefix="v"), tmp_path / "in" / "val.parquet"),
    }
    pool = write(make_frame(L3, 60, seed=4, prefix="old"), tmp_path / "champion" / "train_data.parquet")
    result = _run(fcfg(epochs=1, replay_fraction=0.0), data, tmp_path / "out", "p-cover", replay_uri=pool)
    trained = pd.read_parquet(result.train_data_uri)
    assert trained["label"].value_counts()["account_access"] == 3  # validate.min_rows_per_class
    assert result.replay_rows == 3 and "account_access" in result.labels


def test_a_challenger_that_would_lose_a_label_is_never_trained(fcfg, tmp_path: Path) -> None:
    data = {
        "train_uri": write(make_frame(L3[:2], 60, seed=1, prefix="t"), tmp_path / "in" / "train.parquet"),
        "val_uri": write(make_frame(L3[:2], 20, seed=2, prefix="v"), tmp_path / "in" / "val.parquet"),
    }
    # the champion's training data knows account_access, but every such row is already in the new data
    pool = make_frame(L3, 30, seed=4, prefix="old")
    pool.loc[pool["label"] == "account_access", "example_id"] = [f"t-{i}" for i in range(10)]
    pool_uri = write(pool, tmp_path / "champion" / "train_data.parquet")
    with pytest.raises(TrainingError, match=r"would lose label\(s\) \['account_access'\]"):
        _run(fcfg(epochs=1), data, tmp_path / "out", "p-lose", replay_uri=pool_uri)
    assert not (tmp_path / "out").exists()


def test_a_single_label_training_set_is_refused(fcfg, tmp_path: Path) -> None:
    data = {
        "train_uri": write(make_frame(L3[:1], 30, seed=1, prefix="t"), tmp_path / "in" / "train.parquet"),
        "val_uri": write(make_frame(L3[:1], 10, seed=2, prefix="v"), tmp_path / "in" / "val.parquet"),
    }
    with pytest.raises(TrainingError, match=r"hold 1 label\(s\) \['order_status'\]; a classifier needs at least 2"):
        _run(fcfg(epochs=1), data, tmp_path / "out", "p-one")


KILLED_ATTEMPT = """
import sys, time
from pipeline.config import load_config
from pipeline.steps import finetune
finetune._train = lambda *a, **k: time.sleep(600)  # hang inside training until killed
cfg = load_config(home=sys.argv[1], finetune={"base_model": sys.argv[2], "epochs": 1})
finetune.run(cfg, train_uri=sys.argv[3], val_uri=sys.argv[4], out_dir=sys.argv[5], pipeline_run_id="p-killed")
"""


def test_a_killed_attempt_leaves_no_debris_after_the_next_one(
    fcfg, data, tmp_path: Path, mlflow_home, tiny_model_dir
) -> None:
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            KILLED_ATTEMPT,
            str(mlflow_home),
            str(tiny_model_dir),
            data["train_uri"],
            data["val_uri"],
            str(out),
        ]
    )
    cfg = fcfg(epochs=1)
    client = _client(cfg)
    exp = client.get_experiment_by_name(cfg.tracking.experiment_name).experiment_id
    query = "tags.pipeline_run_id = 'p-killed' and tags.step = 'finetune'"
    deadline = time.time() + 120
    while time.time() < deadline and not client.search_runs([exp], query):
        assert proc.poll() is None, "the attempt ended on its own"
        time.sleep(0.5)
    time.sleep(1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(tmp_path.glob(".out.tmp-*")), "the killed attempt left its staging folder"
    [stale] = client.search_runs([exp], query)
    assert stale.info.status == "RUNNING"

    result = _run(cfg, data, out, "p-killed")  # the next attempt
    assert (out / "_SUCCESS").is_file() and not list(tmp_path.glob(".out.tmp-*"))
    assert client.get_run(stale.info.run_id).info.status == "FAILED"
    assert client.get_run(result.mlflow_run_id).info.status == "FINISHED"


HANGS_AFTER_A_CHECKPOINT = """
import json, sys, time
from pathlib import Path
from pipeline.config import PipelineConfig
from pipeline.modeling import loop
from pipeline.steps import finetune
real_save = loop._save
def save_then_hang(path, state):
    real_save(path, state)
    if state["epoch"] == 2 and state["step"] == 2 and not state["done"]:  # mid-epoch 2
        Path(sys.argv[6]).write_text("saved")
        time.sleep(600)  # killed here, in the middle of an epoch
loop._save = save_then_hang
data = json.loads(Path(sys.argv[1]).read_text())  # the test's own config
cfg = PipelineConfig(**{("validate" if k == "validate_" else k): v for k, v in data.items()})
finetune.run(cfg, train_uri=sys.argv[3], val_uri=sys.argv[4], out_dir=sys.argv[5], pipeline_run_id="p-resume")
"""


def test_a_training_killed_mid_epoch_resumes_from_its_checkpoint_with_the_same_result(
    fcfg, data, tmp_path: Path, mlflow_home, tiny_model_dir
) -> None:
    import signal
    import subprocess
    import sys
    import time

    from safetensors.torch import load_file

    out, marker = tmp_path / "out", tmp_path / "saved"
    cfg = fcfg(epochs=3, checkpoint_every_steps=2, early_stopping_patience=5, precision="fp32",
               freeze_embeddings=True, freeze_layers=1, frozen_cache_mb=64)  # fmt: skip
    (tmp_path / "cfg.json").write_text(cfg.model_dump_json())
    argv = [str(tmp_path / "cfg.json"), str(tiny_model_dir), data["train_uri"], data["val_uri"], str(out), str(marker)]
    proc = subprocess.Popen([sys.executable, "-c", HANGS_AFTER_A_CHECKPOINT, *argv])
    deadline = time.time() + 180
    while not marker.exists():
        assert proc.poll() is None and time.time() < deadline, "the attempt ended before its mid-epoch checkpoint"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (tmp_path / ".out.checkpoints" / "checkpoint.pt").is_file() and not out.exists()

    resumed = _run(cfg, data, out, "p-resume")  # the retry
    plain = _run(cfg, data, tmp_path / "plain", "p-plain")  # never interrupted
    client = _client(cfg)
    run = client.get_run(resumed.mlflow_run_id)
    assert run.data.tags["resumed_from_step"] == "8"  # 6 steps in epoch 1, 2 in epoch 2
    assert run.data.metrics["train_steps"] == client.get_run(plain.mlflow_run_id).data.metrics["train_steps"] == 18
    assert resumed.best_val_macro_f1 == plain.best_val_macro_f1 and resumed.epochs_run == plain.epochs_run == 3
    # epochs 2 and 3 of the plain run skip the frozen bottom (the embeddings and the lowest block)
    assert client.get_run(plain.mlflow_run_id).data.metrics["frozen_cache_batches"] == 12
    a, b = load_file(out / "model" / "model.safetensors"), load_file(tmp_path / "plain" / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a), "resumed weights differ"
    assert not (tmp_path / ".out.checkpoints").exists()  # removed once the step succeeded
    # the killed attempt's run is failed, the retry's holds the whole history, nothing is registered
    exp = run.info.experiment_id
    runs = client.search_runs([exp], "tags.pipeline_run_id = 'p-resume' and tags.step = 'finetune'")
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]
    assert [m.step for m in client.get_metric_history(resumed.mlflow_run_id, "val_macro_f1")] == [1, 2, 3]
    assert not [v for v in client.search_model_versions() if v.run_id in {r.info.run_id for r in runs}]


@pytest.mark.parametrize("budget", [{"max_steps": 4}, {"max_seconds": 0.001}])
def test_a_budget_ends_training_and_says_so(fcfg, data, tmp_path: Path, budget) -> None:
    cfg = fcfg(epochs=3, **budget)
    result = _run(cfg, data, tmp_path / "out", "p-budget")
    run = _client(cfg).get_run(result.mlflow_run_id)
    assert run.data.tags["budget_hit"] == next(iter(budget))
    assert result.epochs_run == 1 and run.data.metrics["train_steps"] == budget.get("max_steps", 1)


def test_bf16_and_fp32_reach_the_same_val_macro_f1(fcfg, data, tmp_path: Path) -> None:
    from pipeline.modeling.precision import bf16_supported

    if not bf16_supported("cpu"):
        pytest.skip("this CPU has no native bf16 matmuls (AVX512-BF16/AMX)")
    f1 = {}
    for p in ("fp32", "bf16"):
        cfg = fcfg(epochs=8, learning_rate=5e-3, early_stopping_patience=8, precision=p)
        result = _run(cfg, data, tmp_path / p, f"p-{p}")
        f1[p] = result.best_val_macro_f1
        assert _client(cfg).get_run(result.mlflow_run_id).data.params["precision_resolved"] == p
    assert f1["fp32"] > 0.5 and abs(f1["bf16"] - f1["fp32"]) <= 0.01, f1


def test_an_explicit_bf16_on_hardware_without_it_is_one_clear_error(monkeypatch) -> None:
    from pipeline.modeling import precision

    monkeypatch.setattr(precision, "bf16_supported", lambda device: False)
    with pytest.raises(TrainingError, match=r"^finetune.precision bf16: the cpu has no native bf16") as e:
        precision.resolve("bf16", "cpu")
    assert "\n" not in str(e.value)
    assert precision.resolve("auto", "cpu") == "fp32"


def test_length_grouping_cuts_padding_and_the_order_is_a_function_of_seed_and_epoch() -> None:
    import numpy as np

    from pipeline.modeling.batching import epoch_batches, padding_ratio

    rng = np.random.default_rng(0)
    lengths = [int(x) for x in rng.integers(4, 64, size=2000)]
    grouped = epoch_batches(lengths, 16, seed=1, epoch=1)
    plain = epoch_batches(lengths, 16, seed=1, epoch=1, group_by_length=False)
    assert sorted(i for b in grouped for i in b) == list(range(2000))  # every row once
    assert padding_ratio(lengths, grouped) < 1.15 < 1.5 < padding_ratio(lengths, plain)
    assert grouped == epoch_batches(lengths, 16, seed=1, epoch=1)
    assert grouped != epoch_batches(lengths, 16, seed=1, epoch=2)


def test_lora_trains_adapters_only_and_serves_a_merged_plain_model(fcfg, data, tmp_path: Path, tiny_model_dir) -> None:
    import mlflow
    from safetensors.torch import load_file

    cfg = fcfg(epochs=6, strategy="lora", lora_r=4, lora_alpha=8, learning_rate=5e-3, early_stopping_patience=6)
    result = _run(cfg, data, tmp_path / "out", "p-lora")
    run = _client(cfg).get_run(result.mlflow_run_id)
    assert run.data.params["strategy"] == "lora"
    assert int(run.data.params["trainable_params"]) < int(run.data.params["frozen_params"]) / 5
    saved = load_file(tmp_path / "out" / "model" / "model.safetensors")
    assert not [k for k in saved if "lora" in k or "base_layer" in k]  # merged: plain transformers names
    base = {f"bert.{k}": v for k, v in load_file(tiny_model_dir / "model.safetensors").items()}  # a bare BertModel
    query, key = "bert.encoder.layer.0.attention.self.query.weight", "bert.encoder.layer.0.attention.self.key.weight"
    assert not bool((saved[query] == base[query]).all()), "the adapters were not merged into the query weights"
    assert bool((saved[key] == base[key]).all()), "a module without adapters changed"
    model = mlflow.pyfunc.load_model(result.model_uri)
    pred = model.predict(pd.DataFrame({"text": ["i want a refund please", "password reset help"]}))
    assert len(pred) == 2 and set(pred["label"]) <= set(L3)  # a random tiny body: quality is the benchmark's job


def test_balanced_class_weights_up_weight_the_rare_class() -> None:
    import numpy as np

    from pipeline.modeling.loop import class_weights

    w = class_weights(np.array([0] * 90 + [1] * 10), 3, "balanced")
    assert w is not None and w[1] / w[0] == pytest.approx(9.0) and float(w[2]) == 0.0
    assert class_weights(np.array([0, 1]), 2, "none") is None


def test_replay_balanced_by_period_keeps_an_old_seasons_share() -> None:
    from pipeline.data.sampling import balanced_by_period

    recent = make_frame(L3, 300, seed=1, prefix="new").assign(timestamp=pd.Timestamp("2025-07-01", tz="UTC"))
    old = make_frame(L3, 30, seed=2, prefix="old").assign(timestamp=pd.Timestamp("2025-01-15", tz="UTC"))
    pool = pd.concat([recent, old], ignore_index=True)
    picked = balanced_by_period(pool, 40, seed=0)
    assert len(picked) == 40
    assert picked["example_id"].str.startswith("old").sum() == 20  # half, though the old quarter is 9% of the pool
    assert set(picked[picked["example_id"].str.startswith("old")]["label"]) == set(L3)  # stratified within
    few = balanced_by_period(pool, 100, seed=0)
    assert few["example_id"].str.startswith("old").sum() == 30  # all it has; the rest from the recent quarter
    assert len(few) == 100


def test_a_search_runs_nested_trials_and_fits_with_the_best(fcfg, data, tmp_path: Path) -> None:
    cfg = fcfg(epochs=2, search_trials=4, search_max_freeze_layers=1)
    result = _run(cfg, data, tmp_path / "out", "p-search")
    client = _client(cfg)
    parent = client.get_run(result.mlflow_run_id)
    trials = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(int(t.data.tags["search_trial"]) for t in trials) == [0, 1, 2, 3]
    finished = [t for t in trials if t.info.status == "FINISHED"]
    best = max(t.data.metrics["best_val_macro_f1"] for t in finished)
    assert parent.data.metrics["search_best_val_macro_f1"] == pytest.approx(best)
    # optuna's best trial: the first (by number) of those with the best value
    winner = min((t for t in finished if t.data.metrics["best_val_macro_f1"] == best),
                 key=lambda t: int(t.data.tags["search_trial"]))  # fmt: skip
    for key in ("learning_rate", "head_lr_multiplier", "freeze_layers"):  # the final fit used the winner's values
        assert float(parent.data.params[key]) == pytest.approx(float(winner.data.params[key]))
        assert parent.data.params[f"search_best_{key}"] == winner.data.params[key]
    assert "search/trials.csv" in [a.path for a in client.list_artifacts(parent.info.run_id, "search")]


def test_engine_errors_are_one_line(fcfg, data, tmp_path: Path) -> None:
    import json
    import shutil

    import mlflow

    from pipeline import tracking
    from pipeline.modeling.pyfunc import log_intent_model

    def one_line(match: str, cfg, d, **kw) -> None:
        with pytest.raises(TrainingError, match=match) as e:
            _run(cfg, d, tmp_path / "out", "p-err", **kw)
        assert "\n" not in str(e.value)

    one_line(r"finetune: model no-org/no-such-model cannot be loaded", fcfg(base_model="no-org/no-such-model"), data)
    empty = write(make_frame(L3, 3, seed=1, prefix="t").iloc[0:0], tmp_path / "in" / "empty.parquet")
    one_line(r"train file .*empty\.parquet has no rows", fcfg(), {**data, "train_uri": empty})
    # a champion whose head's label map disagrees with its metadata (config.json edited by hand)
    champion = _run(fcfg(epochs=1), data, tmp_path / "champ", "p-champ")
    broken = tmp_path / "broken"
    shutil.copytree(champion.model_dir, broken)
    conf = json.loads((broken / "config.json").read_text())
    conf["id2label"] = {"0": L3[1], "1": L3[0], "2": L3[2]}
    conf["label2id"] = {v: int(k) for k, v in conf["id2label"].items()}
    (broken / "config.json").write_text(json.dumps(conf))
    cfg = fcfg(epochs=1)
    tracking.configure(cfg)
    with mlflow.start_run():
        uri = log_intent_model(broken).model_uri
    one_line(r"label map of models:/.* does not match the champion's labels: .*output 0 is 'refund_request'", cfg,
             data, init_model_uri=uri)  # fmt: skip
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("scheduler", ["cosine_with_restarts", "polynomial"])
def test_gradient_accumulation_counts_optimizer_steps_and_every_schedule_runs(
    fcfg, data, tmp_path: Path, scheduler
) -> None:
    cfg = fcfg(epochs=2, gradient_accumulation_steps=2, lr_scheduler=scheduler, early_stopping_patience=2)
    result = _run(cfg, data, tmp_path / "out", f"p-accum-{scheduler}")
    run = _client(cfg).get_run(result.mlflow_run_id)
    assert run.data.metrics["train_steps"] == 2 * 3  # 90 rows / 16 = 6 batches = 3 optimizer steps per epoch
    assert run.data.params["lr_scheduler"] == scheduler and result.epochs_run == 2
