"""The training loop: seeded AdamW with a warm-up schedule, per-epoch validation, early stopping.

No MLflow run handling beyond logging the per-epoch metrics to the active run.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from sklearn.metrics import accuracy_score, f1_score
from torch import nn
from tqdm import tqdm

from pipeline.config import FinetuneConfig

log = logging.getLogger(__name__)

PROGRESS_SECONDS = 10.0  # tqdm refresh interval: a line every ~10 s keeps Airflow task logs readable
MAX_GRAD_NORM = 1.0  # the Hugging Face Trainer's default clipping


@dataclass
class Encoded:
    ids: list[list[int]]
    labels: np.ndarray


@dataclass
class Outcome:
    epochs_run: int = 0
    stopped_early: bool = False
    best_epoch: int = 0
    best_val_macro_f1: float = -1.0
    best_val_accuracy: float = 0.0
    best_state: dict[str, torch.Tensor] | None = None
    train_seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)


def encode(tokenizer: Any, df: pd.DataFrame, label_index: dict[str, int], max_length: int) -> Encoded:
    """Tokenize once, unpadded: batches are padded to their own longest row."""
    ids = tokenizer(df["text"].tolist(), truncation=True, max_length=max_length)["input_ids"]
    return Encoded(ids=list(ids), labels=df["label"].map(label_index).to_numpy(dtype=np.int64))


def _collate(rows: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        input_ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        attention_mask[i, : len(r)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def logits(model: Any, data: Encoded, *, batch_size: int, pad_id: int, device: str) -> np.ndarray:
    """Logits (rows × classes, float64) per row (rows batched by length, returned in input order)."""
    model.eval()
    order = sorted(range(len(data.ids)), key=lambda i: len(data.ids[i]))
    out: np.ndarray | None = None
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = {k: v.to(device) for k, v in _collate([data.ids[i] for i in idx], pad_id).items()}
            z = model(**batch).logits.float().cpu().numpy()
            if out is None:
                out = np.zeros((len(order), z.shape[1]), dtype=np.float64)
            out[idx] = z
    return np.zeros((0, 0)) if out is None else out


def _predict(model: Any, data: Encoded, *, batch_size: int, pad_id: int, device: str) -> np.ndarray:
    """Arg-max class index per row (rows batched by length, returned in input order)."""
    z = logits(model, data, batch_size=batch_size, pad_id=pad_id, device=device)
    return z.argmax(axis=1).astype(np.int64) if z.size else np.zeros(len(data.ids), dtype=np.int64)


HEAD_PREFIXES = ("classifier", "score", "pre_classifier", "bert.pooler", "pooler")


def train(model: Any, train: Encoded, val: Encoded, ft: FinetuneConfig, *, pad_id: int, device: str) -> Outcome:
    """Seeded AdamW loop with warm-up schedule, per-epoch validation and early stopping on val macro-F1.

    Early stopping: training ends after ``early_stopping_patience + 1`` consecutive epochs without a
    strict macro-F1 gain (patience 0: the first epoch without gain ends it). The best epoch's weights
    are kept in ``best_state``.
    """
    from transformers import get_scheduler

    generator = torch.Generator().manual_seed(ft.seed)
    indices = list(range(len(train.ids)))
    loader: torch.utils.data.DataLoader[Any] = torch.utils.data.DataLoader(
        indices,  # type: ignore[arg-type]  # a list is a map-style dataset
        batch_size=ft.batch_size,
        shuffle=True,
        generator=generator,
        collate_fn=lambda idx: (
            _collate([train.ids[i] for i in idx], pad_id),
            torch.as_tensor(train.labels[idx], dtype=torch.long),
        ),
    )
    params = [p for p in model.parameters() if p.requires_grad]
    # the pooler and classifier start (partly) random: they learn faster than the pretrained body
    head = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith(HEAD_PREFIXES)]
    head_ids = {id(p) for p in head}
    body = [p for p in params if id(p) not in head_ids]
    optimizer = torch.optim.AdamW(
        [{"params": body, "lr": ft.learning_rate}, {"params": head, "lr": ft.learning_rate * ft.head_lr_multiplier}],
        weight_decay=ft.weight_decay,
    )
    total_steps = ft.epochs * len(loader)
    warmup_steps = int(round(ft.warmup_ratio * total_steps))
    # plain "constant" ignores warm-up in transformers; honour warmup_ratio for it too
    scheduler_name = "constant_with_warmup" if ft.lr_scheduler == "constant" and warmup_steps else ft.lr_scheduler
    scheduler = get_scheduler(scheduler_name, optimizer, num_warmup_steps=warmup_steps, num_training_steps=total_steps)
    model.to(device)
    out = Outcome()
    bad_epochs = 0
    for epoch in range(1, ft.epochs + 1):
        started = time.perf_counter()
        model.train()
        loss_sum, seen = 0.0, 0
        bar = tqdm(
            loader,
            desc=f"finetune epoch {epoch}/{ft.epochs}",
            unit="batch",
            file=sys.stdout,  # Airflow logs task stdout at INFO (stderr shows as ERROR)
            mininterval=PROGRESS_SECONDS,
            disable=False,  # tqdm's auto-disable would hide it in Airflow logs (stderr is not a TTY)
        )
        for batch, y in bar:
            batch = {k: v.to(device) for k, v in batch.items()}
            y = y.to(device)
            logits = model(**batch).logits
            loss = nn.functional.cross_entropy(logits, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += float(loss.detach()) * len(y)
            seen += len(y)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", refresh=False)
        bar.close()
        train_seconds = time.perf_counter() - started
        pred = _predict(model, val, batch_size=max(ft.batch_size, 64), pad_id=pad_id, device=device)
        val_acc = float(accuracy_score(val.labels, pred))
        val_f1 = float(f1_score(val.labels, pred, average="macro", zero_division=0))
        epoch_seconds = time.perf_counter() - started
        out.train_seconds += train_seconds
        metrics = {
            "train_loss": loss_sum / max(seen, 1),
            "val_accuracy": val_acc,
            "val_macro_f1": val_f1,
            "learning_rate": float(scheduler.get_last_lr()[0]),
            "epoch_seconds": epoch_seconds,
            "samples_per_second": seen / train_seconds if train_seconds > 0 else 0.0,
        }
        mlflow.log_metrics(metrics, step=epoch)
        out.history.append(metrics)
        out.epochs_run = epoch
        log.info(
            "epoch %d/%d: loss %.4f, val acc %.4f, val macro-F1 %.4f, lr %.2e, %.1f s, %.1f samples/s",
            epoch, ft.epochs, metrics["train_loss"], val_acc, val_f1, metrics["learning_rate"],
            epoch_seconds, metrics["samples_per_second"],
        )  # fmt: skip
        if val_f1 > out.best_val_macro_f1:
            out.best_val_macro_f1, out.best_val_accuracy, out.best_epoch = val_f1, val_acc, epoch
            out.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            bad_epochs = 0
        else:
            bad_epochs += 1
            if bad_epochs > ft.early_stopping_patience and epoch < ft.epochs:
                out.stopped_early = True
                log.info("early stop: no val macro-F1 gain for %d epoch(s) after epoch %d", bad_epochs, out.best_epoch)
                break
    return out
