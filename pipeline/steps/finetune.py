"""Fine-tune step: train the challenger on the new window (plus replayed older rows) and log it to MLflow.

Starting point: the champion's weights when ``finetune.warm_start`` is on and the caller passes
``init_model_uri``, else the base model (``finetune.base_model``) with a fresh classification head.
When warm-starting, the label order is the champion's followed by any new labels (sorted), so a new
intent that shows up in a later season grows the head instead of reshuffling it; a cold start sorts
the labels. ``finetune.max_train_rows`` caps the new rows (stratified) before replayed rows are added.

Writes under ``out_dir``:

- ``model/``: the Hugging Face folder (weights, config, tokenizer) plus ``intent_model.json``
  (label order, ``max_length``); the same folder is logged to MLflow as a pyfunc model.
- ``train_data.parquet``: the rows trained on (new rows, then replayed ones); the next drift
  reference and the next run's replay pool.
- ``_SUCCESS``: the :class:`FinetuneResult` as JSON, written last.

Retry safety: a finished ``out_dir`` is returned as recorded, without training. Otherwise everything
is staged in a hidden sibling folder and renamed into place at the end, and each attempt opens its
own MLflow child run, so an attempt that crashed leaves a FAILED run and no half-written folder.
"""

from __future__ import annotations

import logging
import random
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from sklearn.metrics import accuracy_score, f1_score
from torch import nn
from tqdm import tqdm

from pipeline import storage, tracking
from pipeline.config import FinetuneConfig, PipelineConfig
from pipeline.errors import TrainingError
from pipeline.modeling.base import resolve_base_model
from pipeline.modeling.pyfunc import load_hf_from_model_uri, log_intent_model, read_model_meta, write_model_meta
from pipeline.paths import local_path
from pipeline.results import FinetuneResult

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("text", "label")
MODEL_SUBDIR = "model"
TRAIN_DATA_FILE = "train_data.parquet"
PROGRESS_SECONDS = 10.0  # tqdm refresh interval: a line every ~10 s keeps Airflow task logs readable
MAX_GRAD_NORM = 1.0  # the Hugging Face Trainer's default clipping


# ---------------------------------------------------------------- data


def _read_frame(uri: str, role: str) -> pd.DataFrame:
    """A curated parquet file with non-null ``text`` and ``label``; TrainingError naming the file otherwise."""
    try:
        df = pd.read_parquet(local_path(uri))
    except (OSError, ValueError) as exc:
        raise TrainingError(f"finetune: {role} file {uri} cannot be read ({exc})") from exc
    for column in REQUIRED_COLUMNS:
        if column not in df.columns:
            raise TrainingError(f"finetune: {role} file {uri} has no column '{column}' (columns: {list(df.columns)})")
    if df.empty:
        raise TrainingError(f"finetune: {role} file {uri} has no rows")
    for column in REQUIRED_COLUMNS:
        nulls = int(df[column].isna().sum())
        if nulls:
            raise TrainingError(f"finetune: {role} file {uri} column '{column}' has {nulls} null values")
    df = df.reset_index(drop=True)
    df["label"] = df["label"].astype(str)
    df["text"] = df["text"].astype(str)
    return df


def stratified_sample(df: pd.DataFrame, n: int, *, seed: int, min_per_class: int = 0) -> pd.DataFrame:
    """``n`` rows of ``df`` keeping each label's share (largest-remainder rounding), in original order.

    Every class keeps at least ``min_per_class`` rows (all of it when it has fewer), so a cap never
    silently drops a rare class; the rest of ``n`` is shared out by the classes' remaining rows. The
    result has more than ``n`` rows only when the floors alone exceed ``n``. Deterministic for a given
    ``seed``; returns all rows when ``n >= len(df)``.
    """
    if n >= len(df):
        return df.reset_index(drop=True)
    if n <= 0 and min_per_class <= 0:
        return df.iloc[0:0].reset_index(drop=True)
    counts = df["label"].value_counts().sort_index()
    floors = counts.clip(upper=max(min_per_class, 0))
    rest = counts - floors
    budget = max(n - int(floors.sum()), 0)
    exact = rest * budget / rest.sum() if rest.sum() else rest.astype(float)
    alloc = np.floor(exact).astype(int)
    short = budget - int(alloc.sum())
    # ties broken by label name: the sort is stable over a sorted index
    for label in (exact - alloc).sort_values(ascending=False, kind="stable").index[:short]:
        alloc[label] += 1
    alloc = alloc + floors
    parts = [df[df["label"] == label].sample(n=int(k), random_state=seed) for label, k in alloc.items() if k > 0]
    return pd.concat(parts).sort_index().reset_index(drop=True)


