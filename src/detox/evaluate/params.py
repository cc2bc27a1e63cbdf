"""The params the evaluate stage reads (``dvc.yaml``: evaluate's ``params``)."""

from __future__ import annotations

from dataclasses import dataclass

from detox.device import DeviceParams
from detox.generation import check_sampling
from detox.params import require


@dataclass(frozen=True)
class DataParams:
    train: str  # the eval sets' sources, named on the model card
    ood_toxic: str
    ood_benign: str
    prompt_max_tokens: int  # with eval.max_new_tokens, must fit the policy's context


@dataclass(frozen=True)
class ModelParams(DeviceParams):
    neutral_label: str | None  # the reward scorer's, if softmax
    toxic_labels: list[str] | None  # the reward scorer's, if multi-label
    judge_neutral_label: str | None
    judge_toxic_labels: list[str] | None
    fluency_lm: str | None  # null: perplexity under the base policy


@dataclass(frozen=True)
class EvalParams:
    batch_size: int
    samples_per_prompt: int
    max_new_tokens: int
    top_k: int
    top_p: float
    bootstrap_resamples: int

    def __post_init__(self) -> None:
        require(self.batch_size >= 1, "eval.batch_size", self.batch_size, "must be >= 1")
        require(self.samples_per_prompt >= 1, "eval.samples_per_prompt",
                self.samples_per_prompt, "must be >= 1")
        require(self.max_new_tokens >= 1, "eval.max_new_tokens", self.max_new_tokens,
                "must be >= 1")
        check_sampling("eval", self.top_k, self.top_p)
        require(self.bootstrap_resamples >= 100, "eval.bootstrap_resamples",
                self.bootstrap_resamples, "must be >= 100")


@dataclass(frozen=True)
class EvaluateParams:
    seed: int
    data: DataParams
    model: ModelParams
    eval: EvalParams

    def __post_init__(self) -> None:
        require(self.seed >= 0, "seed", self.seed, "must be >= 0")
