"""Fluency: the likelihood of each continuation given its prompt under a causal LM."""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase


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
