"""What the methods that learn from the sample stage's scored samples share (sft, dpo): the
samples, the trainable language model (the same top blocks or LoRA weights as PPO's),
transformers' training arguments, the training log as dvclive series, and the method class
that builds the model and its summary around the method's own ``fit``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch
from transformers import (PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback,
                          TrainingArguments)

from detox.device import is_main_process
from detox.io import read_json
from detox.train.log import LiveSeries
from detox.train.method import BASE, SAMPLES, Built, Method, Rows
from detox.train.params import AdapterParams, FineTuneParams, TrainParams
from detox.train.policy import count_parameters, load_trainable, merged
from detox.train.summary import WINDOW, TrainSummary, window_means

IGNORE = -100  # the label of a token that is not learned (the prompt's, the padding's)


def trainable_lm(path: str | Path, layers: int, device: torch.device, seed: int,
                 adapter: AdapterParams) -> tuple[PreTrainedModel, PreTrainedModel | None]:
    """The policy's language model with PPO's trainable part (top ``layers`` blocks, or LoRA
    weights in them), and the frozen base as reference: sharing the policy's frozen tensors,
    or ``None`` under LoRA (the policy with its adapter disabled is the base)."""
    policy, reference = load_trainable(path, layers, device, seed, adapter)
    return policy.pretrained_model, None if reference is None else reference.pretrained_model


def best_and_worst(samples: pd.DataFrame) -> pd.DataFrame:
    """Per prompt of ``data/samples/train.parquet``, its least and most toxic samples: one row
    with ``prompt``, ``prompt_ids`` and ``best_*``/``worst_*`` of ``continuation``,
    ``continuation_ids`` and ``toxicity``. Among equally toxic samples the least toxic is the
    first drawn and the most toxic the last."""
    ordered = samples.sort_values(["prompt_id", "toxicity", "sample"], kind="stable")
    groups = ordered.groupby("prompt_id", sort=True)
    best, worst = groups.head(1).set_index("prompt_id"), groups.tail(1).set_index("prompt_id")
    columns = ["continuation", "continuation_ids", "toxicity"]
    return pd.concat([best[["prompt", "prompt_ids"]],
                      best[columns].add_prefix("best_"), worst[columns].add_prefix("worst_")],
                     axis=1).reset_index()


def training_arguments(params: FineTuneParams, seed: int, device: torch.device, precision: str,
                       output_dir: str | Path, config_class: type = TrainingArguments,
                       **extra) -> TrainingArguments:
    """Adam (no weight decay) at a constant learning rate as in PPO, the loss logged at every
    step, nothing saved or reported by the trainer itself (the stage saves the model; the log
    goes to dvclive through ``LogToLive``)."""
    return config_class(
        output_dir=str(output_dir), num_train_epochs=params.epochs,
        per_device_train_batch_size=params.batch_size, learning_rate=params.learning_rate,
        lr_scheduler_type="constant", weight_decay=0.0, seed=seed, data_seed=seed,
        logging_steps=1, save_strategy="no", report_to=[], use_cpu=device.type == "cpu",
        bf16=precision == "bf16", fp16=precision == "fp16", remove_unused_columns=False,
        dataloader_num_workers=0, **extra)


class LogToLive(TrainerCallback):
    """Each logged step's stats (``/`` in TRL's names made ``_``) as dvclive series, and kept
    in ``rows`` for the run's summary."""

    def __init__(self, log_dir: str | Path | None) -> None:
        self.rows: list[dict[str, float]] = []
        # one writer of the log: the main process (the others' rows are the same averages)
        self.series = (LiveSeries(log_dir, []) if log_dir is not None and is_main_process()
                       else None)

    def on_log(self, args, state, control, logs=None, **kwargs) -> None:
        stats = {key.replace("/", "_"): float(value) for key, value in (logs or {}).items()
                 if isinstance(value, (int, float)) and key not in ("epoch", "total_flos")
                 and not key.startswith("train_")}  # the end-of-run averages are not a step
        if not stats:
            return
        row = {"step": state.global_step, **stats}
        self.rows.append(row)
        if self.series is not None:
            self.series.add(row)


class FromSamples(Method):
    """A method that fine-tunes the trainable blocks (or LoRA) on the sample stage's scored
    base samples; the samples' cost (drawing and scoring them) is counted as its own."""

    def fit(self, model: PreTrainedModel, reference: PreTrainedModel | None,
            tokenizer: PreTrainedTokenizerBase, samples: pd.DataFrame, params: TrainParams,
            device: torch.device) -> tuple[int, list[dict[str, float]], dict[str, Any]]:
        """Train ``model`` in place; its optimizer steps, log rows and summary details."""
        raise NotImplementedError

    def settings(self, params: TrainParams) -> FineTuneParams:
        """The method's own params block."""
        raise NotImplementedError

    def card_rows(self, params: TrainParams, summary: TrainSummary, scorer: str) -> Rows:
        details, settings = summary.details, self.settings(params)
        return [
            ["samples", f"{summary.policy_samples // details['sampled_prompts']} continuations "
                        f"of each of {details['sampled_prompts']:,} training prompts from the "
                        f"base model, scored by `{scorer}`"],
            *self.data_rows(params, summary),
            ["optimisation", f"{settings.epochs} epochs, batch {settings.batch_size}, Adam at a "
                             f"constant learning rate of {settings.learning_rate:g}; loss "
                             f"{details['loss_start']:.4g} over the first {WINDOW} steps, "
                             f"{details['loss_end']:.4g} over the last {WINDOW}"]]

    def data_rows(self, params: TrainParams, summary: TrainSummary) -> Rows:
        """What the method made of the samples (its targets or pairs)."""
        raise NotImplementedError

    def build(self, params: TrainParams, device: torch.device, dtype: torch.dtype,
              tokenizer: PreTrainedTokenizerBase) -> Built:
        samples = pd.read_parquet(f"{SAMPLES}/train.parquet")
        drawn = read_json(f"{SAMPLES}/summary.json")
        model, reference = trainable_lm(BASE, params.layers, device, params.seed,
                                        params.adapter)
        counts = count_parameters(model)
        steps, log, found = self.fit(model, reference, tokenizer, samples, params, device)
        loss_start, loss_end = window_means([row["loss"] for row in log if "loss" in row])
        summary = TrainSummary.of(counts, drawn["policy_samples"], drawn["scorer_calls"], steps,
                                  sampled_prompts=drawn["prompts"], **found,
                                  loss_start=loss_start, loss_end=loss_end)
        return Built(merged(model), summary, log, sampling_seconds=drawn["seconds"])
