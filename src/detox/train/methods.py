"""The training methods by name: where each lives and what it reads besides the prompts and
the base model. The params validate against this registry; nothing outside ``detox.train``
names a method.

Light on purpose (no torch): the commands (compare, readme) import it. ``load_method`` imports
the one method asked for, so a run's code (and its checkpoints' key) is that method's alone.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from detox.params import require

if TYPE_CHECKING:
    from detox.train.method import Method


@dataclass(frozen=True)
class Registered:
    module: str  # holds the method's ``METHOD``
    # the params.yaml sections it reads besides the shared ones (seed, data, model): a change
    # of another method's reruns nothing of this one
    params: tuple[str, ...]
    reads_samples: bool  # learns from the sample stage's scored base samples
    compared: bool = True  # in `python -m detox.compare` by default (it needs no input of its own)


TRAINED = ("layers", "adapter")  # the trainable part of the policy
REGISTRY = {
    "ppo": Registered("detox.train.ppo", (*TRAINED, "reward", "generation", "ppo"),
                      reads_samples=False),
    "word_filter": Registered("detox.train.word_filter", ("word_filter",), reads_samples=False),
    "sft": Registered("detox.train.sft", (*TRAINED, "sft"), reads_samples=True),
    "dpo": Registered("detox.train.dpo", (*TRAINED, "dpo"), reads_samples=True),
    "online_dpo": Registered("detox.train.online_dpo", (*TRAINED, "generation", "online_dpo"),
                             reads_samples=False),
    "given": Registered("detox.train.given", (), reads_samples=False, compared=False),
}
METHODS = tuple(REGISTRY)


def check_method(method: str) -> None:
    require(method in REGISTRY, "method", method, f"must be one of {', '.join(METHODS)}")


def load_method(method: str) -> Method:
    check_method(method)
    return importlib.import_module(REGISTRY[method].module).METHOD


@dataclass(frozen=True)
class MethodInputs:
    """What the chosen method reads: written without the method's name, so methods that read
    the same inputs write the same file (switching between them reruns nothing it feeds)."""

    samples: bool


