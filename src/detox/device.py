"""Device and precision params -> torch objects, with clear errors where the hardware is missing."""

from __future__ import annotations

import torch

from detox import DetoxError

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without a GPU is an error, not a slow surprise."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DetoxError("params.yaml: model.device='cuda' but no CUDA GPU is visible to torch; "
                         "set model.device to cpu or auto")
    return torch.device(name)


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    if precision == "fp16" and device.type == "cpu":
        raise DetoxError("params.yaml: model.precision='fp16' needs a GPU; use fp32 or bf16 on CPU")
    return DTYPES[precision]
