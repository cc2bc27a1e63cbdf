"""The model card: written in two halves, saved and read back with huggingface_hub, with the
eval results as Hub ``model-index`` entries. (The pipeline test checks the card the real stages
write next to loadable weights.)"""

from __future__ import annotations

import math

from huggingface_hub import ModelCard

from detox.evaluate.report import caveats
from detox.model_card import CARD_METRICS, with_evaluation
from detox.train.card import training_card
from detox.train.methods import load_method
from detox.train.rewards import MEANINGS
from detox.train.summary import TrainSummary
from detox.params import parse
from detox.train.params import TrainParams

SUMMARY = {"method": "ppo", "trainable_params": 1200, "total_params": 5000,
           "trainable_fraction": 0.24, "kl_coef_start": 0.2, "kl_coef_end": 0.25,
           "diverged": False, "policy_samples": 640, "scorer_calls": 640, "gradient_steps": 80}
# What the other methods add to metrics/train.json
BASELINES = {
    "word_filter": {"trainable_params": 0, "policy_samples": 0, "scorer_calls": 0,
                    "gradient_steps": 0, "word_list": "badwords-py:en",
                    "word_list_sha256": "0123456789ab", "words": 796,
                    "banned_sequences": 4768, "banned_token_ids": 237},
    "sft": {"sampled_prompts": 160, "targets": 81, "target_toxicity_mean": 0.05,
            "loss_start": 1.7, "loss_end": 1.2},
    "dpo": {"sampled_prompts": 160, "pairs": 95, "chosen_toxicity_mean": 0.1,
            "rejected_toxicity_mean": 0.9, "loss_start": 0.69, "loss_end": 0.4},
}
BASE = {"source": "builtin:tiny-gpt-neo", "revision": None}


def card(params: TrainParams, summary: dict, prompts: int = 400, base: dict | None = None):
    """The training card of ``params.method`` from a ``metrics/train.json`` as a dict."""
    return training_card(load_method(params.method), base or BASE, SCORER, params,
                         TrainSummary.from_json(summary), prompts)
SCORER = {"source": "builtin:profanity-check"}
SOURCES = {"in_distribution": "builtin:toxic-prompts",
           "ood_toxic": "OxAISH-AL-LLM/wiki_toxic?split=test"}
HUB_TYPES = {"in_distribution": "in_distribution",  # not a Hub dataset: named by its set
             "ood_toxic": "OxAISH-AL-LLM/wiki_toxic"}


def result(base: float, detoxified: float, perplexity_ratio: float = 1.5) -> dict:
    """One eval set of metrics/eval.json, with what the card reads of it."""
    def model(toxicity: float, perplexity: float) -> dict:
        return {"mean_toxicity": toxicity, "expected_max_toxicity": min(1.0, 2 * toxicity),
                "judge_mean_toxicity": toxicity / 2, "perplexity": perplexity,
                "kl_to_base": math.log(perplexity / 4.0),
                "prompts": 32, "samples_per_prompt": 4, "continuation_tokens_mean": 9.0,
                "empty_share": 0.0}
    difference = detoxified - base
    return {"base": model(base, 4.0), "detoxified": model(detoxified, 4.0 * perplexity_ratio),
            "detoxified_minus_base": {"mean_toxicity": {
                "diff": difference, "ci_low": difference - 0.05, "ci_high": difference + 0.05}}}


def card_for(raw_params: dict, tmp_path, metrics: dict, base: dict = BASE,
             **changes) -> ModelCard:
    for dotted, value in changes.items():
        section, name = dotted.split(".")
        raw_params[section][name] = value
    params = parse(TrainParams, raw_params)
    evaluated = with_evaluation(card(params, SUMMARY, base=base), metrics, SOURCES,
                                caveats(metrics))
    evaluated.save(tmp_path / "README.md")
    return ModelCard.load(tmp_path / "README.md")


