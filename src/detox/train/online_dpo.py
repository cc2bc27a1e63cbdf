"""The ``online_dpo`` method: DPO on the policy's own pairs, drawn as it trains. Each step
samples two continuations of each of ``online_dpo.batch_size`` training prompts from the
current policy, the reward scorer judges which of the two is less toxic (TRL's pairwise-judge
interface), and the DPO loss moves the trainable blocks (or LoRA) towards the less toxic one
against the frozen base. A pair the scorer cannot tell apart teaches nothing: it is left out
of the loss and counted.

TRL 0.11.4's ``OnlineDPOTrainer`` is the trainer, with its training step replaced: that
version accepts a ``judge`` but refuses to use one ("not yet supported"), reads rewards only
from a sequence classifier sharing the policy's tokenizer, samples with its own fixed
settings, cuts continuations at a single eos, and does not run under transformers 4.57. The
step here is TRL 0.12's judged step, with this project's sampling (``detox.generation``:
the same lengths, top-k, top-p and end ids as PPO's) and log-likelihoods of the sampled ids.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from trl import OnlineDPOConfig, OnlineDPOTrainer
from trl.trainer.judges import BasePairwiseJudge

from detox.device import scorer_dtype
from detox.generation import call_seed, generate, sampler_rng
from detox.models import require_context
from detox.scoring import load_scorer
from detox.toxicity import Scorer, ToxicityReading, toxicity_reading
from detox.train.finetune import LogToLive, trainable_lm, training_arguments
from detox.train.method import (BASE, PAPER, SCORER, TRAINING_LOG, Built, Method,
                                Rows, trained_part, training_prompts)
from detox.train.params import FineTuneParams, TrainParams
from detox.train.policy import count_parameters, merged
from detox.train.summary import WINDOW, TrainSummary, window_means

TIE = -1  # the judge's answer when neither continuation is less toxic


class ToxicityJudge(BasePairwiseJudge):
    """The less toxic continuation of a pair wins, as the reward scorer reads them (the
    continuation alone, as PPO's reward); a pair within ``tie`` of each other is a tie."""

    def __init__(self, scorer: Scorer, reading: ToxicityReading, tie: float = 1e-6) -> None:
        self.scorer, self.reading, self.tie = scorer, reading, tie
        self.last_toxicity: np.ndarray | None = None  # of the last pairs judged, for the log

    def judge(self, prompts: list[str], completions: list[list[str]],
              shuffle_order: bool = False) -> list[int]:
        first, second = zip(*completions)
        toxicity = np.asarray(self.reading.toxicity(self.scorer.logits([*first, *second])))
        self.last_toxicity = toxicity.reshape(2, len(first))
        a, b = self.last_toxicity
        return [TIE if abs(x - y) <= self.tie else int(y < x) for x, y in zip(a, b)]


def continuation_logprobs(model, pad_token_id: int, prompts: list[list[int]],
                          continuations: list[torch.Tensor]) -> torch.Tensor:
    """Each continuation's summed log-probability given its prompt under ``model`` (with
    gradients where the model has them): right-padded sequences of the sampled ids."""
    device = next(model.parameters()).device
    sequences = [list(prompt) + continuation.tolist()
                 for prompt, continuation in zip(prompts, continuations)]
    width = max(len(sequence) for sequence in sequences)
    input_ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
    attention = torch.zeros((len(sequences), width), dtype=torch.bool)
    scored = torch.zeros((len(sequences), width), dtype=torch.bool)
    for row, (prompt, sequence) in enumerate(zip(prompts, sequences)):
        input_ids[row, :len(sequence)] = torch.as_tensor(sequence)
        attention[row, :len(sequence)] = True
        scored[row, len(prompt):len(sequence)] = True
    logits = model(input_ids=input_ids.to(device), attention_mask=attention.long().to(device)
                   ).logits[:, :-1].float()
    targets = input_ids[:, 1:].to(device)
    logprobs = torch.gather(F.log_softmax(logits, dim=-1), 2, targets[..., None])[..., 0]
    return (logprobs * scored[:, 1:].to(device)).sum(dim=1)


class JudgedOnlineDPOTrainer(OnlineDPOTrainer):
    """``OnlineDPOTrainer`` whose step samples with ``detox.generation``, asks ``judge`` which
    continuation of each pair is less toxic and leaves ties out of the loss. ``reference`` is
    the frozen base sharing the policy's frozen tensors, or None under LoRA (the policy with
    its adapter disabled): never a copy."""

    def __init__(self, model: PreTrainedModel, reference: PreTrainedModel | None,
                 judge: ToxicityJudge, train_params: TrainParams, dtype: torch.dtype,
                 **kwargs) -> None:
        # TRL 0.11.4 refuses a judge, and copies the policy when given no reference: it is
        # handed placeholders, and the real ones are set after.
        placeholder = torch.nn.Module()
        super().__init__(model, ref_model=reference if reference is not None else placeholder,
                         reward_model=placeholder, **kwargs)
        self.ref_model, self.reward_model, self.judge = reference, None, judge
        self.params, self.dtype = train_params, dtype
        # the steps' caps on new tokens, drawn as PPO draws them
        self.rng = sampler_rng(train_params.seed, self.accelerator.process_index)
        self.stats = {name: [] for name in STATS}
        self.pairs = self.ties = 0

    def _maybe_log_save_evaluate(self, tr_loss, grad_norm, model, trial, epoch,
                                 ignore_keys_for_eval, start_time=None, learning_rate=None):
        # transformers 4.57 passes two arguments TRL 0.11.4's override does not take
        return super()._maybe_log_save_evaluate(tr_loss, grad_norm, model, trial, epoch,
                                                ignore_keys_for_eval)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # transformers 4.57 passes start_time, which TRL 0.11.4's log does not take
        super().log(logs)

    def training_step(self, model, inputs, num_items_in_batch=None) -> torch.Tensor:
        prompts, generation = inputs["prompt_ids"], self.params.generation
        policy = self.accelerator.unwrap_model(model)
        rank, step = self.accelerator.process_index, self.state.global_step + 1
        new_tokens = int(self.rng.integers(generation.max_new_tokens_from,
                                           generation.max_new_tokens_to + 1))
        queries = prompts + prompts  # two continuations of each prompt
        responses = generate(policy, self.processing_class, queries, new_tokens,
                             generation.top_k, generation.top_p,
                             call_seed(self.params.seed, step, rank), self.dtype)
        model.train()
        texts = self.processing_class.batch_decode(responses, skip_special_tokens=True)
        n = len(prompts)
        ranks = torch.tensor(self.judge.judge([""] * n, list(zip(texts[:n], texts[n:]))))
        self.pairs, self.ties = self.pairs + n, self.ties + int((ranks == TIE).sum())

        pad = self.processing_class.pad_token_id
        logprobs = continuation_logprobs(model, pad, queries, responses)
        with torch.no_grad():
            if self.ref_model is not None:
                reference = continuation_logprobs(self.ref_model, pad, queries, responses)
            else:
                with policy.disable_adapter():
                    reference = continuation_logprobs(policy, pad, queries, responses)
        loss, stats = pair_loss(logprobs, reference, ranks.to(logprobs.device), self.beta,
                                torch.as_tensor(self.judge.last_toxicity.reshape(-1)))
        stats["response_tokens"] = float(np.mean([len(r) for r in responses]))
        for name, value in stats.items():
            self.stats[name].append(value)
        self.accelerator.backward(loss)
        return loss.detach()


STATS = ("toxicity_chosen", "toxicity_rejected", "ties", "kl", "rewards_margins",
         "rewards_accuracies", "response_tokens")


def pair_loss(logprobs: torch.Tensor, reference: torch.Tensor, ranks: torch.Tensor,
              beta: float, toxicity: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """DPO's sigmoid loss over the decided pairs, and the step's stats.

    Rows ``i`` and ``i + n`` of ``logprobs`` (the policy's summed log-probabilities of its two
    continuations of prompt ``i``), ``reference`` (the base's) and ``toxicity`` are a pair;
    ``ranks[i]`` is the judge's answer: 0 (the first wins), 1 (the second) or ``TIE``. A tie
    carries no preference: its row is out of the loss (a step of ties only has no gradient,
    though Adam's momentum still moves the weights).
    """
    n = len(ranks)
    decided = ranks != TIE
    first_wins = ranks == 0
    index = torch.arange(n, device=ranks.device)
    chosen = torch.where(first_wins, index, index + n)
    rejected = torch.where(first_wins, index + n, index)
    ratio = logprobs - reference
    logits = ratio[chosen] - ratio[rejected]
    losses = -F.logsigmoid(beta * logits)
    kept = decided.to(losses.dtype)
    loss = (losses * kept).sum() / kept.sum().clamp(min=1)
    margin = beta * logits.detach()
    toxicity = toxicity.to(kept.device, kept.dtype)
    return loss, {
        "toxicity_chosen": _mean(toxicity[chosen], kept),
        "toxicity_rejected": _mean(toxicity[rejected], kept),
        "ties": float(1 - kept.mean()),
        "kl": float(ratio.detach().mean()),
        "rewards_margins": _mean(margin, kept),
        "rewards_accuracies": _mean((margin > 0).to(kept.dtype), kept),
    }


def _mean(values: torch.Tensor, weights: torch.Tensor) -> float:
    """The mean of ``values`` over the pairs with weight 1 (NaN where there are none)."""
    total = float(weights.sum())
    return float((values * weights).sum() / total) if total else float("nan")


def train_online_dpo(model: PreTrainedModel, reference: PreTrainedModel | None,
                     tokenizer: PreTrainedTokenizerBase, prompts: list[list[int]],
                     judge: ToxicityJudge, params: TrainParams, device: torch.device,
                     dtype: torch.dtype = torch.float32, log_dir: str | Path | None = None
                     ) -> tuple[int, list[dict[str, float]], JudgedOnlineDPOTrainer]:
    """Online DPO in place on ``model`` for ``online_dpo.samples`` policy samples; its
    optimizer steps, its log rows and the trainer (which counted pairs and ties)."""
    settings = params.online_dpo
    log = LogToLive(log_dir)
    with tempfile.TemporaryDirectory() as scratch:
        args = training_arguments(
            FineTuneParams(epochs=1, batch_size=settings.batch_size,
                           learning_rate=settings.learning_rate),
            params.seed, device, params.model.precision, scratch, OnlineDPOConfig,
            beta=settings.beta, max_steps=settings.steps, dataloader_drop_last=True)
        # TRL tokenises a "prompt" text column (with a BOS before it): one placeholder row,
        # then the training prompts' own ids, as PPO reads them.
        placeholder = Dataset.from_dict({"prompt": ["a"]})
        trainer = JudgedOnlineDPOTrainer(
            model, reference, judge, params, dtype, args=args, train_dataset=placeholder,
            tokenizer=tokenizer, callbacks=[log],
            data_collator=lambda rows: {"prompt_ids": [row["prompt_ids"] for row in rows]})
        trainer.train_dataset = Dataset.from_dict({"prompt_ids": prompts})
        trainer.train()
    return trainer.state.global_step, log.rows, trainer


class OnlineDPO(Method):
    name, display_name = "online_dpo", "online DPO"
    tags = ("dpo", "online-dpo", "trl")
    panels = {
        "toxicity of the pairs (the scorer's), share of ties":
            ("toxicity_chosen", "toxicity_rejected", "ties"),
        "KL to the reference (nats per continuation)": ("kl",),
        "loss, implicit reward margin and accuracy":
            ("loss", "rewards_margins", "rewards_accuracies"),
        "continuation length (tokens)": ("response_tokens",),
    }

    def title(self, params: TrainParams, summary: TrainSummary) -> str:
        return f"online DPO, {trained_part(params)}"

    def description(self, base: str, scorer: str, summary: TrainSummary) -> str:
        return (f"`{base}` fine-tuned with online DPO (TRL 0.11.4's `OnlineDPOTrainer`): at "
                f"each step two continuations of each toxic prompt are sampled from the policy "
                f"itself and the one `{scorer}` scores less toxic is preferred, against the "
                f"frozen base; a baseline for the RL method of {PAPER}.")

    def card_rows(self, params: TrainParams, summary: TrainSummary, scorer: str) -> Rows:
        settings, details = params.online_dpo, summary.details
        return [
            ["pairs", f"{details['pairs']:,} pairs of the policy's own continuations, "
                      f"{settings.batch_size} prompts per step; the less toxic as `{scorer}` "
                      f"scores them chosen; {details['ties']:,} ties left out of the loss"],
            ["optimisation", f"{summary.gradient_steps:,} steps, beta {settings.beta:g}, Adam "
                             f"at a constant learning rate of {settings.learning_rate:g}; "
                             f"loss {details['loss_start']:.4g} over the first {WINDOW} "
                             f"steps, {details['loss_end']:.4g} over the last {WINDOW}"],
        ]

    def build(self, params: TrainParams, device: torch.device, dtype: torch.dtype,
              tokenizer: PreTrainedTokenizerBase) -> Built:
        model, reference = trainable_lm(BASE, params.layers, device, params.seed,
                                        params.adapter)
        require_context(model.config, params.data.prompt_max_tokens,
                        params.generation.max_new_tokens_to)
        counts = count_parameters(model)
        scorer = load_scorer(SCORER, device, scorer_dtype(device))
        judge = ToxicityJudge(scorer, toxicity_reading(
            scorer.id2label, scorer.multi_label, params.model.neutral_label,
            params.model.toxic_labels))
        prompts = training_prompts(params.online_dpo.batch_size, "online_dpo.batch_size")
        steps, log, trainer = train_online_dpo(model, reference, tokenizer, prompts, judge,
                                               params, device, dtype, TRAINING_LOG)
        loss_start, loss_end = window_means([row["loss"] for row in log if "loss" in row])
        pairs, ties = (int(count) for count in trainer.accelerator.reduce(
            torch.tensor([trainer.pairs, trainer.ties], device=trainer.accelerator.device),
            "sum"))  # every process's
        summary = TrainSummary.of(counts, policy_samples=2 * pairs, scorer_calls=2 * pairs,
                                  gradient_steps=steps, pairs=pairs, ties=ties,
                                  loss_start=loss_start, loss_end=loss_end)
        return Built(merged(model), summary, log)


METHOD = OnlineDPO()
