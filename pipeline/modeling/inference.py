"""The one inference path: evaluation, drift embeddings, validation during training and serving.

Rows are tokenized once (unpadded), sorted by length, cut into batches padded to their own longest
row (:func:`pipeline.modeling.batching.collate`), and run under ``torch.inference_mode`` with bf16
autocast where the hardware has native bf16 (:mod:`pipeline.modeling.precision`). Outputs come back
in input order. ``benchmarks/finetune.py`` measures it (rows/s, fp32 and bf16, agreement with fp32)
against padding every row to 128 in input order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from pipeline.modeling.batching import collate
from pipeline.modeling.precision import autocast


def batches(
    model: Any,
    ids: Sequence[Sequence[int]],
    *,
    batch_size: int,
    pad_id: int,
    device: str,
    precision: str = "fp32",
    hidden: bool = False,
) -> Iterator[tuple[list[int], Any, torch.Tensor]]:
    """(input positions, model output, attention mask) per length-sorted batch of ``ids``."""
    model.eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    with torch.inference_mode(), autocast(device, precision):
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = {k: v.to(device) for k, v in collate([ids[i] for i in idx], pad_id).items()}
            yield idx, model(**enc, output_hidden_states=hidden), enc["attention_mask"]


def logits(
    model: Any, ids: Sequence[Sequence[int]], *, batch_size: int, pad_id: int, device: str, precision: str = "fp32"
) -> np.ndarray:
    """Logits (rows × classes, float64) in input order; (0, 0) for no rows."""
    out: np.ndarray | None = None
    for idx, res, _ in batches(model, ids, batch_size=batch_size, pad_id=pad_id, device=device, precision=precision):
        z = res.logits.float().cpu().numpy()
        if out is None:
            out = np.zeros((len(ids), z.shape[1]), dtype=np.float64)
        out[idx] = z
    return np.zeros((0, 0)) if out is None else out


def logits_and_embeddings(
    model: Any, ids: Sequence[Sequence[int]], *, batch_size: int, pad_id: int, device: str, precision: str = "fp32"
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and mean-pooled last-layer embeddings (rows × hidden), in input order."""
    n_out, width = int(model.config.num_labels), int(model.config.hidden_size)
    z, emb = np.zeros((len(ids), n_out)), np.zeros((len(ids), width))
    path = batches(model, ids, batch_size=batch_size, pad_id=pad_id, device=device, precision=precision, hidden=True)
    for idx, res, mask in path:
        m = mask.unsqueeze(-1).float()
        emb[idx] = ((res.hidden_states[-1].float() * m).sum(1) / m.sum(1).clamp(min=1.0)).cpu().numpy()
        z[idx] = res.logits.float().cpu().numpy()
    return z, emb
