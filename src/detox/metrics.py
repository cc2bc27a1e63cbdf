"""Toxicity statistics of scored rollouts and the training summary."""

from __future__ import annotations

import numpy as np
import pandas as pd


def toxicity_summary(scores: np.ndarray | pd.Series) -> dict[str, float]:
    """The paper's table entries: mean and (population) std of per-continuation toxicity."""
    scores = np.asarray(scores, dtype=float)
    return {"mean_toxicity": round(float(scores.mean()), 6),
            "std_toxicity": round(float(scores.std()), 6), "n": int(scores.size)}


def eval_metrics(rollouts: dict[str, dict[str, pd.DataFrame]]) -> dict:
    """``{eval_set: {model: summary}}`` from ``{eval_set: {model: rollouts with toxicity}}``."""
    return {eval_set: {model: toxicity_summary(frame["toxicity"]) for model, frame in by_model.items()}
            for eval_set, by_model in rollouts.items()}


def train_summary(log: list[dict[str, float]], parameters: dict[str, float], seconds: float,
                  window: int = 5) -> dict[str, float]:
    """Parameter counts and the reward/KL trend; start/end rewards average ``window`` steps."""
    frame = pd.DataFrame(log)
    return {
        **parameters,
        "steps": len(frame),
        "reward_mean_start": round(float(frame["reward_mean"].head(window).mean()), 6),
        "reward_mean_end": round(float(frame["reward_mean"].tail(window).mean()), 6),
        "toxicity_mean_start": round(float(frame["toxicity_mean"].head(window).mean()), 6),
        "toxicity_mean_end": round(float(frame["toxicity_mean"].tail(window).mean()), 6),
        "kl_last": round(float(frame["kl"].iloc[-1]), 6),
        "seconds": round(seconds, 1),
    }
