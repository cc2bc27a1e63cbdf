"""What a training method is to the rest of the project: one ``Method`` object per method
module (its ``METHOD``), found by name through ``detox.train.methods.load_method``.

The train stage calls ``build``; the model card reads ``display_name``, ``tags``,
``description`` and ``card_rows``; evaluate, the report and the sweep read only what ``build``
wrote (``metrics/train.json``, whose ``title`` names the model in plots and reports). A new
method is a module with a ``METHOD``, its entry in ``methods.REGISTRY`` and its params.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from detox import DetoxError
from detox.train.summary import TrainSummary

Rows = list[list[str]]
PAPER = ("*Exploring the Application of Reinforcement Learning in Detoxifying Large Language "
         "Models*")  # what the methods' cards cite
# What every method may read, and where its training log goes (dvclive's folder)
BASE = "data/models/base"
SCORER = "data/models/scorer"
TRAIN_PROMPTS = "data/prompts/train.parquet"
SAMPLES = "data/samples"
TRAINING_LOG = "plots/train"


@dataclass
class Built:
    """A method's result: the model to save, its summary, its training log (one row per step,
    as written to dvclive), what to clean up once the stage has saved the outputs and the
    seconds another stage spent drawing the samples it learned from (None: it read none)."""

    model: PreTrainedModel
    summary: TrainSummary
    log: list[dict[str, float]]
    cleanup: Callable[[], None] | None = None
    sampling_seconds: float | None = None


def processes() -> int:
    """The processes of this run (torchrun's or accelerate's WORLD_SIZE; 1 alone)."""
    return int(os.environ.get("WORLD_SIZE", 1))


def training_prompts(batch_size: int, param: str) -> list[list[int]]:
    """The training prompts' token ids, refused in one line when one batch of ``batch_size``
    per process (the params' ``param``) would need more of them than there are."""
    prompts = pd.read_parquet(TRAIN_PROMPTS)["input_ids"].map(list).tolist()
    if len(prompts) < batch_size * processes():
        raise DetoxError(f"params.yaml: {param}={batch_size} x {processes()} process(es) is "
                         f"more than the {len(prompts)} training prompts: lower it or raise "
                         "data.train_prompts")
    return prompts


def trained_part(params: Any) -> str:
    """What ``layers`` and ``adapter`` make trainable, in a few words."""
    return (f"LoRA in the top {params.layers} blocks" if params.adapter.kind == "lora"
            else f"{params.layers} trainable blocks")


class Method:
    """One way to make the detoxified model from the base. Subclasses set the class
    attributes and implement ``title``, ``description``, ``card_rows`` and ``build``."""

    name: ClassVar[str]  # the params' ``method``
    display_name: ClassVar[str]  # "<base> detoxified with <display_name>"
    tags: ClassVar[tuple[str, ...]]  # the model card's, beside "detoxification"
    trains: ClassVar[bool] = True  # False: the base weights, unchanged
    also_trains: ClassVar[str | None] = None  # a part trained beside the blocks, not saved
    # The training log's panels, title -> the series drawn together (plots/train/panels.png)
    panels: ClassVar[Mapping[str, Sequence[str]]] = {}

    def model_name(self, base: str, summary: TrainSummary) -> str:
        """The card's name of the model."""
        return f"{base} detoxified with {self.display_name}"

    def title(self, params: Any, summary: TrainSummary) -> str:
        """The trained model in the evaluation's plots and report, after the base's name."""
        raise NotImplementedError

    def description(self, base: str, scorer: str, summary: TrainSummary) -> str:
        """The card's opening sentence: how this method made the model from ``base``."""
        raise NotImplementedError

    def card_rows(self, params: Any, summary: TrainSummary, scorer: str) -> Rows:
        """The card's training table rows that only this method has."""
        raise NotImplementedError

    def build(self, params: Any, device: torch.device, dtype: torch.dtype,
              tokenizer: PreTrainedTokenizerBase) -> Built:
        """Make the model from ``data/models/base`` (and what the method reads)."""
        raise NotImplementedError
