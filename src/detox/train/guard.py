"""Divergence as a recorded outcome: after every PPO step the stats TRL computed for it are
checked for NaN or inf (losses, log-probabilities, values, ...), a KL to the reference beyond
``ppo.max_kl``, and a collapse of the reward."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

WINDOW = 5  # steps averaged for the reward's start and for its recent level


def divergence(stats: Mapping[str, object], log: list[dict[str, float]], max_kl: float,
               max_reward_drop: float) -> str | None:
    """Why the step whose TRL ``stats`` end ``log`` diverged, or None if it did not.

    The reward collapsed when the mean reward of the last ``WINDOW`` steps is below that of the
    first ``WINDOW`` by more than ``max_reward_drop`` times the first step's per-sample reward
    std: a bound that means the same for every reward kind.
    """
    for name, value in stats.items():
        try:
            finite = bool(np.all(np.isfinite(np.asarray(value, dtype=float))))
        except (TypeError, ValueError):
            continue  # not a number
        if not finite:
            return f"{name} is not finite"
    kl = float(stats["objective/kl"])
    if kl > max_kl:
        return f"the KL to the reference, {kl:.4g}, exceeds ppo.max_kl={max_kl:g}"
    if len(log) >= 2 * WINDOW:
        start = np.mean([row["reward_mean"] for row in log[:WINDOW]])
        recent = np.mean([row["reward_mean"] for row in log[-WINDOW:]])
        spread = max(log[0]["reward_std"], 1e-8)
        if recent < start - max_reward_drop * spread:
            return (f"the reward collapsed: {recent:.4g} over the last {WINDOW} steps against "
                    f"{start:.4g} over the first, more than ppo.max_reward_drop="
                    f"{max_reward_drop:g} times the first step's spread ({spread:.3g})")
    return None
