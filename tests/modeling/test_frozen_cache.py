"""The frozen bottom's kept outputs: later epochs skip it and end with the weights of a run without it."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch

from pipeline.config import load_config
from pipeline.modeling import loop
from pipeline.modeling.frozen_cache import FrozenCache, frozen_bottom
from pipeline.modeling.surgery import adapt, load_start, seed_everything
from pipeline.modeling.tiny import build_tiny_bert

LABELS = ["order", "refund", "login"]
TEXTS = {
    "order": "where is my order package",
    "refund": "i want my money back refund",
    "login": "can not login password",
}


@pytest.fixture(scope="module")
def three_layers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert-3"), layers=3)


def _frame(n: int, seed: int) -> pd.DataFrame:
    words = "please help the coat item it".split()
    rows = []
    for i in range(n):
        label = LABELS[i % 3]
        extra = " ".join(words[(i * 7 + seed + k) % len(words)] for k in range((i * 5 + seed) % 6))
        rows.append({"text": f"{TEXTS[label]} {extra}".strip(), "label": label})
    return pd.DataFrame(rows)


def _train(model_dir: Path, tmp_path: Path, **ft: object) -> tuple[loop.Outcome, dict[str, torch.Tensor]]:
    cfg = load_config(home=str(tmp_path / "home"), finetune={"epochs": 3, "batch_size": 8, "learning_rate": 5e-3,
                                                            "early_stopping_patience": 3, "precision": "fp32", **ft})  # fmt: skip
    seed_everything(cfg.finetune.seed)
    tok, model, _ = load_start(str(model_dir), LABELS, warm=False, name="tiny")
    model, _ = adapt(model, strategy="freeze", embeddings=True, layers=cfg.finetune.freeze_layers, lora={})
    index = {lab: i for i, lab in enumerate(LABELS)}
    out = loop.train(model, loop.encode(tok, _frame(60, 1), index, 32), loop.encode(tok, _frame(21, 2), index, 32),
                     cfg.finetune, pad_id=tok.pad_token_id, device="cpu")  # fmt: skip
    return out, {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_later_epochs_skip_the_frozen_bottom_and_end_with_the_same_weights(
    three_layers: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(mlflow, "log_metrics", lambda *a, **k: None)  # no run, no MLflow state left behind
    cached, a = _train(three_layers, tmp_path, freeze_layers=1, frozen_cache_mb=64)
    # the same run that never replays (the frozen bottom still in eval mode): every epoch computes it
    monkeypatch.setattr(FrozenCache, "covers", lambda self, idx: False)
    plain, b = _train(three_layers, tmp_path, freeze_layers=1, frozen_cache_mb=64)
    assert cached.cached_batches == 2 * 8 and plain.cached_batches == 0  # epochs 2 and 3: 8 batches each
    assert a.keys() == b.keys()
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert worst < 1e-5, worst
    assert [h["val_macro_f1"] for h in cached.history] == [h["val_macro_f1"] for h in plain.history]
    assert any(float((a[k] - b0).abs().max()) > 0 for k, b0 in _start_weights(three_layers).items() if k in a)


def _start_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    seed_everything(11)
    _, model, _ = load_start(str(model_dir), LABELS, warm=False, name="tiny")
    return {k: v for k, v in model.state_dict().items() if "encoder.layer.2" in k}


def test_nothing_is_cached_without_a_frozen_block_or_with_lora(three_layers: Path) -> None:
    _, model, _ = load_start(str(three_layers), LABELS, warm=False, name="tiny")
    unfrozen, _ = adapt(model, strategy="freeze", embeddings=True, layers=0, lora={})
    assert frozen_bottom(unfrozen) == (None, [])
    _, model, _ = load_start(str(three_layers), LABELS, warm=False, name="tiny")
    lora, _ = adapt(model, strategy="lora", embeddings=True, layers=2,
                    lora={"r": 2, "alpha": 4, "dropout": 0.0, "targets": ["query", "value"]})  # fmt: skip
    assert frozen_bottom(lora) == (None, [])
    _, model, _ = load_start(str(three_layers), LABELS, warm=False, name="tiny")
    two, _ = adapt(model, strategy="freeze", embeddings=True, layers=2, lora={})
    embeddings, blocks = frozen_bottom(two)
    assert embeddings is not None and len(blocks) == 2


def test_off_by_default_the_frozen_layers_keep_their_dropout(three_layers: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(mlflow, "log_metrics", lambda *a, **k: None)  # no run, no MLflow state left behind
    seen: list[bool] = []
    monkeypatch.setattr(FrozenCache, "step", _spy(FrozenCache.step, seen))
    out, _ = _train(three_layers, tmp_path, freeze_layers=1)
    assert out.cached_batches == 0 and seen and all(seen)  # the frozen block was in train mode throughout


def _spy(step, seen: list[bool]):
    def wrapped(self, idx):
        seen.append(self.model.bert.encoder.layer[0].training)
        return step(self, idx)

    return wrapped
