"""The PPO loop: sample prompts, generate in one batch, score, reward, ``PPOTrainer.step``;
and the summary of its log."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase
from trl import PPOConfig, PPOTrainer

from detox.generation import generate
from detox.scoring import Scorer, toxicity
from detox.train.params import TrainParams
from detox.train.rewards import rewards


def ppo_config(params: TrainParams, device: torch.device) -> PPOConfig:
    ppo = params.ppo
    mixed = {"fp32": "no", "fp16": "fp16", "bf16": "bf16"}[params.model.precision]
    return PPOConfig(
        learning_rate=ppo.learning_rate, batch_size=ppo.batch_size,
        mini_batch_size=ppo.mini_batch_size, ppo_epochs=ppo.ppo_epochs,
        init_kl_coef=ppo.init_kl_coef, target=ppo.target_kl, adap_kl_ctrl=ppo.adaptive_kl,
        seed=params.seed, log_with=None, remove_unused_columns=False,
        accelerator_kwargs={"cpu": device.type == "cpu", "mixed_precision": mixed},
    )


def train(policy, reference, tokenizer: PreTrainedTokenizerBase, scorer: Scorer,
          neutral: int, prompts: list[list[int]], params: TrainParams, device: torch.device,
          dtype: torch.dtype = torch.float32) -> list[dict[str, float]]:
    """Run ``params.ppo.steps`` PPO steps in place on ``policy``; return one log row per step."""
    trainer = PPOTrainer(ppo_config(params, device), policy, reference, tokenizer)
    # Under `accelerate launch` each process draws its own prompts and samples (rank 0 = seed).
    rank = trainer.accelerator.process_index
    rng = np.random.default_rng(params.seed + 1_000_003 * rank)
    batch_size, generation = params.ppo.batch_size, params.generation
    order = rng.permutation(len(prompts))
    cursor, log = 0, []
    for step in tqdm(range(1, params.ppo.steps + 1), desc="PPO", unit="step"):
        if cursor + batch_size > len(order):  # a new epoch over the training prompts
            order, cursor = rng.permutation(len(prompts)), 0
        batch = [prompts[i] for i in order[cursor:cursor + batch_size]]
        cursor += batch_size
        started = time.perf_counter()
        new_tokens = int(rng.integers(generation.min_new_tokens, generation.max_new_tokens + 1))
        responses = generate(policy, tokenizer, batch, new_tokens, generation.top_k,
                             generation.top_p, (params.seed + 1_000_003 * rank) * 100_003 + step,
                             dtype)
        texts = tokenizer.batch_decode(responses, skip_special_tokens=True)
        logits = scorer.logits(texts)
        reward = rewards(logits, params.reward, neutral)
        queries = [torch.as_tensor(q, device=device) for q in batch]
        stats = trainer.step(queries, [r.to(device) for r in responses], list(reward.to(device)))
        log.append({
            "step": step,
            "reward_mean": float(reward.mean()),
            "toxicity_mean": float(toxicity(logits, neutral).mean()),
            "kl": float(stats["objective/kl"]),
            "kl_coef": float(stats["objective/kl_coef"]),
            "response_tokens": float(np.mean([len(r) for r in responses])),
            "seconds": time.perf_counter() - started,
        })
    return log


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
