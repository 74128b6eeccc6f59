"""Numeric precision of training and inference: bf16 autocast where the hardware runs it natively.

``auto`` picks bf16 when the device has native bf16 matmuls (a CUDA GPU that reports
``is_bf16_supported``; a CPU with AVX512-BF16 or AMX tiles) and fp32 otherwise. Autocast keeps the
weights, the optimizer state and the loss in fp32 (fp32 master weights): only the matmuls and
their activations run in bf16. Measured on the 2-core development CPU (AVX512-BF16): 402 GFLOP/s
bf16 against 177 fp32 for 2048² matmuls; ``benchmarks/finetune.py`` measures both peaks in its own
process and reports MFU against them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch

from pipeline.errors import TrainingError

Precision = Literal["auto", "bf16", "fp32"]


def bf16_supported(device: str) -> bool:
    """Whether ``device`` ("cpu" or "cuda") runs bf16 matmuls natively."""
    if device.startswith("cuda"):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def resolve(precision: Precision | str, device: str) -> str:
    """ "bf16" or "fp32" for ``precision`` on ``device``. An explicit "bf16" on hardware without native
    bf16 is a one-line error: emulated bf16 is slower than fp32, never what a user asking for speed wants."""
    if precision == "fp32":
        return "fp32"
    native = bf16_supported(device)
    if precision == "bf16" and not native:
        raise TrainingError(
            f"finetune.precision bf16: the {device} has no native bf16 matmuls (AVX512-BF16/AMX or a bf16 GPU); "
            "use auto or fp32"
        )
    if precision not in ("auto", "bf16"):
        raise TrainingError(f"finetune.precision {precision!r}: expected auto, bf16 or fp32")
    return "bf16" if native else "fp32"


@contextlib.contextmanager
def autocast(device: str, precision: str) -> Iterator[None]:
    """bf16 autocast on ``device`` when ``precision`` is "bf16"; a no-op for "fp32"."""
    kind = "cuda" if device.startswith("cuda") else "cpu"
    with torch.autocast(device_type=kind, dtype=torch.bfloat16, enabled=precision == "bf16"):
        yield
