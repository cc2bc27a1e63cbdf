"""The ``ppo`` method: the PPO loop (sample prompts, generate in one batch, score, reward,
``PPOTrainer.step``), the summary of its log and its model card rows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import PartialState
from accelerate.utils import DistributedType
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase
from trl import PPOConfig, PPOTrainer

from detox.device import is_main_process, scorer_dtype
from detox.generation import call_seed, generate, sampler_rng
from detox.models import require_context
from detox.scoring import load_scorer
from detox.toxicity import Scorer, ToxicityReading, toxicity_reading
from detox.train.guard import REACH, Divergence, divergence
from detox.train.log import LiveSeries, log_row
from detox.train.method import (BASE, PAPER, SCORER, TRAIN_PROMPTS, TRAINING_LOG, Built, Method,
                                Rows, processes, trained_part, training_prompts)
from detox.train.params import PPOParams, TrainParams
from detox.train.policy import (count_parameters, enable_gradient_checkpointing, load_trainable,
                                model_to_save)
from detox.train.resume import (Checkpoints, Progress, StopRequest, checkpoint_root,
                                remove_checkpoints, run_key)
from detox.train.rewards import MEANINGS, rewards
from detox.train.summary import WINDOW, TrainSummary, window_means
from detox.train.trunk import reused_frozen_trunk


def ppo_config(params: TrainParams, device: torch.device) -> PPOConfig:
    ppo = params.ppo
    mixed = {"fp32": "no", "fp16": "fp16", "bf16": "bf16"}[params.model.precision]
    return PPOConfig(
        learning_rate=ppo.learning_rate, batch_size=ppo.batch_size,
        mini_batch_size=ppo.mini_batch_size, ppo_epochs=ppo.ppo_epochs,
        init_kl_coef=ppo.init_kl_coef, adap_kl_ctrl=ppo.adaptive_kl, target=ppo.target_kl,
        horizon=ppo.kl_horizon,
        seed=params.seed, log_with=None, remove_unused_columns=False,
        accelerator_kwargs={"cpu": device.type == "cpu", "mixed_precision": mixed},
    )


@dataclass
class Outcome:
    """What a run did: one log row per good step, and why it stopped early if it diverged."""

    log: list[dict[str, float]]
    diverged_at: int | None = None  # the step whose stats diverged
    cause: str | None = None
    model_step: int | None = None  # the step of the checkpoint the policy was put back to


def run_ppo(policy, reference, tokenizer: PreTrainedTokenizerBase, scorer: Scorer,
          reading: ToxicityReading, prompts: list[list[int]], params: TrainParams,
          device: torch.device, checkpoint_dir: Path, dtype: torch.dtype = torch.float32,
          log_dir: Path | None = None) -> Outcome:
    """Run ``params.ppo.steps`` PPO steps in place on ``policy``, resuming from the latest
    checkpoint in ``checkpoint_dir`` if there is one; the main process writes each step's
    stats as dvclive series in ``log_dir`` (if given) as it goes.

    On divergence the policy is put back to its last checkpoint that a later step checked, the
    log is cut there, and the run ends early; on SIGINT/SIGTERM it saves a checkpoint after the
    current step and exits (128 + signal).
    ``reference`` is ``None`` for a LoRA policy: TRL then scores the reference with the
    policy's adapter disabled.
    """
    if params.ppo.gradient_checkpointing:
        # Not TRL's own option (PPOConfig.gradient_checkpointing): see the function.
        enable_gradient_checkpointing(policy)
    if reference is not None and PartialState().distributed_type == DistributedType.MULTI_CPU:
        # accelerate wraps every model in DDP on a CPU process group (on GPUs only trainable
        # ones), and DDP refuses a model with nothing to train: mark the reference's value
        # head, which nothing reads or updates, as trainable.
        reference.v_head.summary.bias.requires_grad_(True)
    trainer = PPOTrainer(ppo_config(params, device), policy, reference, tokenizer)
    accelerator, ppo = trainer.accelerator, params.ppo
    # Under torchrun / `accelerate launch` the processes split each pass over the prompts
    # between them (one shared order per pass) and sample with their own seeds.
    rank, processes = accelerator.process_index, accelerator.num_processes
    rng = sampler_rng(params.seed, rank)
    checkpoints = Checkpoints(checkpoint_dir, accelerator, reach=REACH)
    if checkpoints.latest() is not None:
        progress = checkpoints.load(policy, trainer.optimizer)
        trainer.kl_ctl.value = progress.kl_coef
        rng.bit_generator.state = progress.rng
        if progress.scaler and accelerator.scaler is not None:
            accelerator.scaler.load_state_dict(progress.scaler)
        print(f"resuming from the checkpoint of step {progress.step} in {checkpoint_dir}")
    else:
        progress = Progress(step=0, kl_coef=float(trainer.kl_ctl.value), log=[], epoch=0,
                            cursor=0, rng=rng.bit_generator.state)
        checkpoints.save(policy, trainer.optimizer, progress)  # the start: good by definition
    log, epoch, cursor = progress.log, progress.epoch, progress.cursor
    series = (LiveSeries(log_dir, log) if log_dir is not None and is_main_process()
              else None)
    batch_size, generation = ppo.batch_size, params.generation
    order = np.random.default_rng([params.seed, epoch]).permutation(len(prompts))
    trainable = [p for p in policy.parameters() if p.requires_grad]
    with StopRequest() as stop:
        for step in tqdm(range(progress.step + 1, ppo.steps + 1), desc="PPO", unit="step",
                         initial=progress.step, total=ppo.steps):
            if cursor + batch_size * processes > len(order):  # the next pass over the prompts
                epoch, cursor = epoch + 1, 0
                order = np.random.default_rng([params.seed, epoch]).permutation(len(prompts))
            start = cursor + rank * batch_size
            batch = [prompts[i] for i in order[start:start + batch_size]]
            cursor += batch_size * processes
            new_tokens = int(rng.integers(generation.max_new_tokens_from,
                                          generation.max_new_tokens_to + 1))
            responses = generate(policy, tokenizer, batch, new_tokens, generation.top_k,
                                 generation.top_p,
                                 call_seed(params.seed, step, rank), dtype)
            texts = tokenizer.batch_decode(responses, skip_special_tokens=True)
            logits = scorer.logits(texts)
            reward = rewards(logits, params.reward, reading)
            queries = [torch.as_tensor(q, device=device) for q in batch]
            stats = ppo_step(trainer, policy, reference, queries,
                             [r.to(device) for r in responses], list(reward.to(device)))
            # TRL's stats are already averaged over the processes; ours are made so.
            toxic, length = accelerator.reduce(torch.tensor(
                [float(reading.toxicity(logits).mean()),
                 float(np.mean([len(r) for r in responses]))], device=accelerator.device),
                "mean").tolist()
            samples = int(accelerator.reduce(torch.tensor(len(batch), device=accelerator.device),
                                             "sum"))
            row = log_row(step, stats, samples=samples, toxicity_mean=toxic,
                          response_tokens=length, max_new_tokens=new_tokens)
            diverged = divergence(stats, [*log, row], ppo.max_kl_ratio, ppo.max_score_drop,
                                  batch_size * processes)
            if diverged is None and not all(torch.isfinite(p).all() for p in trainable):
                diverged = Divergence("the weights are not finite after the update", step)
            if diverged is not None:
                model_step = checkpoints.load_weights(
                    policy, checkpoints.newest_up_to(diverged.last_good_step))
                if series is not None:  # the series describe the model kept
                    LiveSeries(log_dir, log[:model_step])
                return Outcome(log[:model_step], diverged_at=step, cause=diverged.cause,
                               model_step=model_step)
            log.append(row)
            if series is not None:
                series.add(row)
            signum = stop.agreed(accelerator)
            if step % ppo.save_every == 0 or signum:
                checkpoints.save(policy, trainer.optimizer, Progress(
                    step=step, kl_coef=float(trainer.kl_ctl.value), log=log, epoch=epoch,
                    cursor=cursor, rng=rng.bit_generator.state,
                    scaler=accelerator.scaler.state_dict() if accelerator.scaler else None))
            if signum:
                raise SystemExit(128 + signum)
    return Outcome(log)


def ppo_step(trainer: PPOTrainer, policy, reference, queries: list[torch.Tensor],
             responses: list[torch.Tensor], reward: list[torch.Tensor]) -> dict:
    """TRL's ``PPOTrainer.step``, with the frozen bottom blocks that ``policy`` and
    ``reference`` share run once per sequence instead of once per pass (``trunk.py``)."""
    with reused_frozen_trunk(policy, reference):
        return trainer.step(queries, responses, reward)


def gradient_steps(ppo: PPOParams, steps: int) -> int:
    """Optimizer steps of ``steps`` PPO steps in one process: TRL 0.11.4 updates once per
    mini-batch, ``ppo_epochs`` times over each batch."""
    return steps * ppo.ppo_epochs * (ppo.batch_size // ppo.mini_batch_size)


def train_summary(outcome: Outcome, parameters: dict[str, Any], ppo: PPOParams,
                  window: int = WINDOW) -> TrainSummary:
    """Parameter counts, the samples learned from (all processes, each scored once), the
    optimizer steps, the score, reward, toxicity and KL trends (start/end average of ``window``
    steps) and whether the run diverged: where, why, and which step's model it kept. No
    wall-clock time: the same inputs give the same summary."""
    samples = int(sum(row["samples"] for row in outcome.log))
    trends = {"steps": len(outcome.log)}
    for column in ("score_mean", "reward_mean", "toxicity_mean", "kl", "kl_coef"):
        trends[f"{column}_start"], trends[f"{column}_end"] = window_means(
            [row[column] for row in outcome.log], window)
    summary = TrainSummary.of(parameters, samples, samples,
                              gradient_steps(ppo, len(outcome.log)), **trends)
    summary.diverged = outcome.diverged_at is not None
    summary.diverged_at_step, summary.divergence = outcome.diverged_at, outcome.cause
    summary.model_step = outcome.model_step
    return summary


class PPO(Method):
    """PPO (TRL 0.11.4) on the training prompts, rewarded by the scorer, held near the base by
    a KL penalty. Checkpoints go to data/checkpoints/<run key>/: rerunning with the same params
    and inputs resumes there; a diverged run keeps its last good checkpoint."""

    name, display_name = "ppo", "PPO"
    tags = ("ppo", "trl", "reinforcement-learning")
    also_trains = "PPO's value head"
    panels = {
        "score, KL-penalised reward, toxicity": ("score_mean", "reward_mean", "toxicity_mean"),
        "KL to the reference and entropy (nats per continuation), beta":
            ("kl", "entropy", "kl_coef"),
        "losses, clip fractions, update KL": ("loss_policy", "loss_value", "clipfrac_policy",
                                              "clipfrac_value", "approx_kl_update"),
        "continuation length (tokens)": ("response_tokens", "max_new_tokens"),
    }

    def title(self, params: TrainParams, summary: TrainSummary) -> str:
        return f"PPO, {trained_part(params)}, {params.reward}"

    def description(self, base: str, scorer: str, summary: TrainSummary) -> str:
        return (f"`{base}` fine-tuned with PPO (TRL 0.11.4) to continue toxic prompts less "
                f"toxically, rewarded by `{scorer}` and held near the base model by a KL "
                f"penalty, as in {PAPER}.")

    def card_rows(self, params: TrainParams, summary: TrainSummary, scorer: str) -> Rows:
        ppo, generation, details = params.ppo, params.generation, summary.details
        diverged = "no" if not summary.diverged else (
            f"yes, at step {summary.diverged_at_step} ({summary.divergence}); these are the "
            f"weights of step {summary.model_step}")
        return [
            ["reward", f"`{params.reward}` of `{scorer}`: {MEANINGS[params.reward]}"],
            ["PPO", f"{ppo.steps} steps of {ppo.batch_size} prompts, mini-batch "
                    f"{ppo.mini_batch_size}, {ppo.ppo_epochs} epochs, learning rate "
                    f"{ppo.learning_rate:g}, initial KL coefficient {ppo.init_kl_coef:g}"
                    + (f", adaptive to a KL of {ppo.target_kl:g} nats per continuation "
                       f"(horizon {ppo.kl_horizon:,})" if ppo.adaptive_kl else ", fixed")],
            ["KL coefficient", "no step kept" if details["kl_coef_start"] is None else
             f"{details['kl_coef_start']:.4g} over the first {WINDOW} steps, "
             f"{details['kl_coef_end']:.4g} over the last {WINDOW}"],
            ["sampling", f"at most {generation.max_new_tokens_from}-"
                         f"{generation.max_new_tokens_to} new tokens (drawn per batch), "
                         + (f"top-k {generation.top_k}, " if generation.top_k else "no top-k, ")
                         + f"top-p {generation.top_p:g}"],
            ["diverged", diverged],
        ]

    def build(self, params: TrainParams, device: torch.device, dtype: torch.dtype,
              tokenizer: PreTrainedTokenizerBase) -> Built:
        # Before TRL makes one without the cpu flag: under torchrun on CPU this is what gives
        # the processes their gloo group (else each would train alone, unaware of the others).
        PartialState(cpu=device.type == "cpu")
        policy, reference = load_trainable(BASE, params.layers, device, params.seed,
                                           params.adapter)
        require_context(policy.pretrained_model.config, params.data.prompt_max_tokens,
                        params.generation.max_new_tokens_to)
        parameters = count_parameters(policy)
        scorer = load_scorer(SCORER, device, scorer_dtype(device))
        reading = toxicity_reading(scorer.id2label, scorer.multi_label,
                                   params.model.neutral_label, params.model.toxic_labels)
        prompts = training_prompts(params.ppo.batch_size, "ppo.batch_size")
        checkpoints = checkpoint_root() / run_key(params.used(), [TRAIN_PROMPTS, BASE, SCORER],
                                                  processes())
        outcome = run_ppo(policy, reference, tokenizer, scorer, reading, prompts, params,
                          device, checkpoints, dtype, log_dir=TRAINING_LOG)
        if outcome.cause:
            print(f"warning: the run diverged at step {outcome.diverged_at} ({outcome.cause}); "
                  f"kept the model of step {outcome.model_step}")
        summary = train_summary(outcome, parameters, params.ppo)
        summary.details["prompts"] = len(prompts)
        return Built(model_to_save(policy), summary, outcome.log,
                     cleanup=lambda: remove_checkpoints(checkpoints))


METHOD = PPO()
