"""Batched generation: left-padded prompts, one ``generate`` call per batch, continuations only."""

from __future__ import annotations

from contextlib import nullcontext

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
