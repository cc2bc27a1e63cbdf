"""k scored continuations of the base policy per training prompt, one row each."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from detox.generation import GenerationParams, call_seed, ended, generate
from detox.models import end_ids
from detox.toxicity import Scorer, ToxicityReading

COLUMNS = ("prompt_id", "prompt", "prompt_ids", "sample", "continuation", "continuation_ids",
           "ended_with_eos", "toxicity")


def pick_prompts(prompts: pd.DataFrame, count: int, seed: int) -> pd.DataFrame:
    """``count`` distinct training prompts, drawn with ``seed``; all of them, with a warning,
    where there are fewer (the samples' summary says how many were drawn)."""
    if count > len(prompts):
        print(f"warning: samples.total / samples.per_prompt = {count} prompts, but there are "
              f"{len(prompts)} training prompts: sampling all of them (raise "
              "samples.per_prompt to keep the total)")
        count = len(prompts)
    order = np.random.default_rng(seed).permutation(len(prompts))[:count]
    return prompts.iloc[np.sort(order)].reset_index(drop=True)


def scored_samples(model, tokenizer: PreTrainedTokenizerBase, scorer: Scorer,
                   reading: ToxicityReading, prompts: pd.DataFrame, per_prompt: int,
                   sampling: GenerationParams, batch_size: int, seed: int,
                   dtype: torch.dtype = torch.float32) -> pd.DataFrame:
    """``per_prompt`` continuations of every prompt (``prompt``, ``input_ids``), each scored
    by the reward scorer as ``reading`` reads it (``toxicity``: its P(toxic)).

    As in PPO, each batch draws its cap on new tokens from the ``generation`` range, so the
    samples have the lengths PPO's have. ``continuation_ids`` are the sampled ids themselves,
    eos included where the policy ended: what sft and dpo train on, not a re-tokenisation.
    """
    rng = np.random.default_rng(seed)
    ends = end_ids(model, tokenizer)
    frames = []
    for start in tqdm(range(0, len(prompts), batch_size), desc="sampling", unit="batch"):
        batch = prompts.iloc[start:start + batch_size]
        queries = [list(ids) for ids in batch["input_ids"] for _ in range(per_prompt)]
        new_tokens = int(rng.integers(sampling.max_new_tokens_from,
                                      sampling.max_new_tokens_to + 1))
        responses = generate(model, tokenizer, queries, new_tokens, sampling.top_k,
                             sampling.top_p, call_seed(seed, start), dtype)
        texts = tokenizer.batch_decode(responses, skip_special_tokens=True)
        frames.append(pd.DataFrame({
            "prompt_id": np.repeat(np.arange(start, start + len(batch)), per_prompt),
            "prompt": np.repeat(batch["prompt"].to_numpy(), per_prompt),
            "prompt_ids": queries,
            "sample": np.tile(np.arange(per_prompt), len(batch)),
            "continuation": texts,
            "continuation_ids": [response.tolist() for response in responses],
            "ended_with_eos": [ended(r, ends) for r in responses],
            "toxicity": reading.toxicity(scorer.logits(texts)).round(6),
        }))
    return pd.concat(frames, ignore_index=True)[list(COLUMNS)]
