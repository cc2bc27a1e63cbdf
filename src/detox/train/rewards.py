"""The PPO reward: a transform of the toxicity scorer's logits, higher = less toxic."""

from __future__ import annotations

import torch

from detox import DetoxError


# What each reward kind pays for, in the words the model card uses.
MEANINGS = {
    "neutral_logit": "the scorer's raw logit of its neutral label, unbounded: it keeps paying "
                     "for ever more 'neutral-looking' words once a text is clean",
    "neutral_softmax": "the scorer's probability of its neutral label, bounded in [0, 1]: "
                       "nothing more to gain once a continuation is clean",
    "log_toxicity": "-log P(toxic), unbounded as P(toxic) falls to 0",
}


def rewards(logits: torch.Tensor, kind: str, neutral: int) -> torch.Tensor:
    """Per-text PPO reward, higher = less toxic.

    neutral_logit:   raw logit of the neutral label (the paper's choice: smoothest).
    neutral_softmax: softmax probability of the neutral label, in [0, 1].
    log_toxicity:    -log P(toxic), P(toxic) = 1 - P(neutral); in [0, inf), computed stably.
    """
    logits = logits.float()
    if kind == "neutral_logit":
        return logits[:, neutral]
    if kind == "neutral_softmax":
        return logits.softmax(dim=-1)[:, neutral]
    if kind == "log_toxicity":
        log_probs = logits.log_softmax(dim=-1)
        others = torch.cat([log_probs[:, :neutral], log_probs[:, neutral + 1:]], dim=1)
        return -others.logsumexp(dim=-1)
    raise DetoxError(f"params.yaml: reward={kind!r} is invalid")
