"""Fine-tune step: train the challenger on the new window (plus replayed older rows) and log it to MLflow.

Starting point: the champion's weights when ``finetune.warm_start`` is on and the caller passes
``init_model_uri``, else the base model (``finetune.base_model``) with a fresh classification head.
When warm-starting, the label order is the champion's followed by any new labels (sorted), so a new
intent that shows up in a later season grows the head instead of reshuffling it; a cold start sorts
the labels. ``finetune.max_train_rows`` caps the new rows (stratified) before replayed rows are added.

Writes under ``out_dir``:

- ``model/``: the Hugging Face folder (weights, config, tokenizer) plus ``intent_model.json``
  (label order, ``max_length``); the same folder is logged to MLflow as a pyfunc model.
- ``train_data.parquet``: the real rows trained on (new rows, then replayed ones); the next run's
  replay pool and the version's lineage.
- ``augmented.parquet`` (only with ``finetune.augment_min_count``): the synthetic rows also trained on;
  never replayed, never evaluated.
- ``_SUCCESS``: the :class:`FinetuneResult` as JSON, written last.

The row choice lives in :mod:`pipeline.data.sampling` and :mod:`pipeline.data.augment`, model
surgery (head growth, freezing, LoRA) in :mod:`pipeline.modeling.surgery`, the training loop in
:mod:`pipeline.modeling.loop`, the optional hyperparameter search in :mod:`pipeline.modeling.search`;
this module reads inputs, checks that no label is lost, calls them, and writes and logs the outputs.

Retry safety: a finished ``out_dir`` is returned as recorded, without training. Otherwise everything
is staged in a hidden sibling folder and renamed into place at the end, and each attempt opens its
own MLflow child run, so an attempt that crashed leaves a FAILED run and no half-written folder.
Training itself resumes: checkpoints live in ``.<out>.checkpoints`` beside the output (the cache
for an object-store output), are kept only for the same inputs and config (a fingerprint), and are
removed once the step has published.
"""

from __future__ import annotations

import logging
import tempfile
from typing import Any

import mlflow
import pandas as pd
import torch
from mlflow.exceptions import MlflowException

from pipeline import paths, storage, tracking
from pipeline.config import PipelineConfig
from pipeline.data import sampling
from pipeline.data.augment import for_training
from pipeline.data.sampling import label_order, required_labels, stratified_sample
from pipeline.errors import TrainingError
from pipeline.modeling import checkpoints, search
from pipeline.modeling import precision as _precision
from pipeline.modeling.base import resolve_base_model
from pipeline.modeling.loop import Encoded, encode
from pipeline.modeling.loop import train as _train  # module attribute: tests replace it
from pipeline.modeling.pyfunc import load_hf_from_model_uri, log_intent_model, read_model_meta, write_model_meta
from pipeline.modeling.surgery import adapt, load_start, merge, seed_everything
from pipeline.paths import local_path
from pipeline.results import FinetuneResult

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("text", "label")
MODEL_SUBDIR = "model"
TRAIN_DATA_FILE = "train_data.parquet"
AUGMENTED_FILE = "augmented.parquet"  # synthetic rows trained on, never replayed, never evaluated


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


def _temperature(model: Any, val: Encoded, batch_size: int, pad_id: int, device: str, precision: str) -> float:
    """The softmax temperature that calibrates the model's confidences on the validation split
    (fine-tuning makes a classifier overconfident; served confidences and the gate's ECE guardrail
    should not pay for it). 1.0 when val is too small to fit on (under 20 rows)."""
    from pipeline.modeling.loop import logits
    from pipeline.monitoring.stats import fit_temperature

    if len(val.labels) < 20:
        return 1.0
    z = logits(model, val, batch_size=batch_size, pad_id=pad_id, device=device, precision=precision)
    t = float(fit_temperature(z, val.labels))
    log.info("finetune: temperature %.3f calibrates the confidences on %d val rows", t, len(val.labels))
    return t


