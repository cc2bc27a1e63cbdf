"""The params the train stage reads (``dvc.yaml``: train's ``params``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any

from detox import DetoxError
from detox.device import DeviceParams
from detox.generation import GenerationParams
from detox.params import require
from detox.train.methods import REGISTRY, MethodInputs, check_method

METHOD_PARAMS = "data/method_params.json"  # the chosen method's params (method_inputs writes it)

REWARDS = ("neutral_logit", "neutral_softmax", "log_toxicity")
ADAPTERS = ("none", "lora")


@dataclass(frozen=True)
class DataParams:
    train: str  # named on the model card, with the toxicity filter
    toxicity_threshold: float
    prompt_max_tokens: int  # with generation.max_new_tokens_to, must fit the policy's context


@dataclass(frozen=True)
class ModelParams(DeviceParams):
    neutral_label: str | None  # the reward scorer's, if softmax
    toxic_labels: list[str] | None  # the reward scorer's, if multi-label


@dataclass(frozen=True)
class PPOParams:
    steps: int
    batch_size: int
    mini_batch_size: int
    ppo_epochs: int
    learning_rate: float
    init_kl_coef: float  # beta, the KL penalty's initial coefficient
    adaptive_kl: bool  # move beta towards target_kl (else beta stays init_kl_coef)
    target_kl: float  # nats per continuation, TRL's objective/kl (the logged `kl`)
    kl_horizon: int  # beta changes by at most 0.2 * batch_size / kl_horizon per step
    save_every: int  # steps between checkpoints (and one on SIGINT/SIGTERM)
    max_kl_ratio: float  # divergence: the KL beyond this share of the first step's entropy
    max_score_drop: float  # collapse: the score losing this share of what it gained
    gradient_checkpointing: bool  # recompute the blocks' activations in backward (memory)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "mini_batch_size", "ppo_epochs", "kl_horizon",
                     "save_every"):
            value = getattr(self, name)
            require(value >= 1, f"ppo.{name}", value, "must be a positive integer")
        require(self.batch_size % self.mini_batch_size == 0, "ppo.mini_batch_size",
                self.mini_batch_size, f"must divide ppo.batch_size ({self.batch_size})")
        require(self.learning_rate > 0, "ppo.learning_rate", self.learning_rate, "must be > 0")
        require(self.init_kl_coef >= 0, "ppo.init_kl_coef", self.init_kl_coef, "must be >= 0")
        require(self.target_kl > 0, "ppo.target_kl", self.target_kl, "must be > 0")
        require(self.max_kl_ratio > 0, "ppo.max_kl_ratio", self.max_kl_ratio, "must be > 0")
        require(0 < self.max_score_drop <= 1, "ppo.max_score_drop", self.max_score_drop,
                "must be in (0, 1]: the share of the score's gain a collapse loses")


@dataclass(frozen=True)
class AdapterParams:
    """``adapter``: ``none`` trains the top ``layers`` blocks themselves; ``lora`` trains LoRA
    weights (through peft) on the frozen policy, in the ``target_modules`` of those blocks."""

    kind: str
    rank: int
    alpha: float  # LoRA scales its update by alpha / rank
    dropout: float
    # module names inside a block (GPT-Neo's: q_proj, c_fc, ...); None: peft's default for the
    # policy's architecture (detox.train.policy.lora_targets)
    target_modules: list[str] | None

    def __post_init__(self) -> None:
        require(self.kind in ADAPTERS, "adapter.kind", self.kind,
                f"must be one of {', '.join(ADAPTERS)}")
        require(self.rank >= 1, "adapter.rank", self.rank, "must be a positive integer")
        require(self.alpha > 0, "adapter.alpha", self.alpha, "must be > 0")
        require(0 <= self.dropout < 1, "adapter.dropout", self.dropout, "must be in [0, 1)")


@dataclass(frozen=True)
class WordFilterParams:
    words: str  # badwords-py:<language>, or a text file with one word or phrase per line


@dataclass(frozen=True)
class FineTuneParams:
    """What sft and dpo share: passes over their examples, batch and learning rate (Adam at a
    constant rate, as PPO's)."""

    epochs: int
    batch_size: int
    learning_rate: float

    def _check(self, section: str) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            require(value >= 1, f"{section}.{name}", value, "must be a positive integer")
        require(self.learning_rate > 0, f"{section}.learning_rate", self.learning_rate,
                "must be > 0")


@dataclass(frozen=True)
class SFTParams(FineTuneParams):
    max_toxicity: float  # a prompt's least toxic sample is a target only below this

    def __post_init__(self) -> None:
        self._check("sft")
        require(0 < self.max_toxicity <= 1, "sft.max_toxicity", self.max_toxicity,
                "must be in (0, 1]")


@dataclass(frozen=True)
class DPOParams(FineTuneParams):
    min_margin: float  # rejected's toxicity minus chosen's, at least
    beta: float

    def __post_init__(self) -> None:
        self._check("dpo")
        require(0 < self.min_margin < 1, "dpo.min_margin", self.min_margin,
                "must be in (0, 1): a pair's chosen continuation must be less toxic")
        require(self.beta > 0, "dpo.beta", self.beta, "must be > 0")


@dataclass(frozen=True)
class OnlineDPOParams:
    """``online_dpo``: ``samples`` policy samples in all (PPO's budget by default), two per
    prompt, ``batch_size`` prompts per optimizer step; the steps are whole, so the samples
    drawn are ``samples`` rounded down to a multiple of 2 x ``batch_size``."""

    samples: int
    batch_size: int
    learning_rate: float
    beta: float

    def __post_init__(self) -> None:
        require(self.batch_size >= 1, "online_dpo.batch_size", self.batch_size,
                "must be a positive integer")
        require(self.samples >= 2 * self.batch_size, "online_dpo.samples", self.samples,
                f"must be at least one step's two samples per prompt (2 x online_dpo.batch_size "
                f"= {2 * self.batch_size})")
        require(self.learning_rate > 0, "online_dpo.learning_rate", self.learning_rate,
                "must be > 0")
        require(self.beta > 0, "online_dpo.beta", self.beta, "must be > 0")

    @property
    def steps(self) -> int:
        return self.samples // (2 * self.batch_size)


@dataclass(frozen=True)
class MethodParams:
    """The method and every section a method may read (the ``method_inputs`` stage's params):
    all are checked, and the chosen method's own (its registry entry's ``params``) are written
    to ``data/method_params.json``, which train depends on instead of on them all."""

    method: str
    layers: int
    reward: str
    generation: GenerationParams
    adapter: AdapterParams
    ppo: PPOParams
    word_filter: WordFilterParams
    sft: SFTParams
    dpo: DPOParams
    online_dpo: OnlineDPOParams

    def __post_init__(self) -> None:
        check_method(self.method)
        # The upper bound is the policy's block count, checked once the policy is loaded.
        require(self.layers >= 1, "layers", self.layers,
                "must be between 1 and the policy's number of transformer blocks")
        require(self.reward in REWARDS, "reward", self.reward,
                f"must be one of {', '.join(REWARDS)}")

    def chosen(self) -> dict[str, Any]:
        """The method and the sections it reads, as ``data/method_params.json`` holds them."""
        sections = {name: getattr(self, name) for name in REGISTRY[self.method].params}
        return json.loads(json.dumps({"method": self.method, **{
            name: asdict(value) if is_dataclass(value) else value
            for name, value in sections.items()}}))

    def inputs(self) -> MethodInputs:
        return MethodInputs(samples=REGISTRY[self.method].reads_samples)


@dataclass(frozen=True)
class TrainParams(MethodParams):
    """What the train stage reads: the shared params (its own in ``dvc.yaml``) and the
    method's, whose dependency is ``data/method_params.json`` (``check_chosen``)."""

    seed: int
    data: DataParams
    model: ModelParams

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.seed >= 0, "seed", self.seed, "must be >= 0")

    def used(self) -> dict[str, Any]:
        """What a run of the chosen method reads: the shared params and its own sections (so
        another method's params do not change its checkpoints' key)."""
        return {**self.chosen(), "seed": self.seed, "data": asdict(self.data),
                "model": asdict(self.model)}

    def check_chosen(self, written: dict[str, Any]) -> None:
        """Refuse to train on params the ``method_inputs`` stage did not write (train would
        not rerun when they change): ``python stages/train.py`` run by hand after an edit."""
        if written != self.chosen():
            raise DetoxError(f"{METHOD_PARAMS} is not params.yaml's {self.method} params: "
                             "run `dvc repro` (its method_inputs stage writes it)")
