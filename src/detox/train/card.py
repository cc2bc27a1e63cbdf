"""The model card's first half, what the trained model is and how it was made
(``data/models/trained/README.md``), and the model's title in the evaluation's plots and
report; ``detox.model_card.with_evaluation`` adds the results."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from detox.markdown import table
from detox.model_card import hub_id
from detox.train.rewards import MEANINGS

TAGS = ["detoxification"]
METHOD_TAGS = {"ppo": ["ppo", "trl", "reinforcement-learning"], "word_filter": ["bad-words"],
               "sft": ["sft", "rejection-sampling"], "dpo": ["dpo", "trl"]}
METHOD_NAMES = {"ppo": "PPO", "word_filter": "a bad-word filter",
                "sft": "rejection-sampling fine-tuning", "dpo": "DPO"}


def title(params: Any, policy: str) -> str:
    """What the evaluation's plots and report call the trained model of ``policy``."""
    trained = (f"LoRA in the top {params.layers} blocks" if params.adapter.kind == "lora"
               else f"{params.layers} trainable blocks")
    return f"{policy}, " + {
        "ppo": f"PPO, {trained}, {params.reward}", "word_filter": "bad-word filter",
        "sft": f"rejection-sampling fine-tuning, {trained}", "dpo": f"DPO, {trained}",
    }[params.method]


def _what_it_is(method: str, base: str, scorer: str) -> str:
    """The card's opening: how ``method`` made this model from ``base``."""
    if method == "word_filter":
        return (f"`{base}` with its weights unchanged and a decoding-time ban on a published "
                "bad-word list, saved as `bad_words_ids` in `generation_config.json`, so that "
                "any `generate()` on this folder honours it (a baseline for the RL method of "
                "*Exploring the Application of Reinforcement Learning in Detoxifying Large "
                "Language Models*).")
    how = {
        "ppo": "with PPO (TRL 0.11.4) to continue toxic prompts less toxically, rewarded by "
               f"`{scorer}` and held near the base model by a KL penalty, as in *Exploring the "
               "Application of Reinforcement Learning in Detoxifying Large Language Models*.",
        "sft": "on its own least toxic continuations of toxic prompts (rejection sampling, "
               f"best of k, scored by `{scorer}`): a baseline for the RL method of *Exploring "
               "the Application of Reinforcement Learning in Detoxifying Large Language "
               "Models*.",
        "dpo": "with DPO (TRL 0.11.4's `DPOTrainer`) on pairs of its own continuations of toxic "
               f"prompts, the less toxic preferred as `{scorer}` scored them: a baseline for "
               "the RL method of *Exploring the Application of Reinforcement Learning in "
               "Detoxifying Large Language Models*.",
    }[method]
    return f"`{base}` fine-tuned {how}"


