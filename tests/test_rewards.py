"""The PPO reward transforms of the scorer's logits, for a softmax scorer (neutral label) and a
multi-label one (sigmoid toxic labels), against their definitions computed here."""

from __future__ import annotations

import math

import pytest
import torch

from detox import DetoxError
from detox.toxicity import toxicity_reading
from detox.train.rewards import MEANINGS, rewards

LOGITS = torch.tensor([[2.0, -1.0], [0.0, 0.0], [-3.0, 1.5], [0.7, 0.2]])
# unitary/toxic-bert's labels, one sigmoid each
TOXIC_BERT = {0: "toxic", 1: "severe_toxic", 2: "obscene", 3: "threat", 4: "insult",
              5: "identity_hate"}
MULTI = torch.tensor([[2.0, -1.0, 0.5, -4.0, 1.0, -2.0],
                      [-3.0, -5.0, 1.2, -6.0, -1.0, -2.5],
                      [0.0, 0.3, -2.0, -1.0, -1.0, -3.0],
                      [-9.0, -8.0, -7.0, -9.5, -8.5, -9.0]])


def softmax(neutral: int, labels: int = 2):
    id2label = {i: f"LABEL_{i}" for i in range(labels)}
    return toxicity_reading(id2label, False, f"LABEL_{neutral}", None)


def multi(toxic_labels: list[str] | None):
    return toxicity_reading(TOXIC_BERT, True, None, toxic_labels)


def _p_neutral(row: list[float], neutral: int) -> float:
    exps = [math.exp(x) for x in row]
    return exps[neutral] / sum(exps)


def _p_toxic(row: list[float], labels: list[int]) -> float:
    """The documented combination: the largest sigmoid probability of the toxic labels."""
    return max(1 / (1 + math.exp(-row[i])) for i in labels)


@pytest.mark.parametrize("neutral", [0, 1])
def test_reward_neutral_logit(neutral):
    expected = [row[neutral] for row in LOGITS.tolist()]
    assert rewards(LOGITS, "neutral_logit", softmax(neutral)).tolist() == pytest.approx(expected)


@pytest.mark.parametrize("neutral", [0, 1])
def test_reward_neutral_softmax(neutral):
    expected = [_p_neutral(row, neutral) for row in LOGITS.tolist()]
    assert rewards(LOGITS, "neutral_softmax", softmax(neutral)).tolist() == pytest.approx(
        expected, abs=1e-6)


@pytest.mark.parametrize("neutral", [0, 1])
def test_reward_log_toxicity(neutral):
    expected = [-math.log(1 - _p_neutral(row, neutral)) for row in LOGITS.tolist()]
    assert rewards(LOGITS, "log_toxicity", softmax(neutral)).tolist() == pytest.approx(
        expected, abs=1e-5)


def test_two_class_softmax_rewards_are_bitwise_the_former_formulas():
    # a softmax scorer's rewards are exactly what they were before multi-label scorers
    for neutral in (0, 1):
        reading, other = softmax(neutral), 1 - neutral
        assert torch.equal(rewards(LOGITS, "neutral_logit", reading), LOGITS[:, neutral])
        assert torch.equal(rewards(LOGITS, "neutral_softmax", reading),
                           LOGITS.softmax(dim=-1)[:, neutral])
        assert torch.equal(rewards(LOGITS, "log_toxicity", reading),
                           -LOGITS.log_softmax(dim=-1)[:, other])


def test_reward_log_toxicity_three_classes():
    logits = torch.tensor([[1.0, 2.0, 0.5], [-1.0, 0.0, 3.0]])
    for neutral in range(3):
        expected = [-math.log(1 - _p_neutral(row, neutral)) for row in logits.tolist()]
        assert rewards(logits, "log_toxicity", softmax(neutral, 3)).tolist() == pytest.approx(
            expected, abs=1e-5)


def test_reward_log_toxicity_is_stable_when_almost_surely_neutral():
    # P(toxic) = e^-30 / (e^30 + e^-30): 1 - P(neutral) underflows to 0 in float32, the reward
    # must not become inf: -log P(toxic) = 60 + log(1 + e^-60) ~= 60
    reward = rewards(torch.tensor([[30.0, -30.0]]), "log_toxicity", softmax(0))
    assert torch.isfinite(reward).all()
    assert reward.item() == pytest.approx(60.0, abs=1e-4)


@pytest.mark.parametrize("labels", [["toxic"], ["obscene"], ["toxic", "insult", "obscene"]])
def test_multi_label_rewards_match_their_definitions(labels):
    reading = multi(labels)
    indices = [list(TOXIC_BERT.values()).index(label) for label in labels]
    p = [_p_toxic(row, indices) for row in MULTI.tolist()]
    # neutral_logit: the logit of "not toxic" = -logit(p); neutral_softmax: 1 - p; -log p
    assert rewards(MULTI, "neutral_logit", reading).tolist() == pytest.approx(
        [-math.log(q / (1 - q)) for q in p], abs=1e-5)
    assert rewards(MULTI, "neutral_softmax", reading).tolist() == pytest.approx(
        [1 - q for q in p], abs=1e-6)
    assert rewards(MULTI, "log_toxicity", reading).tolist() == pytest.approx(
        [-math.log(q) for q in p], abs=1e-5)


def test_multi_label_neutral_logit_of_one_label_is_minus_its_logit():
    assert torch.equal(rewards(MULTI, "neutral_logit", multi(["toxic"])), -MULTI[:, 0])
    assert torch.equal(rewards(MULTI, "neutral_logit", multi(["insult"])), -MULTI[:, 4])


def test_multi_label_log_toxicity_is_stable_when_almost_surely_clean():
    # sigmoid(-40) ~ 4e-18: 1 - sigmoid(40) is 0 in float32; -log p = 40 + log(1 + e^-40)
    reward = rewards(torch.full((1, 6), -40.0), "log_toxicity", multi(None))
    assert torch.isfinite(reward).all() and reward.item() == pytest.approx(40.0, abs=1e-4)


@pytest.mark.parametrize("kind", ["neutral_logit", "neutral_softmax", "log_toxicity"])
def test_rewards_order_by_neutrality(kind):
    # the more neutral, the higher the reward: rows sorted by neutral logit margin
    logits = torch.tensor([[-2.0, 2.0], [0.0, 0.5], [1.0, 0.0], [4.0, -1.0]])
    reward = rewards(logits, kind, softmax(0))
    assert reward.dtype == torch.float32
    assert torch.all(reward[1:] > reward[:-1])
    # multi-label: the lower the toxic logit, the higher the reward
    toxic = torch.tensor([3.0, 0.5, -1.0, -4.0])
    reward = rewards(torch.stack([toxic, *torch.zeros(5, 4)], dim=1), kind, multi(None))
    assert reward.dtype == torch.float32 and torch.all(reward[1:] > reward[:-1])


def test_rewards_accept_half_precision_logits():
    logits = LOGITS.to(torch.bfloat16)
    reward = rewards(logits, "log_toxicity", softmax(1))
    assert reward.dtype == torch.float32
    torch.testing.assert_close(reward, rewards(logits.float(), "log_toxicity", softmax(1)))


def test_every_reward_has_a_meaning_for_the_model_card():
    from detox.train.params import REWARDS

    assert set(MEANINGS) == set(REWARDS)


def test_unknown_reward():
    with pytest.raises(DetoxError, match="reward='foo'"):
        rewards(LOGITS, "foo", softmax(0))
