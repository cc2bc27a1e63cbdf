"""The model card's first half, what the trained model is and how it was made
(``data/models/trained/README.md``): the rows every method has, around the method's own
(``Method.card_rows``); ``detox.model_card.with_evaluation`` adds the results."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from detox.markdown import table
from detox.model_card import hub_id
from detox.train.method import Method
from detox.train.summary import TrainSummary

TAGS = ["detoxification"]


def trained_row(method: Method, params: Any, summary: TrainSummary) -> str:
    """What ``layers`` and ``adapter`` made trainable, for the card's "trained" row."""
    adapter = params.adapter
    if adapter.kind == "lora":
        # with target_modules null (peft's default) only the run knows the modules it adapted
        targets = (summary.details.get("lora_target_modules")
                   or ", ".join(adapter.target_modules or ["peft's default modules"]))
        trained = (f"LoRA (rank {adapter.rank}, alpha {adapter.alpha:g}, dropout "
                   f"{adapter.dropout:g}, on {targets}) in the top {params.layers} blocks, "
                   "merged into the weights on save; every base weight frozen")
    else:
        trained = (f"the top {params.layers} transformer blocks and the final norm; the "
                   "embeddings, the blocks below and the output head frozen")
    if method.also_trains:
        trained += f"; {method.also_trains} trains too (not saved)"
    return trained


def training_card(method: Method, base: Mapping[str, Any], scorer: Mapping[str, Any],
                  params: Any, summary: TrainSummary, prompts: int) -> ModelCard:
    """What ``method`` made: ``base`` and ``scorer`` are the ``source.json`` manifests of
    ``data/models/{base,scorer}``, ``params`` the train stage's ``TrainParams``, ``summary``
    its ``metrics/train.json`` and ``prompts`` the number of distinct training prompts."""
    base_source = base["source"] + (f" @ {base['revision']}" if base.get("revision") else "")
    trains = method.trains
    data = ModelCardData(
        base_model=hub_id(base["source"]),
        datasets=[dataset] if trains and (dataset := hub_id(params.data.train)) else None,
        library_name="transformers", pipeline_tag="text-generation",
        tags=TAGS + list(method.tags),
        model_name=method.model_name(base["source"], summary))
    rows = [["method", f"`{method.name}`"], ["base model", f"`{base_source}`"]]
    if trains:  # only a method that trains reads layers and adapter
        rows += [
            ["training data", f"`{params.data.train}`: prompts whose toxicity is above "
                              f"{params.data.toxicity_threshold:g}; {prompts} distinct prompts "
                              "after the in-distribution test set was held out"],
            ["trained", trained_row(method, params, summary)],
            ["trainable parameters", f"{summary.trainable_params:,} of "
                                     f"{summary.total_params:,}"]]
    rows += method.card_rows(params, summary, scorer["source"])
    rows += [["budget", f"{summary.policy_samples:,} policy samples drawn, "
                        f"{summary.scorer_calls:,} scorer calls, "
                        f"{summary.gradient_steps:,} gradient steps"],
             ["seed", str(params.seed)]]
    text = "\n\n".join([
        f"# {data.model_name}",
        method.description(base["source"], scorer["source"], summary)
        + " Produced by this repository's DVC pipeline (`dvc repro`); the table below is from "
        "its `params.yaml` and `metrics/train.json`.",
        "## Training" if trains else "## Construction",
        table(["", ""], rows),
        "## How to load",
        "```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
        'model = AutoModelForCausalLM.from_pretrained("data/models/detoxified")\n'
        'tokenizer = AutoTokenizer.from_pretrained("data/models/detoxified")\n```',
    ])
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{text}\n")