def _replay_rows(
    replay_uri: str | None, n: int, exclude_ids: set[str], seed: int, cover: dict[str, int]
) -> pd.DataFrame | None:
    """Up to ``n`` rows of the champion's training data, stratified, without ids already in the new data,
    plus, for each label in ``cover``, rows of that label up to the count given: the labels the new
    rows lack, so that the challenger keeps every label the champion knows (even with ``n`` = 0)."""
    if not replay_uri or (n <= 0 and not cover):
        return None
    pool = _read_frame(replay_uri, "replay")
    if "example_id" in pool.columns and exclude_ids:
        before = len(pool)
        pool = pool[~pool["example_id"].astype(str).isin(exclude_ids)]
        log.info(
            "replay pool %s: %d rows, %d dropped as already in the new data", replay_uri, before, before - len(pool)
        )
    pool = pool.reset_index(drop=True)
    base = stratified_sample(pool.assign(_row=pool.index), max(n, 0), seed=seed)
    chosen = set(base["_row"])
    extra = []
    for label, need in sorted(cover.items()):
        have = int((base["label"] == label).sum())
        candidates = pool[(pool["label"] == label) & ~pool.index.isin(chosen)]
        k = min(max(need - have, 0), len(candidates))
        if k:
            extra.append(candidates.sample(n=k, random_state=seed))
            log.info("replay: %d extra row(s) of label %r, which the new rows lack", k, label)
    out = pd.concat([base.drop(columns="_row"), *extra], ignore_index=True) if extra else base.drop(columns="_row")
    return out.reset_index(drop=True)


def required_labels(
    champion_labels: Iterable[str], configured: Iterable[str], window_labels: Iterable[str]
) -> set[str]:
    """Labels the challenger must know and have training rows for: every label of the champion, and
    every configured label present in the window."""
    return set(champion_labels) | (set(configured) & set(window_labels))


def label_order(previous: Sequence[str], seen: Iterable[str]) -> list[str]:
    """The champion's labels in their order, then labels not seen before, sorted."""
    known = list(previous)
    return known + sorted(set(seen) - set(known))


def _labels_of(uri: str | None) -> list[str]:
    """The distinct labels of a curated file (the champion's training data), sorted; [] without one."""
    if not uri:
        return []
    return sorted(_read_frame(uri, "replay")["label"].unique())


# ---------------------------------------------------------------- model surgery


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _output_linear(model: nn.Module, n_out: int) -> tuple[nn.Module, str, nn.Linear]:
    """(parent, attribute, layer) of the classifier's output projection: the last Linear with ``n_out`` outputs."""
    found: tuple[str, nn.Linear] | None = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module.out_features == n_out:
            found = (name, module)
    if found is None:
        raise TrainingError(f"finetune: no output layer with {n_out} outputs in {type(model).__name__}")
    name, layer = found
    parent_name, _, attr = name.rpartition(".")
    return model.get_submodule(parent_name) if parent_name else model, attr, layer


def grow_classifier_head(model: Any, labels: Sequence[str]) -> int:
    """Extend the output layer to ``labels`` (a superset, old labels first); return the number of new rows.

    Old rows keep their weights; new rows are drawn like a fresh head (normal with the config's
    ``initializer_range``, zero bias), so the champion's predictions for known labels start unchanged.
    """
    old_n = int(model.config.num_labels)
    new_n = len(labels)
    if new_n > old_n:
        parent, attr, old = _output_linear(model, old_n)
        new = nn.Linear(old.in_features, new_n, bias=old.bias is not None).to(old.weight.device, old.weight.dtype)
        with torch.no_grad():
            std = float(getattr(model.config, "initializer_range", 0.02))
            new.weight.normal_(mean=0.0, std=std)
            new.weight[:old_n] = old.weight
            if old.bias is not None:
                new.bias.zero_()
                new.bias[:old_n] = old.bias
        setattr(parent, attr, new)
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {label: i for i, label in enumerate(labels)}
    model.num_labels = new_n
    return max(new_n - old_n, 0)


