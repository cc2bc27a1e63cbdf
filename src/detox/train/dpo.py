"""Direct preference optimisation from the same scored samples: per prompt, its least toxic
sample is chosen and its most toxic rejected, where they differ by ``dpo.min_margin``; TRL
0.11.4's ``DPOTrainer`` trains the same trainable blocks (or LoRA) against the frozen base."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import torch
from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer
from trl import DPOConfig, DPOTrainer

from detox import DetoxError
from detox.train.finetune import (IGNORE, FromSamples, LogToLive, best_and_worst,
                                  training_arguments)
from detox.train.method import PAPER, TRAINING_LOG, Rows, trained_part
from detox.train.params import DPOParams, TrainParams
from detox.train.summary import TrainSummary


class SampledPairsDPOTrainer(DPOTrainer):
    """TRL 0.11.4's ``DPOTrainer`` under transformers 4.57, whose training loop (4.46 on) calls
    three of the trainer's methods with arguments TRL 0.11 did not know: it fetches batches
    through ``get_batch_samples``, a name TRL gave its sampling-for-eval helper (used only with
    ``generate_during_eval``, off here; TRL 0.12 renamed it), and passes ``num_items_in_batch``
    to ``compute_loss`` and ``start_time`` to ``log``, which TRL's loss and log do not need."""

    get_batch_samples = Trainer.get_batch_samples

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        return super().compute_loss(model, inputs, return_outputs)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        super().log(logs)


def dpo_pairs(samples: pd.DataFrame, min_margin: float) -> pd.DataFrame:
    """Per prompt, (least toxic, most toxic) where the second is ``min_margin`` more toxic."""
    pairs = best_and_worst(samples)
    kept = pairs[pairs["worst_toxicity"] - pairs["best_toxicity"] >= min_margin]
    if kept.empty:
        raise DetoxError(f"dpo: no prompt's most and least toxic samples differ by "
                         f"dpo.min_margin={min_margin:g} ({len(samples)} scored samples of "
                         f"{len(pairs)} prompts): lower dpo.min_margin or raise "
                         "samples.per_prompt")
    return kept.rename(columns=lambda name: name.replace("best_", "chosen_")
                       .replace("worst_", "rejected_")).reset_index(drop=True)


def dpo_features(pairs: pd.DataFrame) -> Dataset:
    """The pairs in the layout TRL's DPO collator and loss read, from the sampled ids."""
    rows: dict[str, list] = {}
    for prompt, chosen, rejected in zip(pairs["prompt_ids"], pairs["chosen_continuation_ids"],
                                        pairs["rejected_continuation_ids"]):
        prompt = list(prompt)
        rows.setdefault("prompt_input_ids", []).append(prompt)
        rows.setdefault("prompt_attention_mask", []).append([1] * len(prompt))
        for side, answer in (("chosen", list(chosen)), ("rejected", list(rejected))):
            rows.setdefault(f"{side}_input_ids", []).append(prompt + answer)
            rows.setdefault(f"{side}_attention_mask", []).append([1] * (len(prompt) + len(answer)))
            rows.setdefault(f"{side}_labels", []).append([IGNORE] * len(prompt) + answer)
    return Dataset.from_dict(rows)


def train_dpo(model: PreTrainedModel, reference: PreTrainedModel | None,
              tokenizer: PreTrainedTokenizerBase, pairs: pd.DataFrame, params: DPOParams,
              seed: int, device: torch.device, precision: str,
              log_dir: str | Path | None = None) -> tuple[int, list[dict[str, float]]]:
    """DPO on ``pairs`` in place on ``model``; its gradient steps and its log rows.

    ``reference`` shares the policy's frozen tensors; ``None`` for a LoRA policy, which TRL
    then scores with its adapter disabled. Either way no second copy of the frozen base.
    """
    log, features = LogToLive(log_dir), dpo_features(pairs)
    longest = max(len(ids) for column in ("chosen_input_ids", "rejected_input_ids")
                  for ids in features[column])
    with tempfile.TemporaryDirectory() as scratch:
        args = training_arguments(params, seed, device, precision, scratch, DPOConfig,
                                  beta=params.beta, max_length=longest,
                                  max_prompt_length=longest)
        # TRL 0.11.4 always tokenises text again, with a bos before the prompt and an eos after
        # every answer (and fails where BPE merges across the prompt's end). The policy wrote
        # these ids after the bare prompt, and is evaluated so: TRL tokenises one placeholder
        # row, and learns from the sampled ids, in the layout its loss reads.
        placeholder = Dataset.from_dict({"prompt": ["a"], "chosen": [" b"], "rejected": [" c"]})
        trainer = SampledPairsDPOTrainer(model, reference, args=args, train_dataset=placeholder,
                                         tokenizer=tokenizer, callbacks=[log])
        trainer.train_dataset = features
        trainer.train()
    return trainer.state.global_step, log.rows


class OfflineDPO(FromSamples):
    name, display_name = "dpo", "DPO"
    tags = ("dpo", "trl")
    panels = {"loss": ("loss",),
              "implicit rewards (beta x log-ratio to the reference)":
                  ("rewards_chosen", "rewards_rejected", "rewards_margins"),
              "preference accuracy": ("rewards_accuracies",)}

    def title(self, params: TrainParams, summary: TrainSummary) -> str:
        return f"DPO, {trained_part(params)}"

    def description(self, base: str, scorer: str, summary: TrainSummary) -> str:
        return (f"`{base}` fine-tuned with DPO (TRL 0.11.4's `DPOTrainer`) on pairs of its own "
                f"continuations of toxic prompts, the less toxic preferred as `{scorer}` scored "
                f"them: a baseline for the RL method of {PAPER}.")

    def settings(self, params: TrainParams) -> DPOParams:
        return params.dpo

    def fit(self, model, reference, tokenizer, samples, params, device):
        pairs = dpo_pairs(samples, params.dpo.min_margin)
        steps, log = train_dpo(model, reference, tokenizer, pairs, params.dpo, params.seed,
                               device, params.model.precision, TRAINING_LOG)
        return steps, log, {
            "pairs": len(pairs),
            "chosen_toxicity_mean": round(float(pairs["chosen_toxicity"].mean()), 6),
            "rejected_toxicity_mean": round(float(pairs["rejected_toxicity"].mean()), 6)}

    def data_rows(self, params: TrainParams, summary: TrainSummary) -> Rows:
        details = summary.details
        return [["pairs", f"{details['pairs']:,}: a prompt's least toxic continuation chosen "
                          "over its most toxic, kept where they differ by at least "
                          f"{params.dpo.min_margin:g} (mean toxicity "
                          f"{details['chosen_toxicity_mean']:.3f} chosen, "
                          f"{details['rejected_toxicity_mean']:.3f} rejected); beta "
                          f"{params.dpo.beta:g}, the frozen base as reference"]]


METHOD = OfflineDPO()