def _method_rows(params: Any, summary: Mapping[str, Any], scorer: str) -> list[list[str]]:
    """The rows of the training table that only the chosen method has."""
    method = params.method
    if method == "word_filter":
        return [["word list", f"`{summary['word_list']}` (sha256 of its words "
                              f"{summary['word_list_sha256']}): {summary['words']:,} words and "
                              f"phrases, {summary['banned_sequences']:,} banned token "
                              f"sequences in their casings, with and without a leading space "
                              f"({summary['banned_token_ids']:,} distinct token ids)"]]
    if method == "ppo":
        ppo, generation = params.ppo, params.generation
        diverged = "no" if not summary["diverged"] else (
            f"yes, at step {summary['diverged_at_step']} ({summary['divergence']}); these "
            f"are the weights of step {summary['model_step']}")
        return [
            ["reward", f"`{params.reward}` of `{scorer}`: {MEANINGS[params.reward]}"],
            ["PPO", f"{ppo.steps} steps of {ppo.batch_size} prompts, mini-batch "
                    f"{ppo.mini_batch_size}, {ppo.ppo_epochs} epochs, learning rate "
                    f"{ppo.learning_rate:g}, initial KL coefficient {ppo.init_kl_coef:g}"
                    + (f", adaptive to a KL of {ppo.target_kl:g} nats per continuation "
                       f"(horizon {ppo.kl_horizon:,})" if ppo.adaptive_kl else ", fixed")],
            ["KL coefficient", "no step kept" if summary["kl_coef_start"] is None else
             f"{summary['kl_coef_start']:.4g} over the first 5 steps, "
             f"{summary['kl_coef_end']:.4g} over the last 5"],
            ["sampling", f"at most {generation.max_new_tokens_from}-"
                         f"{generation.max_new_tokens_to} new tokens (drawn per batch), "
                         + (f"top-k {generation.top_k}, " if generation.top_k else "no top-k, ")
                         + f"top-p {generation.top_p:g}"],
            ["diverged", diverged],
        ]
    settings = params.sft if method == "sft" else params.dpo
    rows = [["samples", f"{summary['policy_samples'] // summary['sampled_prompts']} "
                        f"continuations of each of {summary['sampled_prompts']:,} training "
                        f"prompts from the base model, scored by `{scorer}`"]]
    if method == "sft":
        rows.append(["targets", f"{summary['targets']:,} prompts' least toxic continuation, "
                                f"kept where its toxicity is below {settings.max_toxicity:g} "
                                f"(mean {summary['target_toxicity_mean']:.3f}); loss on the "
                                "continuation only"])
    else:
        rows.append(["pairs", f"{summary['pairs']:,}: a prompt's least toxic continuation "
                              "chosen over its most toxic, kept where they differ by at least "
                              f"{settings.min_margin:g} (mean toxicity "
                              f"{summary['chosen_toxicity_mean']:.3f} chosen, "
                              f"{summary['rejected_toxicity_mean']:.3f} rejected); beta "
                              f"{settings.beta:g}, the frozen base as reference"])
    rows.append(["optimisation", f"{settings.epochs} epochs, batch {settings.batch_size}, Adam "
                                 f"at a constant learning rate of {settings.learning_rate:g}; "
                                 f"loss {summary['loss_start']:.4g} over the first 5 steps, "
                                 f"{summary['loss_end']:.4g} over the last 5"])
    return rows


def training_card(base: Mapping[str, Any], scorer: Mapping[str, Any], params: Any,
                  summary: Mapping[str, Any], prompts: int) -> ModelCard:
    """What the trained model is: ``base`` and ``scorer`` are the ``source.json`` manifests of
    ``data/models/{base,scorer}``, ``params`` the train stage's ``TrainParams``, ``summary``
    its ``metrics/train.json`` and ``prompts`` the number of distinct training prompts."""
    adapter, method = params.adapter, params.method
    base_source = base["source"] + (f" @ {base['revision']}" if base.get("revision") else "")
    if adapter.kind == "lora":
        # with target_modules null (peft's default) only the run knows the modules it adapted
        targets = (summary.get("lora_target_modules")
                   or ", ".join(adapter.target_modules or ["peft's default modules"]))
        trained = (f"LoRA (rank {adapter.rank}, alpha {adapter.alpha:g}, dropout "
                   f"{adapter.dropout:g}, on {targets}) in the top {params.layers} blocks, "
                   "merged into the weights on save; every base weight frozen")
    else:
        trained = (f"the top {params.layers} transformer blocks and the final norm; the "
                   "embeddings, the blocks below and the output head frozen")
    trained += "; PPO's value head trains too (not saved)" if method == "ppo" else ""
    trains = method != "word_filter"
    data = ModelCardData(
        base_model=hub_id(base["source"]),
        datasets=[dataset] if trains and (dataset := hub_id(params.data.train)) else None,
        library_name="transformers", pipeline_tag="text-generation",
        tags=TAGS + METHOD_TAGS[method],
        model_name=f"{base['source']} detoxified with {METHOD_NAMES[method]}")
    rows = [["method", f"`{method}`"], ["base model", f"`{base_source}`"]]
    if trains:
        rows += [
            ["training data", f"`{params.data.train}`: prompts whose toxicity is above "
                              f"{params.data.toxicity_threshold:g}; {prompts} distinct prompts "
                              "after the in-distribution test set was held out"],
            ["trained", trained],
            ["trainable parameters", f"{summary['trainable_params']:,} of "
                                     f"{summary['total_params']:,}"]]
    rows += _method_rows(params, summary, scorer["source"])
    rows += [["budget", f"{summary['policy_samples']:,} policy samples drawn, "
                        f"{summary['scorer_calls']:,} scorer calls, "
                        f"{summary['gradient_steps']:,} gradient steps, "
                        f"{summary['train_seconds']:,.0f} s of wall clock"
                        + (" (sampling included)" if method in ("sft", "dpo") else "")],
             ["seed", str(params.seed)]]
    text = "\n\n".join([
        f"# {data.model_name}",
        _what_it_is(method, base["source"], scorer["source"])
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
