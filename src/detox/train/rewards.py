"""The PPO reward: a transform of the toxicity scorer's logits, higher = less toxic.

Each transform reads the scorer's ``[not toxic, toxic]`` logits (``ToxicityReading.binary``),
so it means the same for a softmax classifier with a neutral label and for a multi-label
(sigmoid) one with toxic labels; ``p`` below is the scorer's P(toxic), ``t = logit(p)``.
"""

from __future__ import annotations

import torch

from detox import DetoxError
from detox.toxicity import ToxicityReading

# What each reward kind pays for, in the words the model card uses.
MEANINGS = {
    "neutral_logit": "the scorer's raw logit of 'not toxic' (its neutral label's, or minus "
                     "the logit of its toxic label for a multi-label scorer), unbounded: it "
                     "keeps paying for ever more 'neutral-looking' words once a text is clean",
    "neutral_softmax": "the scorer's probability of 'not toxic' (1 - P(toxic)), bounded in "
                       "[0, 1]: nothing more to gain once a continuation is clean",
    "log_toxicity": "-log P(toxic), unbounded as P(toxic) falls to 0",
}


def rewards(logits: torch.Tensor, kind: str, reading: ToxicityReading) -> torch.Tensor:
    """Per-text PPO reward, higher = less toxic, from the scorer's raw ``logits``.

    neutral_logit:   the logit of "not toxic" (the paper's choice: smoothest). Softmax
                     scorer: the neutral label's raw logit. Multi-label scorer: -t, minus the
                     toxic label's logit (of the largest, with several toxic labels).
    neutral_softmax: 1 - p, in [0, 1]. Softmax: the neutral label's probability; multi-label:
                     sigmoid(-t).
    log_toxicity:    -log p, in [0, inf), computed stably (multi-label: softplus(-t)).
    """
    binary = reading.binary(logits)
    if kind == "neutral_logit":
        return binary[:, 0]
    if kind == "neutral_softmax":
        return binary.softmax(dim=-1)[:, 0]
    if kind == "log_toxicity":
        return -binary.log_softmax(dim=-1)[:, 1]
    raise DetoxError(f"params.yaml: reward={kind!r} is invalid")
