"""The params the sample stage reads (``dvc.yaml``: sample's ``params``)."""

from __future__ import annotations

from dataclasses import dataclass

from detox.device import DeviceParams
from detox.generation import GenerationParams
from detox.params import require


@dataclass(frozen=True)
class SamplesParams:
    per_prompt: int  # k continuations of each chosen prompt
    total: int  # scored samples in all: total / per_prompt prompts
    batch_size: int  # prompts per generate call (each k times)

    def __post_init__(self) -> None:
        for name in ("per_prompt", "total", "batch_size"):
            value = getattr(self, name)
            require(value >= 1, f"samples.{name}", value, "must be a positive integer")
        require(self.per_prompt >= 2, "samples.per_prompt", self.per_prompt,
                "must be >= 2: best and worst of one sample are the same")
        require(self.total % self.per_prompt == 0, "samples.total", self.total,
                f"must be a multiple of samples.per_prompt ({self.per_prompt})")


@dataclass(frozen=True)
class DataParams:
    prompt_max_tokens: int  # with generation.max_new_tokens_to, must fit the policy's context


@dataclass(frozen=True)
class ModelParams(DeviceParams):
    neutral_label: str | None  # the reward scorer's, if softmax
    toxic_labels: list[str] | None  # the reward scorer's, if multi-label


@dataclass(frozen=True)
class SampleParams:
    seed: int
    samples: SamplesParams
    generation: GenerationParams
    data: DataParams
    model: ModelParams
