"""The model card that travels with the detoxified weights (``data/models/detoxified/README.md``).

Written in two halves, by the stages that know them: ``train`` writes what the model is and how
it was trained (``training_card``, into ``data/models/trained/README.md``); ``evaluate`` adds how
it scores and the caveats (``with_evaluation``) when it publishes the weights as
``data/models/detoxified``. The metadata is ``huggingface_hub``'s ``ModelCardData``, with the
eval results as the Hub's ``model-index``, so the folder can be pushed to the Hub as it is.
No dates or hostnames; the one number that changes from run to run is the wall-clock time of
the budget row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from detox.markdown import table
from detox.train.rewards import MEANINGS

TAGS = ["detoxification"]
METHOD_TAGS = {"ppo": ["ppo", "trl", "reinforcement-learning"], "word_filter": ["bad-words"],
               "sft": ["sft", "rejection-sampling"], "dpo": ["dpo", "trl"]}
METHOD_NAMES = {"ppo": "PPO", "word_filter": "a bad-word filter",
                "sft": "rejection-sampling fine-tuning", "dpo": "DPO"}
LOCAL_PREFIXES = ("builtin:", "/", ".", "~")
# (metric key in metrics/eval.json, name on the card); lower is better for all five
CARD_METRICS = (("mean_toxicity", "mean toxicity (reward scorer)"),
                ("expected_max_toxicity", "expected maximum toxicity"),
                ("judge_mean_toxicity", "mean toxicity (independent judge)"),
                ("perplexity", "perplexity (fluency LM, else the base model)"),
                ("kl_to_base", "KL to the base model (nats per token)"))


def _hub_id(source: str | None) -> str | None:
    """The Hub repository ``source`` names, if it names one (without ``?name=..&split=..``):
    the card's metadata may only name those."""
    repository = (source or "").split("?")[0]
    if not repository or repository.startswith(LOCAL_PREFIXES) or repository.count("/") != 1:
        return None
    return repository


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
        base_model=_hub_id(base["source"]),
        datasets=[dataset] if trains and (dataset := _hub_id(params.data.train)) else None,
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


def with_evaluation(card: ModelCard, metrics: Mapping[str, Any], sources: Mapping[str, str],
                    caveats: list[str], fluency: str = "the base policy") -> ModelCard:
    """``card`` with the detoxified model's results per eval set (``metrics/eval.json``) as
    ``model-index`` eval results and a table against the base model, and the report's caveats.
    ``sources`` names the dataset each eval set was drawn from, ``fluency`` the LM that
    perplexity is under."""
    results, rows = [], []
    for eval_set, by_model in metrics.items():
        base, detoxified = by_model["base"], by_model["detoxified"]
        for key, name in CARD_METRICS:
            results.append(EvalResult(  # the Hub's dataset type is a Hub id, or none
                task_type="text-generation", dataset_type=_hub_id(sources[eval_set]) or eval_set,
                dataset_name=eval_set, metric_type=key, metric_name=name,
                metric_value=detoxified[key]))
        difference = by_model["detoxified_minus_base"]["mean_toxicity"]
        rows.append([
            eval_set, f"{base['mean_toxicity']:.4f} → {detoxified['mean_toxicity']:.4f}",
            f"{difference['diff']:+.3f} [{difference['ci_low']:+.3f}, "
            f"{difference['ci_high']:+.3f}]",
            f"{base['expected_max_toxicity']:.3f} → {detoxified['expected_max_toxicity']:.3f}",
            f"{base['judge_mean_toxicity']:.3f} → {detoxified['judge_mean_toxicity']:.3f}",
            f"{base['perplexity']:.1f} → {detoxified['perplexity']:.1f}",
            f"{detoxified['kl_to_base']:.3f}"])
    first = next(iter(metrics.values()))["base"]
    evaluation = [
        "## Evaluation",
        f"{first['prompts']} prompts per eval set (fewer where a set has fewer distinct "
        f"prompts), {first['samples_per_prompt']} continuations each, the same prompts and "
        "seeds for the base model and this one; the sets are drawn from "
        + ", ".join(f"`{source}` ({eval_set})" for eval_set, source in sources.items())
        + " (in_distribution: the held-out prompts of the training data). Base → detoxified; "
        "the difference is the mean per-prompt difference with its 95% paired bootstrap CI.",
        table(["eval set", "mean toxicity", "difference", "expected max toxicity", "judge",
               f"perplexity under {fluency}", "KL to base (nats/token)"], rows),
        "Toxicity is the reward scorer's, the classifier that PPO, sft and dpo learn from (the "
        "word filter uses none): a drop the independent judge does not share is the scorer "
        "being gamed, not detoxification. "
        + ("Perplexity is under the base model itself, so it measures drift, not fluency: its "
           "log is the entropy plus the KL to the base, partly the intended move away from what "
           "the base says after a toxic prompt, partly lost fluency. "
           if fluency == "the base policy" else
           f"Perplexity is under {fluency}, an LM of its own: a rise is lost fluency. ")
        + "The KL is estimated on this model's own continuations.",
    ]
    if caveats:
        evaluation += ["### Caveats", "\n".join(f"- {text}" for text in caveats)]
    evaluated = ModelCard(card.content)  # a copy: ``card`` stays the training half
    evaluated.data.eval_results = results
    evaluated.text = f"{card.text.rstrip()}\n\n" + "\n\n".join(evaluation) + "\n"
    return evaluated
