"""Scorers (profanity-check, HF classifier), the neutral label and the reward transforms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from profanity_check import predict_prob

from detox import DetoxError
from detox.scoring import ClassifierScorer, load_scorer
from detox.toxicity import PackagedScorer, neutral_index, toxicity

TEXTS = ["you are a stupid idiot and a damn loser", "have a lovely day , thanks for the help",
         "shut up you pathetic moron", "the castle is located in the north and",
         "this crap sucks"]
CPU = torch.device("cpu")


# --- better-profanity (the offline judge) ---------------------------------------------------

def test_the_judge_gives_better_profanity_s_own_answers(corpus_texts):
    from better_profanity import profanity  # the library as shipped, nothing memoized

    # spelling variants the library matches, multi-word entries, repeats (the memo's hits)
    texts = corpus_texts[:100] + TEXTS + [
        "what a sh1t show", "you @ss", "f*ck this", "that is b u l l s h i t", "2 girls 1 cup",
        "a $hit day", "class assessment", "sh1t sh1t sh1t", "", "Sh!t happens"] * 2
    expected = [float(profanity.contains_profanity(text)) for text in texts]
    assert 0 < sum(expected) < len(texts)
    assert PackagedScorer("better-profanity").probabilities(texts).tolist() == expected


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


# --- toxicity --------------------------------------------------------------------------------

LOGITS = torch.tensor([[2.0, -1.0], [0.0, 0.0], [-3.0, 1.5], [0.7, 0.2]])


@pytest.mark.parametrize("neutral", [0, 1])
def test_toxicity_is_one_minus_neutral_probability(neutral):
    expected = [1 - math.exp(row[neutral]) / sum(math.exp(x) for x in row)
                for row in LOGITS.tolist()]
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