def test_the_saved_card_reads_back_with_every_eval_result(raw_params, tmp_path):
    metrics = {"in_distribution": result(0.8, 0.1), "ood_toxic": result(0.7, 0.2, 2.5)}
    card = card_for(raw_params, tmp_path, metrics)
    got = {(r.dataset_name, r.dataset_type, r.metric_type): r.metric_value
           for r in card.data.eval_results}
    assert got == {(name, HUB_TYPES[name], key): metrics[name]["detoxified"][key]
                   for name in metrics for key, _ in CARD_METRICS}
    assert card.data.pipeline_tag == "text-generation" and card.data.library_name == "transformers"
    # builtin sources are not Hub repositories: the metadata names none
    assert card.data.base_model is None and card.data.datasets is None
    text = card.text
    assert "`builtin:tiny-gpt-neo`" in text and "1,200 of 5,000" in text
    assert f"the top {raw_params['layers']} transformer blocks" in text
    assert "| ood_toxic | 0.7000 → 0.2000 | -0.500 [-0.550, -0.450]" in text
    assert "`OxAISH-AL-LLM/wiki_toxic?split=test` (ood_toxic)" in text
    assert "above 0.3; 400 distinct prompts" in text and "no top-k" in text
    # the report's caveats travel with the weights: perplexity rose 2.5x on ood_toxic only
    assert "ood_toxic: perplexity under the base policy rose 2.5x" in text
    assert "in_distribution: perplexity" not in text
    assert 'AutoModelForCausalLM.from_pretrained("data/models/detoxified")' in text


def test_a_lora_run_on_a_hub_model_says_so(raw_params, tmp_path):
    base = {"source": "EleutherAI/gpt-neo-125m", "revision": "21def01"}
    card = card_for(raw_params, tmp_path, {"in_distribution": result(0.8, 0.1)}, base,
                    **{"adapter.kind": "lora", "data.train": "allenai/real-toxicity-prompts?split=train"})
    assert card.data.base_model == "EleutherAI/gpt-neo-125m"
    assert card.data.datasets == ["allenai/real-toxicity-prompts"]
    assert f"LoRA (rank {raw_params['adapter']['rank']}" in card.text
    assert "`EleutherAI/gpt-neo-125m @ 21def01`" in card.text


def test_the_training_card_says_what_the_reward_pays_for_and_survives_a_run_with_no_step(
        raw_params):
    params = parse(TrainParams, raw_params)
    text = card(params, SUMMARY).text
    assert f"`{params.reward}` of `{SCORER['source']}`: {MEANINGS[params.reward]}" in text
    assert "0.2 over the first 5 steps, 0.25 over the last 5" in text
    # diverged at step 1: nothing logged, the card still renders
    empty = SUMMARY | {"kl_coef_start": None, "kl_coef_end": None, "diverged": True,
                       "diverged_at_step": 1, "divergence": "ppo/loss/total is not finite",
                       "model_step": 0}
    assert "| KL coefficient | no step kept |" in card(params, empty).text


def test_each_method_s_card_says_which_method_made_it_and_what_it_cost(raw_params):
    for method, found in BASELINES.items():
        params = parse(TrainParams, raw_params | {"method": method})
        made = card(params, SUMMARY | {"method": method} | found)
        assert made.data.model_name.endswith({"word_filter": "a bad-word filter",
                                              "sft": "rejection-sampling fine-tuning",
                                              "dpo": "DPO"}[method])
        assert f"| method | `{method}` |" in made.text
        assert (f"| budget | {found.get('policy_samples', 640):,} policy samples drawn, "
                f"{found.get('scorer_calls', 640):,} scorer calls, "
                f"{found.get('gradient_steps', 80):,} gradient steps |") in made.text
        assert "PPO" not in made.text.split("## How to load")[0].replace("*", "")  \
            .replace("Reinforcement Learning", "")
    word_filter = card(parse(TrainParams, raw_params | {"method": "word_filter"}),
                       SUMMARY | BASELINES["word_filter"])
    assert "`badwords-py:en` (sha256 of its words 0123456789ab): 796 words" in word_filter.text
    assert "training data" not in word_filter.text and "## Construction" in word_filter.text
    dpo = card(parse(TrainParams, raw_params | {"method": "dpo"}), SUMMARY | BASELINES["dpo"]).text
    assert "| pairs | 95:" in dpo
