"""Model surgery for warm starts and transfer learning: grow the classification head, freeze layers.

Pure torch/transformers helpers used by the finetune step; no MLflow, no files besides loading.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.errors import TrainingError

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
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


def load_start(start_dir: str, labels: list[str], *, warm: bool, name: str) -> tuple[Any, Any, int]:
    """(tokenizer, model, new head rows) for the starting point at ``start_dir``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(start_dir)
        if warm:
            model = AutoModelForSequenceClassification.from_pretrained(start_dir)
            check_label_map(model, labels, name)
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
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrainingError(f"finetune: model {name} cannot be loaded from {start_dir} ({first})") from exc
    return tokenizer, model, grown


def check_label_map(model: Any, labels: Sequence[str], name: str) -> None:
    """The warm start's head must answer the labels its metadata lists, in that order: a champion whose
    ``config.json`` label map disagrees with ``intent_model.json`` would be trained on shuffled labels."""
    n = int(model.config.num_labels)
    head = [str(model.config.id2label.get(i, "")) for i in range(n)]
    known = list(labels[:n])
    generic = all(h == f"LABEL_{i}" for i, h in enumerate(head))  # a head saved without names: order unknowable
    if len(labels) < n or (not generic and head != known):
        diff = next((i for i, (a, b) in enumerate(zip(head, known, strict=False)) if a != b), min(n, len(known)))
        raise TrainingError(
            f"finetune: the label map of {name} does not match the champion's labels: its head has {n} outputs, "
            f"output {diff} is {head[diff] if diff < n else 'missing'!r} but the champion's metadata says "
            f"{known[diff] if diff < len(known) else 'nothing'!r}"
        )


HEAD_PARTS = frozenset({"classifier", "score", "pre_classifier", "pooler"})


def is_head(name: str) -> bool:
    """Whether parameter ``name`` belongs to the pooler or the classification head (also under a
    peft wrapper, whose names read ``base_model.model.classifier.modules_to_save.default.weight``)."""
    return any(part in HEAD_PARTS for part in name.split("."))


def adapt(model: Any, *, strategy: str, embeddings: bool, layers: int, lora: dict[str, Any]) -> tuple[Any, int]:
    """The transfer-learning strategy: ``freeze`` (the embeddings and lowest ``layers`` blocks, the
    rest trains) or ``lora`` (peft LoRA adapters on ``lora["targets"]`` of every block; the body stays
    frozen, the pooler and head train in full). Returns (the model to train, frozen parameters)."""
    if strategy == "freeze":
        return model, freeze(model, embeddings=embeddings, layers=layers)
    from peft import LoraConfig, TaskType, get_peft_model

    heads = sorted(_head_modules(model))
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=int(lora["r"]),
        lora_alpha=int(lora["alpha"]),
        lora_dropout=float(lora["dropout"]),
        target_modules=list(lora["targets"]),
        modules_to_save=heads,
    )
    try:
        wrapped = get_peft_model(model, config)
    except ValueError as exc:  # no module matched the targets
        raise TrainingError(f"finetune.lora_targets {list(lora['targets'])}: {str(exc).splitlines()[0]}") from exc
    frozen = sum(p.numel() for p in wrapped.parameters() if not p.requires_grad)
    return wrapped, frozen


def _head_modules(model: Any) -> set[str]:
    """Leaf names of the pooler / head modules (``pooler``, ``classifier``...) anywhere in the model."""
    return {name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if name.rsplit(".", 1)[-1] in HEAD_PARTS}


def merge(model: Any) -> Any:
    """A plain transformers model for serving: LoRA adapters merged into the weights (a no-op otherwise)."""
    if hasattr(model, "merge_and_unload"):
        return model.merge_and_unload()
    return model
