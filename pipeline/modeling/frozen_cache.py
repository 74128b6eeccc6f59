"""The frozen bottom's outputs, computed once per training row and replayed in later epochs.

With ``finetune.strategy: freeze`` the embeddings and the lowest ``freeze_layers`` blocks never
change; with the cache on they run in eval mode (no dropout: a frozen feature extractor), so their
output for a row is the same in every epoch. Opt-in (``finetune.frozen_cache_mb`` > 0): on the
simulator it trained 1.15× faster, but losing the frozen layers' dropout cost 1.5 points of val
macro-F1 (``benchmarks/results/finetune_cache.md``). The first time a row is trained on, a forward hook on the last
frozen block keeps that row's output (its real tokens only); a later batch whose rows are all kept
skips the frozen bottom: the embeddings module hands back the kept outputs (padded with zeros,
which the attention mask hides from every real token) and the frozen blocks pass them through.
The rest of the model, its dropout and its RNG stream run exactly as when the frozen bottom is
computed every epoch (in eval mode), so both end with the same weights (up to float rounding), and
a resumed run rebuilds what it needs.

Generic over encoder-only models whose embeddings module feeds the first block and whose blocks
map hidden states to hidden states (BERT, MiniLM, RoBERTa, DistilBERT...); anything else, LoRA
(every block trains) or a cache over ``finetune.frozen_cache_mb`` runs without it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from pipeline.errors import TrainingError
from pipeline.modeling.surgery import encoder_layers

log = logging.getLogger(__name__)


def _frozen(module: nn.Module) -> bool:
    params = list(module.parameters())
    return bool(params) and not any(p.requires_grad for p in params)


def frozen_bottom(model: Any) -> tuple[nn.Module | None, list[nn.Module]]:
    """(embeddings, lowest blocks) when the embeddings and at least one block above them are frozen."""
    base = getattr(model, "base_model", model)
    embeddings = getattr(base, "embeddings", None)
    if not isinstance(embeddings, nn.Module) or not _frozen(embeddings) or hasattr(model, "peft_config"):
        return None, []
    try:
        stack = encoder_layers(model)
    except TrainingError:  # no recognizable block list: no cache
        return None, []
    blocks: list[nn.Module] = []
    for layer in stack:
        if not _frozen(layer):
            break
        blocks.append(layer)
    return (embeddings, blocks) if blocks else (None, [])


def set_frozen_eval(model: Any) -> None:
    """The frozen bottom is a feature extractor: eval mode (no dropout) while the rest trains."""
    embeddings, blocks = frozen_bottom(model)
    for module in ([embeddings] if embeddings is not None else []) + blocks:
        module.eval()


class _Feed(nn.Module):
    """Stands in for the embeddings: returns the kept outputs of the frozen bottom for the batch."""

    def __init__(self, hidden: torch.Tensor) -> None:
        super().__init__()
        self.hidden = hidden

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.hidden


class _Pass(nn.Module):
    """Stands in for a frozen block: hands the hidden states on, in the block's own output form."""

    def __init__(self, as_tuple: bool) -> None:
        super().__init__()
        self.as_tuple = as_tuple

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        return (hidden_states,) if self.as_tuple else hidden_states


def _swap(parent_and_name: tuple[nn.Module, str], new: nn.Module) -> nn.Module:
    parent, name = parent_and_name
    old = parent._modules[name]
    parent._modules[name] = new
    assert old is not None
    return old


def _locate(model: nn.Module, target: nn.Module) -> tuple[nn.Module, str]:
    for parent in model.modules():
        for name, child in parent._modules.items():
            if child is target:
                return parent, name
    raise LookupError("module not found")


class FrozenCache:
    """Per-row outputs of the frozen bottom (float32 or the compute dtype, real tokens only)."""

    def __init__(self, model: Any, lengths: Sequence[int], hidden_size: int, max_mb: int) -> None:
        self.model = model
        self.embeddings, self.blocks = frozen_bottom(model)
        need = sum(lengths) * hidden_size * 4 / 2**20
        self.enabled = self.embeddings is not None and max_mb > 0 and need <= max_mb
        if self.embeddings is not None and not self.enabled:
            log.info("frozen cache off: %.0f MB needed, finetune.frozen_cache_mb is %d", need, max_mb)
        self.lengths = list(lengths)
        self.rows: dict[int, torch.Tensor] = {}
        self.as_tuple = False
        self.replayed_batches = 0
        self.replayed_tokens = 0

    def covers(self, idx: Sequence[int]) -> bool:
        return self.enabled and all(i in self.rows for i in idx)

    @contextmanager
    def recording(self, idx: Sequence[int]) -> Iterator[None]:
        """Run the full model; keep each row's output of the last frozen block."""
        if not self.enabled:
            yield
            return

        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            self.as_tuple = isinstance(output, tuple)
            hidden = output[0] if self.as_tuple else output
            for j, i in enumerate(idx):
                self.rows[i] = hidden[j, : self.lengths[i]].detach().clone()

        handle = self.blocks[-1].register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()

    @contextmanager
    def replaying(self, idx: Sequence[int]) -> Iterator[None]:
        """Skip the frozen bottom: the batch's kept outputs go straight to the first trained block."""
        kept = [self.rows[i] for i in idx]
        width = max(len(k) for k in kept)
        hidden = kept[0].new_zeros((len(kept), width, kept[0].shape[-1]))
        for j, k in enumerate(kept):
            hidden[j, : len(k)] = k
        swapped: list[tuple[tuple[nn.Module, str], nn.Module]] = []
        assert self.embeddings is not None
        try:
            for module, stand_in in [(self.embeddings, _Feed(hidden))] + [
                (b, _Pass(self.as_tuple)) for b in self.blocks
            ]:
                where = _locate(self.model, module)
                swapped.append((where, _swap(where, stand_in)))
            self.replayed_batches += 1
            self.replayed_tokens += sum(self.lengths[i] for i in idx)
            yield
        finally:
            for where, original in reversed(swapped):
                _swap(where, original)

    @contextmanager
    def step(self, idx: Sequence[int]) -> Iterator[None]:
        """Replay when every row of the batch is kept, else run the full model and keep its rows."""
        with self.replaying(idx) if self.covers(idx) else self.recording(idx):
            yield
