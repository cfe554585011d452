"""Mixed precision for guided training: which autocast, and whether a GradScaler goes with it.

``--amp bf16`` runs the forwards (and the input-gradient backward a guidance loss takes inside
them) under ``torch.autocast`` in bfloat16: the exponent range of float32, so gradients do not
underflow and no scaler is needed. Works on recent GPUs and, slowly, on CPUs (that is how the
tests check it). ``--amp fp16`` uses float16 on a GPU with ``torch.amp.GradScaler``, following
the PyTorch AMP notes' gradient-penalty recipe: the scores handed to ``autograd.grad`` are
multiplied by the scaler's scale, the input gradients divided back in float32 before the
penalty (``loss.input_gradients.differentiable_gradient``), and the total loss goes through
``scaler.scale(...).backward()`` and ``scaler.step``; a step whose gradients overflowed is
skipped and the scale halved. ``off`` (the default) is float32 throughout.

Measured on a CPU (tests/test_amp.py): the RRR and Punisher penalties under bf16 autocast are
within a few percent of float32 (bfloat16 keeps 8 significant bits, about 0.4 % per rounding).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import ContextManager, Optional

import torch

from app.engine.config import AMP_MODES
from app.errors import UserError

# A run whose fp16 steps keep overflowing this many times in a row has diverged (the scale has
# fallen by 2^this); a healthy run overflows once now and then while the scale settles.
MAX_OVERFLOW_STREAK = 12


def check_amp_mode(mode: str, device: torch.device) -> None:
    """UserError unless ``mode`` is one of AMP_MODES and works on ``device``."""
    if mode not in AMP_MODES:
        raise UserError(f"--amp must be one of {', '.join(AMP_MODES)}, got {mode!r}")
    if mode == "fp16" and device.type != "cuda":
        raise UserError("--amp fp16 needs a CUDA GPU (float16 with loss scaling); on a CPU use --amp bf16")
    if mode == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError("this GPU has no bfloat16 support; use --amp fp16")


@dataclass(frozen=True)
class AmpPolicy:
    mode: str = "off"  # one of AMP_MODES
    device_type: str = "cpu"  # torch device type the autocast applies to: cpu | cuda

    @classmethod
    def for_device(cls, mode: str, device: torch.device) -> "AmpPolicy":
        check_amp_mode(mode, device)
        return cls(mode=mode, device_type=device.type)

    @property
    def dtype(self) -> Optional[torch.dtype]:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.mode)

    def autocast(self) -> ContextManager[None]:
        """The autocast region for a step's forwards (a no-op context when off)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def make_scaler(self) -> Optional[torch.amp.GradScaler]:
        """A GradScaler for fp16, None otherwise (bf16 and fp32 need none)."""
        if self.mode != "fp16":
            return None
        return torch.amp.GradScaler(self.device_type)
