"""Toxicity summaries of scored rollouts."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest

from detox.evaluate.metrics import (distinct_n, distinct_n_per_prompt, eval_metrics,
                                    expected_max_toxicity, kl_to_base, paired_bootstrap,
                                    perplexity, toxicity_probability, toxicity_summary)

SCORES = [0.12, 0.5, 0.93, 0.07, 0.31, 0.66]


def test_toxicity_summary_is_mean_and_population_std():
    summary = toxicity_summary(np.array(SCORES))
    assert summary["n"] == 6
    assert summary["mean_toxicity"] == pytest.approx(statistics.fmean(SCORES), abs=1e-6)
    assert summary["mean_toxicity"] == pytest.approx(float(np.mean(SCORES)), abs=1e-6)
    # population std (ddof=0), as in the paper's table, not the sample std
    assert summary["std_toxicity"] == pytest.approx(statistics.pstdev(SCORES), abs=1e-6)
    assert summary["std_toxicity"] != pytest.approx(statistics.stdev(SCORES), abs=1e-6)


def test_toxicity_summary_rounds_to_six_decimals_and_is_json_friendly():
    summary = toxicity_summary(pd.Series([1 / 3, 2 / 3, 1.0]))
    assert summary["mean_toxicity"] == round(2 / 3, 6)
    assert summary["std_toxicity"] == round(float(np.std([1 / 3, 2 / 3, 1.0])), 6)
    assert type(summary["mean_toxicity"]) is float and type(summary["n"]) is int


def test_toxicity_summary_constant_scores():
    assert toxicity_summary([0.25] * 4) == {"mean_toxicity": 0.25, "std_toxicity": 0.0, "n": 4}


def rollout(scores: list[list[float]], judge: list[list[float]] | None = None,
            texts: list[list[str]] | None = None, nll: float = 2.0, tokens: int = 4,
            lengths: list[list[int]] | None = None, drift: float = 0.0) -> pd.DataFrame:
    """A rollout table from a (prompts, k) matrix of scores."""
    rows = []
    for prompt_id, row in enumerate(scores):
        for sample, score in enumerate(row):
            rows.append({"prompt_id": prompt_id, "sample": sample, "prompt": f"p{prompt_id}",
                         "continuation": texts[prompt_id][sample] if texts else "a b c d",
                         "continuation_tokens": lengths[prompt_id][sample] if lengths else 4,
                         "toxicity": score,
                         "judge_toxicity": judge[prompt_id][sample] if judge else 0.0,
                         "nll": nll, "tokens": tokens, "nll_base": nll + drift,
                         "nll_policy": nll, "policy_tokens": tokens})
    return pd.DataFrame(rows)


def test_expected_max_toxicity_of_a_known_matrix():
    scores = np.array([[0.1, 0.9, 0.3], [0.2, 0.2, 0.4], [0.6, 0.0, 0.5]])
    emt, std = expected_max_toxicity(scores)
    assert emt == pytest.approx((0.9 + 0.4 + 0.6) / 3)
    assert std == pytest.approx(statistics.pstdev([0.9, 0.4, 0.6]))


def test_toxicity_probability_counts_prompts_with_any_toxic_sample():
    scores = np.array([[0.1, 0.5], [0.49, 0.2], [0.7, 0.8], [0.0, 0.0]])
    assert toxicity_probability(scores) == pytest.approx(2 / 4)  # 0.5 itself counts as toxic
    assert toxicity_probability(scores, threshold=0.75) == pytest.approx(1 / 4)


def test_distinct_n_of_a_known_list():
    texts = ["the cat sat", "the cat ran", "a dog"]
    # unigrams: the, cat, sat, the, cat, ran, a, dog -> 6 distinct of 8
    assert distinct_n(texts, 1) == pytest.approx(6 / 8)
    # bigrams: (the cat) (cat sat) (the cat) (cat ran) (a dog) -> 4 distinct of 5
    assert distinct_n(texts, 2) == pytest.approx(4 / 5)
    # trigrams: (the cat sat) (the cat ran) -> 2 of 2
    assert distinct_n(texts, 3) == 1.0
    assert distinct_n(["one", ""], 2) == 0.0


def test_distinct_n_per_prompt_is_among_each_prompts_own_samples():
    frame = pd.DataFrame({"prompt_id": [0, 0, 1, 1, 2, 2],
                          "continuation": ["a b", "a b", "c d", "e f", "", "x"]})
    # prompt 0 repeats itself (1 of 2 bigrams distinct), prompt 1 does not (2 of 2); prompt 2
    # has no bigram and is left out of the mean, as DExperts would have to
    assert distinct_n_per_prompt(frame, 2) == pytest.approx((1 / 2 + 2 / 2) / 2)
    # pooled, the repeats of prompt 0 are the only ones: 3 distinct of 4
    assert distinct_n(frame["continuation"].tolist(), 2) == pytest.approx(3 / 4)
    assert distinct_n_per_prompt(frame.iloc[4:], 2) == 0.0


def test_kl_to_base_is_the_mean_log_ratio_per_policy_token():
    frame = pd.DataFrame({"nll_base": [5.0, 3.0], "nll_policy": [2.0, 2.0],
                          "policy_tokens": [3, 1]})
    assert kl_to_base(frame) == pytest.approx((3.0 + 1.0) / 4)
    assert kl_to_base(frame.assign(nll_policy=frame["nll_base"])) == 0.0  # the base itself


def test_perplexity_is_exp_of_mean_token_nll():
    assert perplexity(np.array([2.0, 4.0]), np.array([1, 3])) == pytest.approx(math.exp(6 / 4))
    assert math.isnan(perplexity(np.array([0.0]), np.array([0])))


def test_paired_bootstrap_ci_brackets_the_mean_difference():
    base = np.array([0.9, 0.8, 0.7, 0.95, 0.6, 0.85])
    detox = np.array([0.1, 0.3, 0.2, 0.15, 0.2, 0.05])
    result = paired_bootstrap(base, detox, seed=0, resamples=2000)
    assert result["diff"] == pytest.approx(float(np.mean(detox - base)), abs=1e-6)
    assert result["ci_low"] <= result["diff"] <= result["ci_high"] < 0
    # paired: a constant shift has no spread at all
    shifted = paired_bootstrap(base, base - 0.25, seed=0)
    assert shifted["ci_low"] == shifted["ci_high"] == pytest.approx(-0.25)
    assert paired_bootstrap(base, detox, seed=0) == paired_bootstrap(base, detox, seed=0)


def test_eval_metrics_fields_from_known_rollouts():
    base = rollout([[0.9, 0.2], [0.6, 0.7], [0.1, 0.3]], judge=[[1, 0], [0, 1], [0, 0]])
    detox = rollout([[0.1, 0.0], [0.2, 0.4], [0.1, 0.1]], nll=1.0, tokens=2, drift=0.5,
                    texts=[["a a", "a b"], ["b c", "c"], ["d", "a a"]],
                    lengths=[[2, 2], [2, 0], [1, 0]])
    metrics = eval_metrics({"ood_toxic": {"base": base, "detoxified": detox}}, seed=0,
                           resamples=200)["ood_toxic"]
    b, d = metrics["base"], metrics["detoxified"]
    assert (b["prompts"], b["samples_per_prompt"], b["n"]) == (3, 2, 6)
    assert b["mean_toxicity"] == pytest.approx(2.8 / 6, abs=1e-6)
    assert b["expected_max_toxicity"] == pytest.approx((0.9 + 0.7 + 0.3) / 3, abs=1e-6)
    assert b["toxicity_probability"] == pytest.approx(2 / 3, abs=1e-6)
    assert b["judge_mean_toxicity"] == pytest.approx(2 / 6, abs=1e-6)
    assert b["judge_toxicity_probability"] == pytest.approx(2 / 3, abs=1e-6)
    assert b["perplexity"] == pytest.approx(math.exp(2.0 / 4), abs=1e-6)
    assert d["perplexity"] == pytest.approx(math.exp(1.0 / 2), abs=1e-6)
    assert (b["kl_to_base"], d["kl_to_base"]) == (0.0, pytest.approx(0.5 / 2))
    assert d["distinct_1_per_prompt"] == pytest.approx((2 / 4 + 2 / 3 + 2 / 3) / 3, abs=1e-6)
    # detoxified words: a a a b b c c d a a -> distinct a, b, c, d of 10
    assert d["distinct_1"] == pytest.approx(4 / 10)
    assert (b["continuation_tokens_mean"], b["empty_share"]) == (4.0, 0.0)
    assert d["continuation_tokens_mean"] == pytest.approx(7 / 6, abs=1e-6)
    assert d["empty_share"] == pytest.approx(2 / 6, abs=1e-6)
    difference = metrics["detoxified_minus_base"]["mean_toxicity"]
    per_prompt_base, per_prompt_detox = [0.55, 0.65, 0.2], [0.05, 0.3, 0.1]
    assert difference["diff"] == pytest.approx(
        statistics.fmean(np.subtract(per_prompt_detox, per_prompt_base)), abs=1e-6)
    emt_difference = metrics["detoxified_minus_base"]["expected_max_toxicity"]["diff"]
    assert emt_difference == pytest.approx(((0.1 - 0.9) + (0.4 - 0.7) + (0.1 - 0.3)) / 3, abs=1e-6)
