"""The training methods by name, and what each reads besides the prompts and the base model.

Light on purpose (no torch): the ``method_inputs`` stage imports it, and an edit of a method's
training code must not rerun what only depends on this list.
"""

from __future__ import annotations

from dataclasses import dataclass

from detox.params import require

METHODS = ("ppo", "word_filter", "sft", "dpo")
READS_SAMPLES = ("sft", "dpo")  # the sample stage's scored base samples


@dataclass(frozen=True)
class MethodInputs:
    """What the chosen method reads: written without the method's name, so methods that read
    the same inputs write the same file (switching between them reruns nothing it feeds)."""

    samples: bool


@dataclass(frozen=True)
class MethodParams:
    method: str

    def __post_init__(self) -> None:
        require(self.method in METHODS, "method", self.method,
                f"must be one of {', '.join(METHODS)}")

    def inputs(self) -> MethodInputs:
        return MethodInputs(samples=self.method in READS_SAMPLES)
