"""Scorers (profanity-check, HF classifier), the neutral label and the reward transforms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from profanity_check import predict_prob

from detox import DetoxError
from detox.scorers import (BUILTIN_MARKER, ClassifierScorer, PackagedScorer, load_scorer,
                           neutral_index, rewards, snapshot_scorer, toxicity)

TEXTS = ["you are a stupid idiot and a damn loser", "have a lovely day , thanks for the help",
         "shut up you pathetic moron", "the castle is located in the north and",
         "this crap sucks"]
CPU = torch.device("cpu")


# --- profanity-check -------------------------------------------------------------------------

def test_profanity_check_softmax_gives_back_its_probabilities():
    logits = PackagedScorer("profanity-check").logits(TEXTS)
    assert logits.shape == (len(TEXTS), 2) and logits.dtype == torch.float32
    expected = predict_prob(TEXTS)
    assert expected.min() < 0.5 < expected.max()  # the texts span both classes
    np.testing.assert_allclose(logits.softmax(dim=-1)[:, 1].numpy(), expected, atol=1e-5)
    # centred: the two logits are opposite, so neither carries an offset
    torch.testing.assert_close(logits[:, 0], -logits[:, 1])


def test_profanity_check_toxicity_is_its_probability():
    scorer = PackagedScorer("profanity-check")
    neutral = neutral_index(scorer.id2label, None)
    assert scorer.id2label[neutral] == "neutral"
    np.testing.assert_allclose(toxicity(scorer.logits(TEXTS), neutral), predict_prob(TEXTS),
                               atol=1e-5)


def test_profanity_check_empty_input():
    assert PackagedScorer("profanity-check").logits([]).shape == (0, 2)
    # an empty continuation (eos first) is scored, not an error
    logits = PackagedScorer("profanity-check").logits(["", "damn"])
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()


def test_builtin_scorer_snapshot_and_load(tmp_path):
    manifest = snapshot_scorer("builtin:profanity-check", tmp_path / "scorer")
    assert (tmp_path / "scorer" / BUILTIN_MARKER).exists()
    assert manifest["package"] == "alt-profanity-check"
    assert isinstance(load_scorer(tmp_path / "scorer", CPU, torch.float32), PackagedScorer)


def test_unknown_builtin_scorer(tmp_path):
    with pytest.raises(DetoxError, match="model.scorer"):
        snapshot_scorer("builtin:perspective", tmp_path / "scorer")
    assert not (tmp_path / "scorer").exists()


def test_better_profanity_judge_is_its_word_list(tmp_path):
    from better_profanity import profanity

    snapshot_scorer("builtin:better-profanity", tmp_path / "judge", "model.judge")
    judge = load_scorer(tmp_path / "judge", CPU, torch.float32)
    assert isinstance(judge, PackagedScorer) and judge.name == "better-profanity"
    flags = [profanity.contains_profanity(text) for text in TEXTS]
    assert any(flags) and not all(flags)
    scores = toxicity(judge.logits(TEXTS), neutral_index(judge.id2label, None))
    np.testing.assert_allclose(scores, np.array(flags, dtype=float), atol=1e-5)


def test_unknown_builtin_judge_names_its_param(tmp_path):
    with pytest.raises(DetoxError, match=r"model\.judge='builtin:nope'"):
        snapshot_scorer("builtin:nope", tmp_path / "judge", "model.judge")


# --- neutral label ---------------------------------------------------------------------------

def test_neutral_index_error_names_the_given_param():
    with pytest.raises(DetoxError, match="set model.judge_neutral_label"):
        neutral_index({0: "LABEL_0", 1: "LABEL_1"}, None, "model.judge_neutral_label")


def test_neutral_index_finds_nothate():
    assert neutral_index({0: "nothate", 1: "hate"}, None) == 0
    assert neutral_index({0: "hate", 1: "nothate"}, None) == 1
    assert neutral_index({0: "toxic", 1: "severe", 2: "Non-Toxic"}, None) == 2


def test_neutral_index_honours_override():
    assert neutral_index({0: "LABEL_0", 1: "LABEL_1"}, "LABEL_1") == 1
    assert neutral_index({0: "LABEL_0", 1: "LABEL_1"}, "label_0") == 0  # case-insensitive
    # the override wins over a recognisable name
    assert neutral_index({0: "nothate", 1: "hate"}, "hate") == 1


def test_neutral_index_unrecognisable_labels():
    with pytest.raises(DetoxError) as info:
        neutral_index({0: "LABEL_0", 1: "LABEL_1"}, None)
    assert "model.neutral_label" in str(info.value)
    assert "LABEL_0" in str(info.value)


def test_neutral_index_override_not_a_label():
    with pytest.raises(DetoxError) as info:
        neutral_index({0: "nothate", 1: "hate"}, "clean")
    assert "model.neutral_label='clean'" in str(info.value)


# --- rewards and toxicity --------------------------------------------------------------------

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


@pytest.mark.parametrize("neutral", [0, 1])
def test_toxicity_is_one_minus_neutral_probability(neutral):
    expected = [1 - _p_neutral(row, neutral) for row in LOGITS.tolist()]
    result = toxicity(LOGITS, neutral)
    assert isinstance(result, np.ndarray) and result.shape == (len(LOGITS),)
    np.testing.assert_allclose(result, expected, atol=1e-6)


# --- Hugging Face classifier -----------------------------------------------------------------

def test_load_scorer_classifier(roberta_scorer_dir):
    scorer = load_scorer(roberta_scorer_dir, CPU, torch.float32, batch_size=2)
    assert isinstance(scorer, ClassifierScorer)
    assert scorer.id2label == {0: "nothate", 1: "hate"}
    assert neutral_index(scorer.id2label, None) == 0
    logits = scorer.logits(TEXTS)
    assert logits.shape == (len(TEXTS), 2) and logits.dtype == torch.float32
    # a real function of the text, not a constant
    assert not torch.allclose(logits[0], logits[1], atol=1e-3)


def test_classifier_batching_does_not_change_logits(roberta_scorer_dir):
    small = load_scorer(roberta_scorer_dir, CPU, torch.float32, batch_size=2).logits(TEXTS)
    large = load_scorer(roberta_scorer_dir, CPU, torch.float32, batch_size=64).logits(TEXTS)
    torch.testing.assert_close(small, large, atol=1e-5, rtol=1e-5)


def test_classifier_matches_unpadded_single_texts(roberta_scorer_dir):
    scorer = load_scorer(roberta_scorer_dir, CPU, torch.float32, batch_size=64)
    batched = scorer.logits(TEXTS)
    with torch.no_grad():
        for row, text in enumerate(TEXTS):
            alone = scorer.model(**scorer.tokenizer([text], return_tensors="pt")).logits[0]
            torch.testing.assert_close(batched[row], alone, atol=1e-5, rtol=1e-5)


def test_classifier_in_bfloat16_returns_float32(roberta_scorer_dir):
    scorer = load_scorer(roberta_scorer_dir, CPU, torch.bfloat16)
    assert next(scorer.model.parameters()).dtype == torch.bfloat16
    logits = scorer.logits(TEXTS)
    assert logits.dtype == torch.float32 and logits.shape == (len(TEXTS), 2)
    reference = load_scorer(roberta_scorer_dir, CPU, torch.float32).logits(TEXTS)
    torch.testing.assert_close(logits, reference, atol=0.25, rtol=0.1)


def test_classifier_empty_input(roberta_scorer_dir):
    assert load_scorer(roberta_scorer_dir, CPU, torch.float32).logits([]).shape == (0, 2)


def test_load_scorer_empty_folder(tmp_path):
    with pytest.raises(DetoxError, match="holds no scorer"):
        load_scorer(tmp_path, CPU, torch.float32)


def test_classifier_scores_a_batch_of_empty_continuations(roberta_scorer_dir):
    scorer = load_scorer(roberta_scorer_dir, CPU, torch.float32, batch_size=2)
    logits = scorer.logits(["", "", "you stupid clown"])
    assert logits.shape == (3, 2) and torch.isfinite(logits).all()
    torch.testing.assert_close(logits[0], logits[1])
