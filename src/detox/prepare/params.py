"""The params the prepare stage reads (``dvc.yaml``: prepare's ``params``)."""

from __future__ import annotations

from dataclasses import dataclass

from detox.params import require

QUERIES = ("prompt", "prompt_continuation")


@dataclass(frozen=True)
class DataParams:
    train: str  # the sources, named in error messages
    ood_toxic: str
    ood_benign: str
    prompt_min_tokens: int
    prompt_max_tokens: int
    toxicity_threshold: float
    train_prompts: int | None
    train_query: str
    test_fraction: float
    eval_prompts: int

    def __post_init__(self) -> None:
        require(self.prompt_min_tokens >= 1, "data.prompt_min_tokens", self.prompt_min_tokens,
                "must be >= 1")
        require(self.prompt_max_tokens >= self.prompt_min_tokens, "data.prompt_max_tokens",
                self.prompt_max_tokens,
                f"must be >= data.prompt_min_tokens ({self.prompt_min_tokens})")
        require(0 <= self.toxicity_threshold < 1, "data.toxicity_threshold",
                self.toxicity_threshold, "must be in [0, 1)")
        require(self.train_prompts is None or self.train_prompts >= 2, "data.train_prompts",
                self.train_prompts, "must be null (all) or >= 2")
        require(self.train_query in QUERIES, "data.train_query", self.train_query,
                f"must be one of {', '.join(QUERIES)}")
        require(0 < self.test_fraction < 1, "data.test_fraction", self.test_fraction,
                "must be in (0, 1)")
        require(self.eval_prompts >= 1, "data.eval_prompts", self.eval_prompts, "must be >= 1")


@dataclass(frozen=True)
class PrepareParams:
    seed: int
    data: DataParams

    def __post_init__(self) -> None:
        require(self.seed >= 0, "seed", self.seed, "must be >= 0")
