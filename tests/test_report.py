"""A policy that stops writing must not look detoxified: length, emptiness and the warnings."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from detox.download.builtin import corpus
from detox.evaluate.metrics import eval_metrics
from detox.evaluate.params import EvalParams
from detox.evaluate.report import caveats, render
from detox.evaluate.fluency import continuation_nll
from detox.evaluate.rollouts import rollout_table
from detox.toxicity import PackagedScorer, toxicity

SAMPLING = EvalParams(batch_size=8, samples_per_prompt=2, max_new_tokens=6, top_k=0, top_p=1.0,
                      bootstrap_resamples=100)


@pytest.fixture(scope="module")
def mute(make_tiny_neo, tokenizer):
    """A GPT-Neo whose every next token is eos (logit 60 against 0): it answers eos first."""
    model = make_tiny_neo(seed=1, tie_word_embeddings=False)
    with torch.no_grad():
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.zero_()
        model.transformer.ln_f.bias[0] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[tokenizer.eos_token_id, 0] = 60.0
    return model


def scored(model, fluency_lm, tokenizer, prompts: pd.DataFrame) -> pd.DataFrame:
    """What the evaluate stage does for one model on one eval set."""
    table = rollout_table(model, tokenizer, prompts, SAMPLING.samples_per_prompt, SAMPLING,
                          SAMPLING.batch_size, seed=0)
    texts = table["continuation"].tolist()
    table["toxicity"] = toxicity(PackagedScorer("profanity-check").logits(texts), 0)
    table["judge_toxicity"] = toxicity(PackagedScorer("better-profanity").logits(texts), 0)
    table["nll"], table["tokens"] = continuation_nll(
        fluency_lm, tokenizer.pad_token_id, table["prompt_ids"].tolist(),
        table["continuation_ids"].tolist(), 8)
    # the fluency LM here is the base policy, as in the offline default
    table["nll_base"], table["policy_tokens"] = table["nll"], table["tokens"]
    table["nll_policy"] = continuation_nll(model, tokenizer.pad_token_id,
                                           table["prompt_ids"].tolist(),
                                           table["continuation_ids"].tolist(), 8)[0]
    return table


def test_eos_first_policy_is_empty_has_a_perplexity_and_is_warned_about(mute, tiny_neo,
                                                                           tokenizer):
    rows = corpus.generate("toxic-prompts", 6, 2)
    prompts = pd.DataFrame({"prompt": [row["prompt"] for row in rows]})
    prompts["input_ids"] = [tokenizer(text)["input_ids"][:8] for text in prompts["prompt"]]
    rollouts = {"in_distribution": {"base": scored(tiny_neo, tiny_neo, tokenizer, prompts),
                                    "detoxified": scored(mute, tiny_neo, tokenizer, prompts)}}
    metrics = eval_metrics(rollouts, seed=0, resamples=100)["in_distribution"]
    base, mute_summary = metrics["base"], metrics["detoxified"]

    assert mute_summary["empty_share"] == 1.0
    assert mute_summary["continuation_tokens_mean"] == 0.0
    assert (rollouts["in_distribution"]["detoxified"]["tokens"] == 1).all()  # the eos, scored
    assert math.isfinite(mute_summary["perplexity"]) and mute_summary["perplexity"] > 1
    # the base's own samples are no drift at all; always stopping at once is far from it
    assert base["kl_to_base"] == 0.0 and mute_summary["kl_to_base"] > 1
    assert mute_summary["mean_toxicity"] < 0.5  # empty text looks clean to the scorer...
    assert base["empty_share"] < 0.5 and base["continuation_tokens_mean"] > 3

    warnings = caveats({"in_distribution": metrics})  # ...so the report says why
    assert any("100% of continuations are empty" in w for w in warnings)
    assert any("markedly shorter" in w for w in warnings)
    report = render({"in_distribution": metrics}, rollouts, "mute policy")
    assert "## Warnings" in report and "are empty" in report


def test_no_warning_when_both_models_write_alike(tiny_neo, tokenizer):
    rows = corpus.generate("toxic-prompts", 6, 2)
    prompts = pd.DataFrame({"prompt": [row["prompt"] for row in rows]})
    prompts["input_ids"] = [tokenizer(text)["input_ids"][:8] for text in prompts["prompt"]]
    same = scored(tiny_neo, tiny_neo, tokenizer, prompts)
    metrics = eval_metrics({"ood_toxic": {"base": same, "detoxified": same}}, seed=0,
                           resamples=100)
    assert caveats(metrics) == []
    assert "## Warnings" not in render(metrics, {"ood_toxic": {"base": same, "detoxified": same}},
                                       "same model")
