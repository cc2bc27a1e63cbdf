"""Toxicity summaries of scored rollouts and the PPO training summary."""

from __future__ import annotations

import statistics

import numpy as np
import pandas as pd
import pytest

from detox.metrics import eval_metrics, toxicity_summary, train_summary

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


def test_eval_metrics_shape_and_values():
    frame = lambda values: pd.DataFrame({"prompt": ["p"] * len(values),  # noqa: E731
                                         "continuation": ["c"] * len(values),
                                         "toxicity": values})
    rollouts = {
        "in_distribution": {"base": frame([0.9, 0.7, 0.8]), "detoxified": frame([0.1, 0.3])},
        "ood_toxic": {"base": frame([0.6, 0.4]), "detoxified": frame([0.2, 0.2, 0.2, 0.6])},
        "ood_benign": {"base": frame([0.05]), "detoxified": frame([0.0, 0.1])},
    }
    metrics = eval_metrics(rollouts)
    assert list(metrics) == ["in_distribution", "ood_toxic", "ood_benign"]
    for eval_set, by_model in rollouts.items():
        assert list(metrics[eval_set]) == ["base", "detoxified"]
        for model, table in by_model.items():
            values = table["toxicity"].tolist()
            summary = metrics[eval_set][model]
            assert summary["n"] == len(values)
            assert summary["mean_toxicity"] == pytest.approx(statistics.fmean(values), abs=1e-6)
            assert summary["std_toxicity"] == pytest.approx(statistics.pstdev(values), abs=1e-6)


def make_log(rewards: list[float], toxicities: list[float], kls: list[float]) -> list[dict]:
    return [{"step": i + 1, "reward_mean": r, "toxicity_mean": t, "kl": k, "kl_coef": 0.2,
             "response_tokens": 12.0, "seconds": 1.5}
            for i, (r, t, k) in enumerate(zip(rewards, toxicities, kls))]


def test_train_summary_start_and_end_windows():
    rewards = [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0]
    toxicities = [0.9, 0.8, 0.7, 0.5, 0.3, 0.2, 0.1]
    kls = [0.0, 0.1, 0.3, 0.2, 0.5, 0.8, 1.25]
    parameters = {"trainable_params": 100, "total_params": 400, "trainable_fraction": 0.25}
    summary = train_summary(make_log(rewards, toxicities, kls), parameters, 12.345, window=3)
    assert summary == {
        "trainable_params": 100, "total_params": 400, "trainable_fraction": 0.25,
        "steps": 7,
        "reward_mean_start": pytest.approx((-1.0 - 0.5 + 0.0) / 3),
        "reward_mean_end": pytest.approx((1.0 + 1.5 + 2.0) / 3),
        "toxicity_mean_start": pytest.approx((0.9 + 0.8 + 0.7) / 3),
        "toxicity_mean_end": pytest.approx((0.3 + 0.2 + 0.1) / 3),
        "kl_last": 1.25,
        "seconds": 12.3,
    }


def test_train_summary_default_window_is_five_steps():
    rewards = [float(i) for i in range(12)]  # 0..11
    summary = train_summary(make_log(rewards, [0.5] * 12, [0.0] * 12), {}, 1.0)
    assert summary["reward_mean_start"] == pytest.approx(2.0)   # mean of 0..4
    assert summary["reward_mean_end"] == pytest.approx(9.0)     # mean of 7..11
    assert summary["steps"] == 12


def test_train_summary_log_shorter_than_window():
    summary = train_summary(make_log([1.0, 2.0], [0.4, 0.2], [0.1, 0.3]), {}, 0.04, window=5)
    assert summary["reward_mean_start"] == summary["reward_mean_end"] == pytest.approx(1.5)
    assert summary["toxicity_mean_start"] == pytest.approx(0.3)
    assert summary["kl_last"] == pytest.approx(0.3)
    assert summary["seconds"] == 0.0
