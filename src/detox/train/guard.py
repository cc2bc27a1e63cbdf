"""Divergence as a recorded outcome: after every PPO step the stats TRL computed for it are
checked for NaN or inf (losses, log-probabilities, values, ...), a KL to the reference out of
proportion with the policy's own randomness, and a collapse of the score.

Both bounds are read on the run's own scales, so that one setting means the same for every
model, reward and continuation length:

- KL: TRL's ``objective/kl`` and ``objective/entropy`` are both nats per continuation, so both
  are divided by their step's mean continuation length. At step 1 the policy is the reference,
  so its entropy per token then is how random the reference's own tokens are; a KL per token
  beyond ``max_kl_ratio`` times that means the policy has left it further than the
  reference's own sampling spreads.
- Collapse: the score's mean over the last ``WINDOW`` steps against the best such mean so far
  and the first one. The run collapsed when it has lost more than ``max_score_drop`` of what it
  gained (1.0: fell all the way back to where it started) and the loss is beyond the noise of
  two ``WINDOW``-step means (4 standard errors from the first steps' per-sample spread).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from detox.train.summary import WINDOW  # steps averaged for the score's levels

NOISE_ERRORS = 4.0  # a drop must exceed this many standard errors of a difference of means
# How many steps back from the newest checkpoint a rollback may go: a collapse distrusts its
# whole window, and the weights before the window's first step wrote that step's rollouts.
REACH = WINDOW + 1


@dataclass(frozen=True)
class Divergence:
    """Why a step diverged, and the first step whose rollouts that distrusts."""

    cause: str
    first_bad_step: int

    @property
    def last_good_step(self) -> int:
        """The newest step whose weights are trusted: the weights of step j wrote step j + 1's
        rollouts, so those of ``first_bad_step - 2`` (0: the start)."""
        return max(self.first_bad_step - 2, 0)


def divergence(stats: Mapping[str, object], log: list[dict[str, float]], max_kl_ratio: float,
               max_score_drop: float, batch_size: int) -> Divergence | None:
    """Whether the step whose TRL ``stats`` end ``log`` (rows with ``step``, ``score_mean``,
    ``score_std``, ``entropy`` and ``response_tokens``, this step's included) diverged: why,
    and from which step on; None if it did not."""
    step = int(log[-1]["step"])
    cause = _not_finite(stats) or _kl_beyond_entropy(stats, log, max_kl_ratio)
    if cause is not None:
        return Divergence(cause, step)
    cause = _collapse(log, max_score_drop, batch_size)
    # a collapse distrusts its whole window: the weights of its first step began it
    return None if cause is None else Divergence(cause, step - WINDOW + 1)


def _not_finite(stats: Mapping[str, object]) -> str | None:
    for name, value in stats.items():
        # losses, log-probabilities, values, KL and scores; a spread (std, var) of a batch of
        # one is NaN by definition and says nothing
        if not name.startswith(("ppo/", "objective/")) or "std" in name or "var" in name:
            continue
        try:
            finite = bool(np.all(np.isfinite(np.asarray(value, dtype=float))))
        except (TypeError, ValueError):
            continue  # not a number
        if not finite:
            return f"{name} is not finite"
    return None


def _kl_beyond_entropy(stats: Mapping[str, object], log: list[dict[str, float]],
                       max_kl_ratio: float) -> str | None:
    kl = float(stats["objective/kl"]) / max(float(log[-1]["response_tokens"]), 1.0)
    entropy = float(log[0]["entropy"]) / max(float(log[0]["response_tokens"]), 1.0)
    if kl > max_kl_ratio * entropy:
        return (f"the KL to the reference, {kl:.4g} nats per token, exceeds ppo.max_kl_ratio="
                f"{max_kl_ratio:g} times the entropy per token at step 1 ({entropy:.4g})")
    return None


def _collapse(log: list[dict[str, float]], max_score_drop: float, batch_size: int) -> str | None:
    if len(log) < 2 * WINDOW:
        return None
    means = np.convolve([row["score_mean"] for row in log], np.ones(WINDOW) / WINDOW,
                        mode="valid")
    start, best, now = means[0], means.max(), means[-1]
    spread = float(np.nanmean([row["score_std"] for row in log[:WINDOW]]))
    noise = NOISE_ERRORS * spread * math.sqrt(2 / (WINDOW * batch_size))
    if best - now > max(max_score_drop * (best - start), noise):
        return (f"the score collapsed: {now:.4g} over the last {WINDOW} steps against a best "
                f"of {best:.4g} and a start of {start:.4g}, more than ppo.max_score_drop="
                f"{max_score_drop:g} of its gain lost")
    return None