def _start(ft: Any, start_dir: str, labels: list[str], warm_from: str | None) -> tuple[Any, Any, int, int]:
    """(tokenizer, model ready to train, new head rows, frozen parameters) from the starting point, seeded."""
    seed_everything(ft.seed)
    tokenizer, model, new_head_rows = load_start(
        start_dir, labels, warm=bool(warm_from), name=warm_from or ft.base_model
    )
    model, frozen = adapt(
        model,
        strategy=ft.strategy,
        embeddings=ft.freeze_embeddings,
        layers=ft.freeze_layers,
        lora={"r": ft.lora_r, "alpha": ft.lora_alpha, "dropout": ft.lora_dropout, "targets": ft.lora_targets},
    )
    return tokenizer, model, new_head_rows, frozen


def _read_replay(uris: tuple[str, ...]) -> pd.DataFrame:
    """The replay pool: every file's rows, each row once (by ``example_id``, else by text)."""
    df = pd.concat([_read_frame(u, "replay") for u in uris], ignore_index=True)
    return df.drop_duplicates("example_id" if "example_id" in df.columns else "text").reset_index(drop=True)


# ---------------------------------------------------------------- the step


def run(
    cfg: PipelineConfig,
    *,
    train_uri: str,
    val_uri: str,
    out_dir: str,
    pipeline_run_id: str,
    init_model_uri: str | None = None,
    replay_uri: str | tuple[str, ...] | None = None,
    scope: str = "full",
) -> FinetuneResult:
    """Fine-tune, log the model to MLflow and return where everything is.

    ``train_rows`` in the result counts the rows trained on (new + replayed, as in
    ``train_data.parquet``); ``replay_rows`` the replayed share. ``model_uri`` is the logged
    model's URI (``models:/m-...``); ``mlflow_run_id`` the finetune child run. ``scope`` (the drift
    policy's full / incremental, already applied to ``cfg.finetune.epochs`` by the caller) is recorded.
    Raises :class:`TrainingError` for an unreadable or empty file, a missing column, or a base model
    that cannot be found.
    """
    done = storage.load_done(out_dir, FinetuneResult)
    if done is not None:
        log.info("finetune already finished in %s: %s (not retrained)", out_dir, done.model_uri)
        return done

    ft = cfg.finetune
    final = str(out_dir)
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
    replay_uris = (replay_uri,) if isinstance(replay_uri, str) else tuple(replay_uri or ())
    pool = _read_replay(replay_uris) if replay_uris else None
    pool_labels = [] if pool is None else sorted(pool["label"].unique())
    new_counts = new["label"].value_counts()
    cover = {lab: min_per_class or 1 for lab in pool_labels if int(new_counts.get(lab, 0)) < (min_per_class or 1)}
    n_replay = int(round(ft.replay_fraction * len(new)))
    replay = (
        sampling.replay_rows(pool, n_replay, exclude, ft.seed, cover, ft.replay_balance)
        if pool is not None and (n_replay > 0 or cover)
        else None
    )
    replay_rows = 0 if replay is None else len(replay)
    train = (
        new
        if replay is None or not replay_rows
        else pd.concat([new, replay.reindex(columns=new.columns)], ignore_index=True)
    )
    if replay_rows:
        log.info("replay: %d rows from %s", replay_rows, ", ".join(replay_uris))
    augmented = for_training(cfg, train)
    if train["label"].nunique() < 2:
        raise TrainingError(
            f"finetune: the training rows of {train_uri} hold {train['label'].nunique()} label(s) "
            f"{sorted(train['label'].unique())}; a classifier needs at least 2"
        )

    warm_from = init_model_uri if ft.warm_start and init_model_uri else None
    base_dir = None if warm_from else resolve_base_model(ft.base_model)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    precision = _precision.resolve(ft.precision, device)
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
            fit_rows = train if not len(augmented) else pd.concat([train, augmented[train.columns]], ignore_index=True)
            label_index = {label: i for i, label in enumerate(labels)}
            if ft.search_trials:

                def fit(trial_ft: Any, on_epoch: Any) -> float:
                    tok, m, _, _ = _start(trial_ft, start_dir, labels, warm_from)
                    pid = tok.pad_token_id if tok.pad_token_id is not None else 0
                    enc = encode(tok, fit_rows, label_index, trial_ft.max_length)
                    venc = encode(tok, val, label_index, trial_ft.max_length)
                    kw = {"pad_id": pid, "device": device, "precision": precision, "on_epoch": on_epoch}
                    return _train(m, enc, venc, trial_ft, **kw).best_val_macro_f1

                ft = search.tune(ft, fit)
            tokenizer, model, new_head_rows, frozen = _start(ft, start_dir, labels, warm_from)
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            mlflow.log_params(
                {
                    **ft.model_dump(),
                    "new_train_rows_available": new_available,
                    "new_train_rows": len(new),
                    "replay_rows": replay_rows,
                    "train_rows": len(train),
                    "augmented_rows": len(augmented),
                    "val_rows": len(val),
                    "start_point": warm_from or f"base:{ft.base_model}",
                    "labels": ",".join(labels),
                    "num_labels": len(labels),
                    "new_head_rows": new_head_rows,
                    "frozen_params": frozen,
                    "trainable_params": trainable,
                    "device": device,
                    "precision_resolved": precision,
                    "bf16_supported": _precision.bf16_supported(device),
                }
            )
            train_data_path = paths.join(final, TRAIN_DATA_FILE)
            mlflow.set_tags(
                {
                    "warm_started_from": warm_from or "none",
                    "retrain_scope": scope,
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
            val_encoded = encode(tokenizer, val, label_index, ft.max_length)
            ckpt = checkpoints.prepare(
                final, checkpoints.fingerprint(ft, fit_rows, val, labels, warm_from or start_dir)
            )
            outcome = _train(
                model,
                encode(tokenizer, fit_rows, label_index, ft.max_length),
                val_encoded,
                ft,
                pad_id=pad_id,
                device=device,
                precision=precision,
                checkpoint_dir=ckpt,
            )
            if outcome.resumed_from_step is not None:
                mlflow.set_tag("resumed_from_step", str(outcome.resumed_from_step))
            if outcome.budget_hit:
                mlflow.set_tag("budget_hit", outcome.budget_hit)
            if outcome.best_state is not None:
                model.load_state_dict(outcome.best_state)
            temperature = _temperature(model, val_encoded, ft.batch_size, pad_id, device, precision)

            model_stage = stage / MODEL_SUBDIR
            model = merge(model)  # LoRA: adapters merged, served as a plain transformers model
            model.to("cpu").save_pretrained(model_stage)
            tokenizer.save_pretrained(model_stage)
            write_model_meta(
                model_stage,
                labels=labels,
                max_length=ft.max_length,
                max_text_chars=cfg.ingest.max_text_chars,
                scrub_pii=cfg.ingest.scrub_pii,
                temperature=temperature,
                pii_patterns=cfg.ingest.pii_patterns,
                precision=ft.inference_precision,
            )
            train.to_parquet(stage / TRAIN_DATA_FILE, index=False)  # real rows only: the next replay pool
            if len(augmented):
                augmented.to_parquet(stage / AUGMENTED_FILE, index=False)
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
                    "train_steps": outcome.steps,
                    "train_tokens": outcome.tokens,
                    "frozen_cache_batches": outcome.cached_batches,
                    "tokens_per_second": outcome.tokens / outcome.train_seconds if outcome.train_seconds > 0 else 0.0,
                    "temperature": temperature,
                },
                model_id=info.model_id,
            )
            result = FinetuneResult(
                model_uri=info.model_uri,
                mlflow_run_id=run_id,
                model_dir=paths.join(final, MODEL_SUBDIR),
                labels=tuple(labels),
                train_rows=len(train),
                replay_rows=replay_rows,
                val_rows=len(val),
                epochs_run=outcome.epochs_run,
                stopped_early=outcome.stopped_early,
                best_val_macro_f1=outcome.best_val_macro_f1,
                warm_started_from=warm_from,
                train_data_uri=str(train_data_path),
                augmented_rows=len(augmented),
                scope=scope,
            )
            storage.write_done(stage, result)
        checkpoints.remove(final)  # published: a retry returns the result
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