def encoder_layers(model: Any) -> nn.ModuleList:
    """The stack of transformer blocks (BERT ``encoder.layer``, others ``layers``/``h``/...), found generically.

    It is the first ModuleList inside the base model with ``config.num_hidden_layers`` entries.
    """
    n = getattr(model.config, "num_hidden_layers", None)
    base = getattr(model, "base_model", model)
    for module in base.modules():
        if isinstance(module, nn.ModuleList) and (n is None or len(module) == n):
            return module
    raise TrainingError(f"finetune.freeze_layers: no encoder layer list found in {type(model).__name__}")


def freeze(model: Any, *, embeddings: bool, layers: int) -> int:
    """Freeze the embeddings and the lowest ``layers`` encoder blocks; return the number of frozen parameters."""
    modules: list[nn.Module] = []
    if embeddings:
        embedding_module = getattr(getattr(model, "base_model", model), "embeddings", None)
        modules.append(embedding_module if embedding_module is not None else model.get_input_embeddings())
    if layers > 0:
        stack = encoder_layers(model)
        if layers > len(stack):
            log.warning("finetune.freeze_layers=%d but the model has %d layers: all frozen", layers, len(stack))
        modules.extend(list(stack)[:layers])
    frozen = 0
    for module in modules:
        for p in module.parameters():
            if p.requires_grad:
                p.requires_grad_(False)
                frozen += p.numel()
    return frozen


