"""The PPO reward transforms of the scorer's logits."""

from __future__ import annotations

import math

import pytest
import torch

from detox import DetoxError
from detox.train.rewards import rewards


LOGITS = torch.tensor([[2.0, -1.0], [0.0, 0.0], [-3.0, 1.5], [0.7, 0.2]])


def _p_neutral(row: list[float], neutral: int) -> float:
    exps = [math.exp(x) for x in row]
    return exps[neutral] / sum(exps)


@pytest.mark.parametrize("neutral", [0, 1])
def test_reward_neutral_logit(neutral):
    expected = [row[neutral] for row in LOGITS.tolist()]
    assert rewards(LOGITS, "neutral_logit", neutral).tolist() == pytest.approx(expected)


@pytest.mark.parametrize("neutral", [0, 1])
def test_reward_neutral_softmax(neutral):
    expected = [_p_neutral(row, neutral) for row in LOGITS.tolist()]
    assert rewards(LOGITS, "neutral_softmax", neutral).tolist() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("neutral", [0, 1])
def test_reward_log_toxicity(neutral):
    expected = [-math.log(1 - _p_neutral(row, neutral)) for row in LOGITS.tolist()]
    assert rewards(LOGITS, "log_toxicity", neutral).tolist() == pytest.approx(expected, abs=1e-5)


def test_reward_log_toxicity_three_classes():
    logits = torch.tensor([[1.0, 2.0, 0.5], [-1.0, 0.0, 3.0]])
    for neutral in range(3):
        expected = [-math.log(1 - _p_neutral(row, neutral)) for row in logits.tolist()]
        assert rewards(logits, "log_toxicity", neutral).tolist() == pytest.approx(expected,
                                                                                   abs=1e-5)


def test_reward_log_toxicity_is_stable_when_almost_surely_neutral():
    # P(toxic) = e^-30 / (e^30 + e^-30): 1 - P(neutral) underflows to 0 in float32, the reward
    # must not become inf: -log P(toxic) = 60 + log(1 + e^-60) ~= 60
    reward = rewards(torch.tensor([[30.0, -30.0]]), "log_toxicity", 0)
    assert torch.isfinite(reward).all()
    assert reward.item() == pytest.approx(60.0, abs=1e-4)


@pytest.mark.parametrize("kind", ["neutral_logit", "neutral_softmax", "log_toxicity"])
def test_rewards_order_by_neutrality(kind):
    # the more neutral, the higher the reward: rows sorted by neutral logit margin
    logits = torch.tensor([[-2.0, 2.0], [0.0, 0.5], [1.0, 0.0], [4.0, -1.0]])
    reward = rewards(logits, kind, 0)
    assert reward.dtype == torch.float32
    assert torch.all(reward[1:] > reward[:-1])


def test_rewards_accept_half_precision_logits():
    logits = LOGITS.to(torch.bfloat16)
    reward = rewards(logits, "log_toxicity", 1)
    assert reward.dtype == torch.float32
    torch.testing.assert_close(reward, rewards(logits.float(), "log_toxicity", 1))


def test_unknown_reward():
    with pytest.raises(DetoxError, match="reward='foo'"):
        rewards(LOGITS, "foo", 0)
