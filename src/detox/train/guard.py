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

    The reward collapsed when the mean reward of the last ``WINDOW`` steps is below the best
    such mean so far by more than ``max_reward_drop`` times the per-sample reward std of the
    first ``WINDOW`` steps: a bound that means the same for every reward kind. ``max_kl`` bounds
    TRL's ``objective/kl``, the KL summed over a continuation's tokens (nats per sequence).
    """
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
    kl = float(stats["objective/kl"])
    if kl > max_kl:
        return f"the KL to the reference, {kl:.4g}, exceeds ppo.max_kl={max_kl:g}"
    if len(log) >= 2 * WINDOW:
        means = np.convolve([row["reward_mean"] for row in log], np.ones(WINDOW) / WINDOW,
                            mode="valid")
        spread = max(float(np.nanmean([row["reward_std"] for row in log[:WINDOW]])), 1e-3)
        if means[-1] < means.max() - max_reward_drop * spread:
            return (f"the reward collapsed: {means[-1]:.4g} over the last {WINDOW} steps "
                    f"against a best of {means.max():.4g}, more than ppo.max_reward_drop="
                    f"{max_reward_drop:g} times its spread at the start ({spread:.3g})")
    return None
