"""Batched sampling: left-padded prompts, one ``generate`` call per batch, continuations only.
Used by the training methods that sample (train), by the scored base samples (sample) and by
the rollouts of evaluate."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from detox.models import end_ids
from detox.params import require


def check_sampling(section: str, top_k: int, top_p: float) -> None:
    """The sampling params of ``generation`` (training) or ``eval``, which keep their own."""
    require(top_k >= 0, f"{section}.top_k", top_k, "must be >= 0 (0 disables top-k)")
    require(0 < top_p <= 1, f"{section}.top_p", top_p, "must be in (0, 1]")


@dataclass(frozen=True)
class GenerationParams:
    """Sampling of the continuations the policy learns from (those the training methods draw,
    and the scored base samples). Each batch draws its cap on new tokens
    (``max_new_tokens`` of ``generate``) from ``max_new_tokens_from`` to ``max_new_tokens_to``,
    as TRL's ``LengthSampler``; a continuation still ends earlier at its eos."""

    max_new_tokens_from: int
    max_new_tokens_to: int
    top_k: int
    top_p: float

    def __post_init__(self) -> None:
        require(self.max_new_tokens_from >= 1, "generation.max_new_tokens_from",
                self.max_new_tokens_from, "must be >= 1")
        require(self.max_new_tokens_to >= self.max_new_tokens_from,
                "generation.max_new_tokens_to", self.max_new_tokens_to,
                f"must be >= generation.max_new_tokens_from ({self.max_new_tokens_from})")
        check_sampling("generation", self.top_k, self.top_p)


def sampler_rng(seed: int, rank: int = 0) -> np.random.Generator:
    """A training sampler's own draws (each batch's cap on new tokens), per process."""
    return np.random.default_rng(seed + 1_000_003 * rank)


def call_seed(seed: int, call: int, rank: int = 0) -> int:
    """The seed of one ``generate`` call of a training sampler (PPO's steps, online DPO's, the
    sample stage's batches): the run's ``seed``, the call's index, and the process's rank under
    torchrun, so that no two calls or processes draw the same stream."""
    return (seed + 1_000_003 * rank) * 100_003 + call


def generate(model, tokenizer: PreTrainedTokenizerBase, queries: list[list[int]],
             max_new_tokens: int, top_k: int, top_p: float, seed: int,
             dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    """Sample one continuation per query in a single batch; each is cut after its first end
    token (any eos of ``end_ids``), which it keeps.

    Seeding per call keeps the samples identical for the same model, prompts and seed.
    """
    device = next(model.parameters()).device
    ends = end_ids(model, tokenizer)
    width = max(len(q) for q in queries)
    input_ids = torch.full((len(queries), width), tokenizer.pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for row, query in enumerate(queries):
        input_ids[row, width - len(query):] = torch.as_tensor(query)
        attention_mask[row, width - len(query):] = 1
    model.eval()  # no dropout while sampling; TRL's step leaves the policy in train mode
    torch.manual_seed(seed)
    autocast = (torch.autocast(device.type, dtype=dtype) if dtype != torch.float32
                else nullcontext())
    with torch.no_grad(), autocast:
        output = model.generate(
            input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
            max_new_tokens=max_new_tokens, do_sample=True, top_k=top_k, top_p=top_p,
            pad_token_id=tokenizer.pad_token_id, eos_token_id=ends,
        )
    responses = []
    for row in output[:, width:].cpu():
        stops = torch.isin(row, torch.as_tensor(ends)).nonzero()
        responses.append(row[: int(stops[0]) + 1] if len(stops) else row)
    return responses


def ended(response: torch.Tensor | list[int], ends: list[int]) -> bool:
    """Whether a continuation ``generate`` returned stopped at an end token (not at its cap)."""
    return len(response) > 0 and int(response[-1]) in ends
