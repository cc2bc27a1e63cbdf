"""Fluency: the likelihood of each continuation given its prompt under a causal LM, or under
the policy that wrote it (KL to the base), which may be the base with a decoding-time filter."""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import NoBadWordsLogitsProcessor, PreTrainedTokenizerBase

from detox.models import end_ids, special_prefix


def retokenized(tokenizer: PreTrainedTokenizerBase, prompts: list[str], texts: list[str],
                ended_with_eos: list[bool]) -> tuple[list[list[int]], list[list[int]]]:
    """Prompts and continuations as another LM's tokenizer reads them (a fluency LM of its
    own): each prompt after the tokenizer's own prefix (its BOS), each continuation followed by
    its eos where it ended with one."""
    prefix = special_prefix(tokenizer)
    prompt_ids = [prefix + ids for ids in tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]
    text_ids = [ids + [tokenizer.eos_token_id] if ended else ids for ids, ended in
                zip(tokenizer(list(texts), add_special_tokens=False)["input_ids"], ended_with_eos)]
    return prompt_ids, text_ids


@torch.no_grad()
def continuation_nll(model, pad_token_id: int, prompt_ids: list[list[int]],
                     continuation_ids: list[list[int]], batch_size: int,
                     desc: str = "fluency") -> tuple[np.ndarray, np.ndarray]:
    """Summed negative log-likelihood of each continuation given its prompt, and its token count.

    The ids are the sampled ones (the policy's own tokens, so the KL to the base is not biased
    by a re-tokenisation), or ``retokenized`` for another LM. A continuation's end token is
    scored too: stopping is part of what was written, and an empty continuation (eos first)
    gets a likelihood instead of vanishing from the perplexity. Sequences longer than the
    model's context keep their last tokens.

    A model whose generation config bans words (``bad_words_ids``: a decoding-time filter)
    never samples from its raw distribution: each scored token is scored under the filtered
    one, as ``generate`` masks it, renormalised.
    """
    device = next(model.parameters()).device
    bad_words = getattr(getattr(model, "generation_config", None), "bad_words_ids", None)
    # The end tokens generate is given (detox.generation): a sequence of just one is not banned.
    ban = (NoBadWordsLogitsProcessor(bad_words, eos_token_id=end_ids(model))
                   if bad_words else None)
    context = getattr(model.config, "max_position_embeddings", 1024)
    nll, counts = np.zeros(len(continuation_ids)), np.zeros(len(continuation_ids), dtype=int)
    for start in tqdm(range(0, len(continuation_ids), batch_size), desc=desc, unit="batch"):
        rows = range(start, min(start + batch_size, len(continuation_ids)))
        sequences = [(list(prompt_ids[i]) + list(continuation_ids[i]))[-context:] for i in rows]
        lengths = [min(len(continuation_ids[i]), len(seq) - 1) for i, seq in zip(rows, sequences)]
        width = max(len(seq) for seq in sequences)
        input_ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
        targets = torch.full((len(sequences), width), -100, dtype=torch.long)
        for row, (seq, n) in enumerate(zip(sequences, lengths)):
            input_ids[row, : len(seq)] = torch.as_tensor(seq)
            if n > 0:
                targets[row, len(seq) - n: len(seq)] = torch.as_tensor(seq[len(seq) - n:])
        attention = (torch.arange(width)[None, :] < torch.tensor([len(s) for s in sequences])[:, None])
        logits = model(input_ids=input_ids.to(device),
                       attention_mask=attention.long().to(device)).logits.float()
        if ban is not None:
            filtered(ban, max(len(seq) for seq in bad_words), logits,
                     input_ids.to(device), targets[:, 1:].to(device))
        losses = torch.nn.functional.cross_entropy(
            logits[:, :-1].transpose(1, 2), targets[:, 1:].to(device), reduction="none",
            ignore_index=-100)
        nll[list(rows)] = losses.sum(dim=1).cpu().numpy()
        counts[list(rows)] = lengths
    return nll, counts


def filtered(ban: NoBadWordsLogitsProcessor, longest: int, logits: torch.Tensor,
             input_ids: torch.Tensor, targets: torch.Tensor) -> None:
    """Mask ``logits`` in place at every scored position as ``generate`` does: the processor
    sees each position's last ``longest`` tokens (-1, which matches no token, before the
    start), all scored positions of the batch in one call."""
    scored = targets != -100  # logits[:, t] predicts targets[:, t] = input_ids[:, t + 1]
    padded = torch.nn.functional.pad(input_ids, (longest, 0), value=-1)
    # windows[:, t] = the tokens up to and including t, the prefix generate had at that step
    windows = padded.unfold(1, longest, 1)[:, 1:input_ids.shape[1]]
    # The scored ids are the filtered policy's own samples: none is masked here.
    logits[:, :-1][scored] = ban(windows[scored], logits[:, :-1][scored])
