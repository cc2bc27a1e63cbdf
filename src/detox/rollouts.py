"""Batched generation: left-padded prompts, one ``generate`` call per batch, continuations only."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from detox.params import GenerationParams


def generate(model, tokenizer: PreTrainedTokenizerBase, queries: list[list[int]],
             max_new_tokens: int, generation: GenerationParams, seed: int,
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
            max_new_tokens=max_new_tokens, do_sample=True, top_k=generation.top_k,
            top_p=generation.top_p, pad_token_id=tokenizer.pad_token_id, eos_token_id=eos,
        )
    responses = []
    for row in output[:, width:].cpu():
        ends = (row == eos).nonzero()
        responses.append(row[: int(ends[0]) + 1] if len(ends) else row)
    return responses


def continuations(model, tokenizer: PreTrainedTokenizerBase, queries: list[list[int]],
                  generation: GenerationParams, batch_size: int, seed: int,
                  dtype: torch.dtype = torch.float32, desc: str = "generating") -> list[str]:
    """Decoded continuations (prompt excluded) of every query, ``max_new_tokens`` long at most."""
    texts = []
    for start in tqdm(range(0, len(queries), batch_size), desc=desc, unit="batch"):
        batch = queries[start:start + batch_size]
        responses = generate(model, tokenizer, batch, generation.max_new_tokens, generation,
                             seed + start, dtype)
        texts += tokenizer.batch_decode(responses, skip_special_tokens=True)
    return texts


def rollout_table(model, tokenizer: PreTrainedTokenizerBase, prompts: pd.DataFrame,
                  samples_per_prompt: int, generation: GenerationParams, batch_size: int,
                  seed: int, dtype: torch.dtype = torch.float32,
                  desc: str = "generating") -> pd.DataFrame:
    """``samples_per_prompt`` continuations of every prompt (``input_ids``), one row each."""
    k = samples_per_prompt
    queries = [list(ids) for ids in prompts["input_ids"] for _ in range(k)]
    return pd.DataFrame({
        "prompt_id": np.repeat(np.arange(len(prompts)), k),
        "sample": np.tile(np.arange(k), len(prompts)),
        "prompt": np.repeat(prompts["prompt"].to_numpy(), k),
        "continuation": continuations(model, tokenizer, queries, generation, batch_size, seed,
                                      dtype, desc),
    })


@torch.no_grad()
def continuation_nll(model, tokenizer: PreTrainedTokenizerBase, prompts: list[str],
                     texts: list[str], batch_size: int,
                     desc: str = "fluency") -> tuple[np.ndarray, np.ndarray]:
    """Summed negative log-likelihood of each text given its prompt, and its token count.

    Both are re-tokenized with ``tokenizer`` so any causal LM can judge fluency; sequences
    longer than the model's context keep their last tokens.
    """
    device = next(model.parameters()).device
    context = getattr(model.config, "max_position_embeddings", 1024)
    nll, counts = np.zeros(len(texts)), np.zeros(len(texts), dtype=int)
    prompt_ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    text_ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
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
