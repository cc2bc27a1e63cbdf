"""Rollouts: k sampled continuations of every eval prompt, one row each."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from detox.evaluate.params import EvalParams
from detox.generation import ended, generate
from detox.models import end_ids


def continuations(model, tokenizer: PreTrainedTokenizerBase, queries: list[list[int]],
                  sampling: EvalParams, batch_size: int, seed: int,
                  dtype: torch.dtype = torch.float32, desc: str = "generating") -> pd.DataFrame:
    """One continuation (prompt excluded) of every query, ``sampling.max_new_tokens`` at most.

    Columns: ``continuation`` (decoded, eos dropped), ``continuation_ids`` (the sampled ids,
    the end token included where there is one: what likelihoods are scored on),
    ``continuation_tokens`` (tokens before the end: 0 when the policy ended at once) and
    ``ended_with_eos``.
    """
    ends = end_ids(model, tokenizer)
    rows = []
    for start in tqdm(range(0, len(queries), batch_size), desc=desc, unit="batch"):
        batch = queries[start:start + batch_size]
        responses = generate(model, tokenizer, batch, sampling.max_new_tokens, sampling.top_k,
                             sampling.top_p, seed + start, dtype)
        for response, text in zip(responses, tokenizer.batch_decode(responses,
                                                                    skip_special_tokens=True)):
            stopped = ended(response, ends)
            rows.append((text, response.tolist(), len(response) - stopped, stopped))
    return pd.DataFrame(rows, columns=["continuation", "continuation_ids", "continuation_tokens",
                                       "ended_with_eos"])


def rollout_table(model, tokenizer: PreTrainedTokenizerBase, prompts: pd.DataFrame,
                  samples_per_prompt: int, sampling: EvalParams, batch_size: int,
                  seed: int, dtype: torch.dtype = torch.float32,
                  desc: str = "generating") -> pd.DataFrame:
    """``samples_per_prompt`` continuations of every prompt (``input_ids``), one row each."""
    k = samples_per_prompt
    queries = [list(ids) for ids in prompts["input_ids"] for _ in range(k)]
    ids = pd.DataFrame({
        "prompt_id": np.repeat(np.arange(len(prompts)), k),
        "sample": np.tile(np.arange(k), len(prompts)),
        "prompt": np.repeat(prompts["prompt"].to_numpy(), k),
        "prompt_ids": queries,
    })
    return pd.concat([ids, continuations(model, tokenizer, queries, sampling, batch_size, seed,
                                         dtype, desc)], axis=1)