def _load_start(start_dir: str, labels: list[str], *, warm: bool, name: str) -> tuple[Any, Any, int]:
    """(tokenizer, model, new head rows) for the starting point at ``start_dir``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(start_dir)
        if warm:
            model = AutoModelForSequenceClassification.from_pretrained(start_dir)
            grown = grow_classifier_head(model, labels)
        else:
            model = AutoModelForSequenceClassification.from_pretrained(
                start_dir,
                num_labels=len(labels),
                id2label=dict(enumerate(labels)),
                label2id={label: i for i, label in enumerate(labels)},
                ignore_mismatched_sizes=True,  # a base that already has a head of another size gets a fresh one
            )
            grown = len(labels)
    except (OSError, ValueError) as exc:
        raise TrainingError(f"finetune: model {name} cannot be loaded from {start_dir} ({exc})") from exc
    return tokenizer, model, grown


# ---------------------------------------------------------------- training loop


@dataclass
class _Encoded:
    ids: list[list[int]]
    labels: np.ndarray


@dataclass
class _Outcome:
    epochs_run: int = 0
    stopped_early: bool = False
    best_epoch: int = 0
    best_val_macro_f1: float = -1.0
    best_val_accuracy: float = 0.0
    best_state: dict[str, torch.Tensor] | None = None
    train_seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)


def _encode(tokenizer: Any, df: pd.DataFrame, label_index: dict[str, int], max_length: int) -> _Encoded:
    """Tokenize once, unpadded: batches are padded to their own longest row."""
    ids = tokenizer(df["text"].tolist(), truncation=True, max_length=max_length)["input_ids"]
    return _Encoded(ids=list(ids), labels=df["label"].map(label_index).to_numpy(dtype=np.int64))


def _collate(rows: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        input_ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        attention_mask[i, : len(r)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def _predict(model: Any, data: _Encoded, *, batch_size: int, pad_id: int, device: str) -> np.ndarray:
    """Arg-max class index per row (rows batched by length, returned in input order)."""
    model.eval()
    order = sorted(range(len(data.ids)), key=lambda i: len(data.ids[i]))
    out = np.zeros(len(order), dtype=np.int64)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = {k: v.to(device) for k, v in _collate([data.ids[i] for i in idx], pad_id).items()}
            out[idx] = model(**batch).logits.argmax(dim=-1).cpu().numpy()
    return out


HEAD_PREFIXES = ("classifier", "score", "pre_classifier", "bert.pooler", "pooler")


def _train(model: Any, train: _Encoded, val: _Encoded, ft: FinetuneConfig, *, pad_id: int, device: str) -> _Outcome:
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
    out = _Outcome()
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


# ---------------------------------------------------------------- the step


def run(
    cfg: PipelineConfig,
    *,
    train_uri: str,
    val_uri: str,
    out_dir: str,
    pipeline_run_id: str,
    init_model_uri: str | None = None,
    replay_uri: str | None = None,
) -> FinetuneResult:
    """Fine-tune, log the model to MLflow and return where everything is.

    ``train_rows`` in the result counts the rows trained on (new + replayed, as in
    ``train_data.parquet``); ``replay_rows`` the replayed share. ``model_uri`` is the logged
    model's URI (``models:/m-...``); ``mlflow_run_id`` the finetune child run.
    Raises :class:`TrainingError` for an unreadable or empty file, a missing column, or a base model
    that cannot be found.
    """
    done = storage.load_done(out_dir, FinetuneResult)
    if done is not None:
        log.info("finetune already finished in %s: %s (not retrained)", out_dir, done.model_uri)
        return done

    ft = cfg.finetune
    final = Path(out_dir)
    new = _read_frame(train_uri, "train")
    val = _read_frame(val_uri, "val")
    log.info("finetune: read train %s (%d rows), val %s (%d rows)", train_uri, len(new), val_uri, len(val))
    new_available = len(new)
    # ids of the whole new window (before the cap) and of val: none of them may come back as replay
    exclude: set[str] = set()
    for df in (new, val):
        if "example_id" in df.columns:
            exclude |= set(df["example_id"].astype(str))
    min_per_class = cfg.validate_cfg.min_rows_per_class
    if ft.max_train_rows is not None and len(new) > ft.max_train_rows:
        new = stratified_sample(new, ft.max_train_rows, seed=ft.seed, min_per_class=min_per_class)
        log.info(
            "finetune.max_train_rows: %d of %d new rows kept (stratified, at least %d per class)",
            len(new),
            new_available,
            min_per_class,
        )
    pool_labels = _labels_of(replay_uri)
    new_counts = new["label"].value_counts()
    cover = {lab: min_per_class or 1 for lab in pool_labels if int(new_counts.get(lab, 0)) < (min_per_class or 1)}
    replay = _replay_rows(replay_uri, int(round(ft.replay_fraction * len(new))), exclude, ft.seed, cover)
    replay_rows = 0 if replay is None else len(replay)
    train = (
        new
        if replay is None or not replay_rows
        else pd.concat([new, replay.reindex(columns=new.columns)], ignore_index=True)
    )
    if replay_rows:
        log.info("replay: %d rows from %s", replay_rows, replay_uri)
    if train["label"].nunique() < 2:
        raise TrainingError(
            f"finetune: the training rows of {train_uri} hold {train['label'].nunique()} label(s) "
            f"{sorted(train['label'].unique())}; a classifier needs at least 2"
        )

    warm_from = init_model_uri if ft.warm_start and init_model_uri else None
    base_dir = None if warm_from else resolve_base_model(ft.base_model)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    previous_threads = torch.get_num_threads()
    if ft.num_threads:
        torch.set_num_threads(ft.num_threads)
    try:
        with (
            storage.staged_dir(final) as stage,
            tracking.step_run(cfg, pipeline_run_id, "finetune") as active,
            tempfile.TemporaryDirectory(prefix="finetune-init-") as init_tmp,
        ):
            run_id = active.info.run_id
            if warm_from:
                try:
                    start_dir = load_hf_from_model_uri(warm_from, init_tmp)
                except (MlflowException, OSError, ValueError) as exc:
                    raise TrainingError(f"finetune: init model {warm_from} cannot be downloaded ({exc})") from exc
                old_labels = read_model_meta(start_dir)["labels"]
            else:
                assert base_dir is not None
                start_dir, old_labels = base_dir, []
            labels = label_order(old_labels, set(train["label"]) | set(val["label"]))
            need = required_labels(
                [*old_labels, *pool_labels], cfg.validate_cfg.labels, set(new["label"]) | set(val["label"])
            )
            missing = sorted(need - set(train["label"]))
            if missing:
                raise TrainingError(
                    f"finetune: the challenger would lose label(s) {missing}: the champion knows them or the window "
                    f"holds them, but no training row has them (replay pool: {replay_uri or 'none'}); "
                    "a model that silently forgets a label is never trained"
                )
            _seed_everything(ft.seed)
            tokenizer, model, new_head_rows = _load_start(
                start_dir, labels, warm=bool(warm_from), name=warm_from or ft.base_model
            )
            frozen = freeze(model, embeddings=ft.freeze_embeddings, layers=ft.freeze_layers)
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            label_index = {label: i for i, label in enumerate(labels)}
            mlflow.log_params(
                {
                    **ft.model_dump(),
                    "new_train_rows_available": new_available,
                    "new_train_rows": len(new),
                    "replay_rows": replay_rows,
                    "train_rows": len(train),
                    "val_rows": len(val),
                    "start_point": warm_from or f"base:{ft.base_model}",
                    "labels": ",".join(labels),
                    "num_labels": len(labels),
                    "new_head_rows": new_head_rows,
                    "frozen_params": frozen,
                    "trainable_params": trainable,
                    "device": device,
                }
            )
            train_data_path = final / TRAIN_DATA_FILE
            mlflow.set_tags(
                {
                    "warm_started_from": warm_from or "none",
                    "base_model": ft.base_model,
                    "train_data_uri": str(train_data_path),
                }
            )
            log.info(
                "finetune from %s on %s: %d labels (%d new head rows), %d train rows (%d replayed), "
                "%d trainable / %d frozen params",
                warm_from or start_dir, device, len(labels), new_head_rows, len(train), replay_rows, trainable, frozen,
            )  # fmt: skip

            pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
            outcome = _train(
                model,
                _encode(tokenizer, train, label_index, ft.max_length),
                _encode(tokenizer, val, label_index, ft.max_length),
                ft,
                pad_id=pad_id,
                device=device,
            )
            if outcome.best_state is not None:
                model.load_state_dict(outcome.best_state)

            model_stage = stage / MODEL_SUBDIR
            model.to("cpu").save_pretrained(model_stage)
            tokenizer.save_pretrained(model_stage)
            write_model_meta(
                model_stage,
                labels=labels,
                max_length=ft.max_length,
                max_text_chars=cfg.ingest.max_text_chars,
                scrub_pii=cfg.ingest.scrub_pii,
            )
            train.to_parquet(stage / TRAIN_DATA_FILE, index=False)
            info = log_intent_model(
                model_stage,
                name="model",
                tags={
                    tracking.TAG_RUN: pipeline_run_id,
                    tracking.TAG_SHA: tracking.git_sha(),
                    "train_data_uri": str(train_data_path),
                    "warm_started_from": warm_from or "none",
                },
            )
            # model_id links the summary to the LoggedModel too (MLflow 3 shows it on the model's page)
            mlflow.log_metrics(
                {
                    "best_val_macro_f1": outcome.best_val_macro_f1,
                    "best_val_accuracy": outcome.best_val_accuracy,
                    "best_epoch": outcome.best_epoch,
                    "epochs_run": outcome.epochs_run,
                    "stopped_early": float(outcome.stopped_early),
                    "train_seconds": outcome.train_seconds,
                },
                model_id=info.model_id,
            )
            result = FinetuneResult(
                model_uri=info.model_uri,
                mlflow_run_id=run_id,
                model_dir=str(final / MODEL_SUBDIR),
                labels=tuple(labels),
                train_rows=len(train),
                replay_rows=replay_rows,
                val_rows=len(val),
                epochs_run=outcome.epochs_run,
                stopped_early=outcome.stopped_early,
                best_val_macro_f1=outcome.best_val_macro_f1,
                warm_started_from=warm_from,
                train_data_uri=str(train_data_path),
            )
            storage.write_done(stage, result)
    finally:
        if ft.num_threads:
            torch.set_num_threads(previous_threads)
    log.info(
        "finetune done: %d epoch(s)%s, best val macro-F1 %.4f (epoch %d), %d rows (%d replayed), "
        "%.1f s training, model %s, out %s",
        outcome.epochs_run, " (stopped early)" if outcome.stopped_early else "", outcome.best_val_macro_f1,
        outcome.best_epoch, len(train), replay_rows, outcome.train_seconds, info.model_uri, final,
    )  # fmt: skip
    return result
