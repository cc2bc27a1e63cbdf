"""Batched generation: left-padded prompts, one ``generate`` call per batch, continuations only."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from detox.params import EvalParams, GenerationParams

# Training and evaluation sample with their own settings; both carry top_k and top_p.
Sampling = GenerationParams | EvalParams


def generate(model, tokenizer: PreTrainedTokenizerBase, queries: list[list[int]],
             max_new_tokens: int, sampling: Sampling, seed: int,
             dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    """Sample one continuation per query in a single batch; each is cut after its first eos.

    Seeding per call keeps the samples identical for the same model, prompts and seed.
    """
    device = next(model.parameters()).device
    eos = tokenizer.eos_token_id
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
            max_new_tokens=max_new_tokens, do_sample=True, top_k=sampling.top_k,
            top_p=sampling.top_p, pad_token_id=tokenizer.pad_token_id, eos_token_id=eos,
        )
    responses = []
    for row in output[:, width:].cpu():
        ends = (row == eos).nonzero()
        responses.append(row[: int(ends[0]) + 1] if len(ends) else row)
    return responses


def continuations(model, tokenizer: PreTrainedTokenizerBase, queries: list[list[int]],
                  sampling: Sampling, batch_size: int, seed: int,
                  dtype: torch.dtype = torch.float32, desc: str = "generating") -> pd.DataFrame:
    """One continuation (prompt excluded) of every query, ``sampling.max_new_tokens`` at most.

    Columns: ``continuation`` (decoded, eos dropped), ``continuation_tokens`` (tokens before
    the eos: 0 when the policy answered eos first) and ``ended_with_eos``.
    """
    rows = []
    for start in tqdm(range(0, len(queries), batch_size), desc=desc, unit="batch"):
        batch = queries[start:start + batch_size]
        responses = generate(model, tokenizer, batch, sampling.max_new_tokens, sampling,
                             seed + start, dtype)
        for response, text in zip(responses, tokenizer.batch_decode(responses,
                                                                    skip_special_tokens=True)):
            ended = bool(len(response)) and int(response[-1]) == tokenizer.eos_token_id
            rows.append((text, len(response) - ended, ended))
    return pd.DataFrame(rows, columns=["continuation", "continuation_tokens", "ended_with_eos"])


def rollout_table(model, tokenizer: PreTrainedTokenizerBase, prompts: pd.DataFrame,
                  samples_per_prompt: int, sampling: Sampling, batch_size: int,
                  seed: int, dtype: torch.dtype = torch.float32,
                  desc: str = "generating") -> pd.DataFrame:
    """``samples_per_prompt`` continuations of every prompt (``input_ids``), one row each."""
    k = samples_per_prompt
    queries = [list(ids) for ids in prompts["input_ids"] for _ in range(k)]
    ids = pd.DataFrame({
        "prompt_id": np.repeat(np.arange(len(prompts)), k),
        "sample": np.tile(np.arange(k), len(prompts)),
        "prompt": np.repeat(prompts["prompt"].to_numpy(), k),
    })
    return pd.concat([ids, continuations(model, tokenizer, queries, sampling, batch_size, seed,
                                         dtype, desc)], axis=1)


@torch.no_grad()
def continuation_nll(model, tokenizer: PreTrainedTokenizerBase, prompts: list[str],
                     texts: list[str], batch_size: int, ended_with_eos: list[bool] | None = None,
                     desc: str = "fluency") -> tuple[np.ndarray, np.ndarray]:
    """Summed negative log-likelihood of each text given its prompt, and its token count.

    Both are re-tokenized with ``tokenizer`` so any causal LM can judge fluency; sequences
    longer than the model's context keep their last tokens. Where the continuation ended with
    an eos, that eos is scored too: stopping is part of what was written, and an empty
    continuation (eos first) gets a likelihood instead of vanishing from the perplexity.
    """
    device = next(model.parameters()).device
    context = getattr(model.config, "max_position_embeddings", 1024)
    nll, counts = np.zeros(len(texts)), np.zeros(len(texts), dtype=int)
    prompt_ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    text_ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    if ended_with_eos is not None:
        text_ids = [ids + [tokenizer.eos_token_id] if ended else ids
                    for ids, ended in zip(text_ids, ended_with_eos)]
    for start in tqdm(range(0, len(texts), batch_size), desc=desc, unit="batch"):
        rows = range(start, min(start + batch_size, len(texts)))
        sequences = [(prompt_ids[i] + text_ids[i])[-context:] for i in rows]
        lengths = [min(len(text_ids[i]), len(seq) - 1) for i, seq in zip(rows, sequences)]
        width = max(len(seq) for seq in sequences)
        input_ids = torch.full((len(sequences), width), tokenizer.pad_token_id, dtype=torch.long)
        targets = torch.full((len(sequences), width), -100, dtype=torch.long)
        for row, (seq, n) in enumerate(zip(sequences, lengths)):
            input_ids[row, : len(seq)] = torch.as_tensor(seq)
            if n > 0:
                targets[row, len(seq) - n: len(seq)] = torch.as_tensor(seq[len(seq) - n:])
        attention = (torch.arange(width)[None, :] < torch.tensor([len(s) for s in sequences])[:, None])
        logits = model(input_ids=input_ids.to(device),
                       attention_mask=attention.long().to(device)).logits.float()
        losses = torch.nn.functional.cross_entropy(
            logits[:, :-1].transpose(1, 2), targets[:, 1:].to(device), reduction="none",
            ignore_index=-100)
        nll[list(rows)] = losses.sum(dim=1).cpu().numpy()
        counts[list(rows)] = lengths
    return nll, counts
