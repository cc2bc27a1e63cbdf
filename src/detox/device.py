"""Device and precision params -> torch objects, with clear errors where the hardware is missing."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from detox import DetoxError
from detox.params import require

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class DeviceParams:
    """``model.precision`` and ``model.device``, read by the stages that run models."""

    precision: str
    device: str

    def __post_init__(self) -> None:
        require(self.precision in DTYPES, "model.precision", self.precision,
                f"must be one of {', '.join(DTYPES)}")
        require(self.device in DEVICES, "model.device", self.device,
                f"must be one of {', '.join(DEVICES)}")


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without a GPU is an error, not a slow surprise.

    Under ``accelerate launch`` each process takes the GPU of its ``LOCAL_RANK``.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise DetoxError("params.yaml: model.device='cuda' but no CUDA GPU is visible to "
                             "torch; set model.device to cpu or auto")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device(name)


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    if precision == "fp16" and device.type == "cpu":
        raise DetoxError("params.yaml: model.precision='fp16' needs a GPU; use fp32 or bf16 on CPU")
    return DTYPES[precision]


def scorer_dtype(device: torch.device) -> torch.dtype:
    """The scorer only runs inference: fp16 on a GPU (as the paper), fp32 on CPU."""
    return torch.float16 if device.type == "cuda" else torch.float32


def is_main_process() -> bool:
    """False in the non-zero ranks of ``accelerate launch``: only rank 0 writes outputs."""
    return int(os.environ.get("RANK", 0)) == 0
