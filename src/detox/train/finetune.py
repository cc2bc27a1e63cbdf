"""What sft and dpo share: the scored samples they learn from, the trainable language model
(the same top blocks or LoRA weights as PPO's), transformers' training arguments, and the
training log as dvclive series."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from transformers import PreTrainedModel, TrainerCallback, TrainingArguments

from detox.train.log import LiveSeries
from detox.train.params import AdapterParams, FineTuneParams
from detox.train.policy import load_trainable


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
        self.series = LiveSeries(log_dir, []) if log_dir is not None else None

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
