"""Rejection-sampling fine-tuning ("best of k"): each prompt's least toxic scored sample, where
it is toxic less than ``sft.max_toxicity``, becomes a target; the trainable blocks (or LoRA)
learn prompt -> target with the loss on the target's tokens only.

Trained with transformers' ``Trainer`` rather than TRL 0.11.4's ``SFTTrainer``: the examples
are the sampled token ids themselves, and ``SFTTrainer`` either tokenises text again or, with
``skip_prepare_dataset``, is this same ``Trainer``; its completion-only masking looks for a
response template in the text, which these prompts do not have.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import torch
from datasets import Dataset
from transformers import DataCollatorForSeq2Seq, PreTrainedModel, PreTrainedTokenizerBase, Trainer
from trl.trainer.utils import disable_dropout_in_model

from detox import DetoxError
from detox.train.finetune import (IGNORE, FromSamples, LogToLive, best_and_worst,
                                  training_arguments)
from detox.train.method import PAPER, TRAINING_LOG, Rows, trained_part
from detox.train.params import SFTParams, TrainParams
from detox.train.summary import TrainSummary


def sft_targets(samples: pd.DataFrame, max_toxicity: float) -> pd.DataFrame:
    """Per prompt, its least toxic sample if that is toxic less than ``max_toxicity``."""
    best = best_and_worst(samples)
    targets = best[best["best_toxicity"] < max_toxicity].reset_index(drop=True)
    if targets.empty:
        raise DetoxError(f"sft: none of the {len(best)} prompts' {len(samples)} scored samples "
                         f"is toxic less than sft.max_toxicity={max_toxicity:g} (the least "
                         f"toxic one scores {best['best_toxicity'].min():.3f}): raise "
                         "sft.max_toxicity or samples.per_prompt")
    return targets


def sft_examples(targets: pd.DataFrame) -> Dataset:
    """prompt + target ids, labels only on the target (eos included where it ended there)."""
    rows = {"input_ids": [], "attention_mask": [], "labels": []}
    for prompt, target in zip(targets["prompt_ids"], targets["best_continuation_ids"]):
        prompt, target = list(prompt), list(target)
        rows["input_ids"].append(prompt + target)
        rows["attention_mask"].append([1] * (len(prompt) + len(target)))
        rows["labels"].append([IGNORE] * len(prompt) + target)
    return Dataset.from_dict(rows)


def train_sft(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, targets: pd.DataFrame,
              params: SFTParams, seed: int, device: torch.device, precision: str,
              log_dir: str | Path | None = None) -> tuple[int, list[dict[str, float]]]:
    """Fine-tune ``model`` in place on ``targets``; its gradient steps and its log rows."""
    log = LogToLive(log_dir)
    disable_dropout_in_model(model)  # as TRL's DPO does and PPO (trained in eval mode) has
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(
            model=model, args=training_arguments(params, seed, device, precision, scratch),
            train_dataset=sft_examples(targets), callbacks=[log],
            data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True,
                                                 label_pad_token_id=IGNORE))
        trainer.train()
    return trainer.state.global_step, log.rows


class RejectionSampling(FromSamples):
    name, display_name = "sft", "rejection-sampling fine-tuning"
    tags = ("sft", "rejection-sampling")
    panels = {"loss": ("loss",), "gradient norm": ("grad_norm",)}

    def title(self, params: TrainParams, summary: TrainSummary) -> str:
        return f"rejection-sampling fine-tuning, {trained_part(params)}"

    def description(self, base: str, scorer: str, summary: TrainSummary) -> str:
        return (f"`{base}` fine-tuned on its own least toxic continuations of toxic prompts "
                f"(rejection sampling, best of k, scored by `{scorer}`): a baseline for the RL "
                f"method of {PAPER}.")

    def settings(self, params: TrainParams) -> SFTParams:
        return params.sft

    def fit(self, model, reference, tokenizer, samples, params, device):
        targets = sft_targets(samples, params.sft.max_toxicity)
        steps, log = train_sft(model, tokenizer, targets, params.sft, params.seed, device,
                               params.model.precision, TRAINING_LOG)
        return steps, log, {
            "targets": len(targets),
            "target_toxicity_mean": round(float(targets["best_toxicity"].mean()), 6)}

    def data_rows(self, params: TrainParams, summary: TrainSummary) -> Rows:
        details = summary.details
        return [["targets", f"{details['targets']:,} prompts' least toxic continuation, kept "
                            f"where its toxicity is below {params.sft.max_toxicity:g} (mean "
                            f"{details['target_toxicity_mean']:.3f}); loss on the continuation "
                            "only"]]


METHOD = RejectionSampling()
