"""Scorers (profanity-check, HF classifiers softmax and multi-label), the labels that read as
toxicity (neutral label, toxic labels) and the toxicity they give."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from profanity_check import predict_prob

from detox import DetoxError
from detox.scoring import ClassifierScorer, load_scorer
from detox.download.classifiers import snapshot_classifier
from detox.toxicity import PackagedScorer, neutral_index, toxicity, toxicity_reading

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


# --- multi-label (sigmoid) classifiers -------------------------------------------------------

TOXIC_BERT = {0: "toxic", 1: "severe_toxic", 2: "obscene", 3: "threat", 4: "insult",
              5: "identity_hate"}
# unitary/unbiased-toxic-roberta's: kinds of toxicity, then identities (not toxicity at all)
UNBIASED = dict(enumerate(["male", "toxicity", "severe_toxicity", "obscene", "identity_attack",
                           "insult", "threat", "sexual_explicit", "female", "christian"]))


def sigmoid_of_labels(path, texts: list[str], labels: list[int]) -> np.ndarray:
    """The classifier run here on each text alone, by transformers itself: the largest sigmoid
    probability of ``labels`` (the documented combination)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    with torch.no_grad():
        rows = [model(**tokenizer([text], return_tensors="pt")).logits[0] for text in texts]
    return np.array([max(1 / (1 + math.exp(-float(row[i]))) for i in labels) for row in rows])


def test_a_multi_label_scorer_reads_as_the_sigmoid_of_its_toxic_label(multilabel_scorer_dir):
    scorer = load_scorer(multilabel_scorer_dir, CPU, torch.float32, batch_size=2)
    assert scorer.multi_label and scorer.id2label == TOXIC_BERT
    reading = toxicity_reading(scorer.id2label, scorer.multi_label, None, None)
    assert reading.multi_label and reading.labels == ("toxic",)  # found by name
    result = reading.toxicity(scorer.logits(TEXTS))
    expected = sigmoid_of_labels(multilabel_scorer_dir, TEXTS, [0])
    assert isinstance(result, np.ndarray) and result.shape == (len(TEXTS),)
    np.testing.assert_allclose(result, expected, atol=1e-6)
    assert np.ptp(expected) > 0.01  # a real function of the text, not a constant
    # the same logits through softmax would be another number: the kind matters
    assert not np.allclose(result, toxicity(scorer.logits(TEXTS), 1), atol=1e-3)


def test_several_toxic_labels_combine_as_their_largest_probability(multilabel_scorer_dir):
    scorer = load_scorer(multilabel_scorer_dir, CPU, torch.float32)
    labels = ["toxic", "Insult", "obscene", "toxic"]  # case-insensitive, repeats ignored
    reading = toxicity_reading(scorer.id2label, True, None, labels)
    assert reading.labels == ("toxic", "insult", "obscene")
    result = reading.toxicity(scorer.logits(TEXTS))
    np.testing.assert_allclose(result, sigmoid_of_labels(multilabel_scorer_dir, TEXTS, [0, 4, 2]),
                               atol=1e-6)
    # with these weights the largest is insult's for some texts, obscene's for others
    assert len(set(scorer.logits(TEXTS)[:, [0, 4, 2]].argmax(dim=-1).tolist())) > 1
    alone = toxicity_reading(scorer.id2label, True, None, ["toxic"]).toxicity(
        scorer.logits(TEXTS))
    assert (result >= alone - 1e-7).all() and (result > alone + 1e-3).any()


def test_the_default_toxic_label_is_found_by_well_known_names():
    assert toxicity_reading(TOXIC_BERT, True, None, None).indices == (0,)
    # the unbiased model's `toxicity`, not an identity label nor another kind of toxicity
    assert toxicity_reading(UNBIASED, True, None, None).labels == ("toxicity",)
    assert toxicity_reading({0: "insult", 1: "Toxic"}, True, None, None).indices == (1,)


def one_line_error(*args, **kwargs) -> str:
    with pytest.raises(DetoxError) as info:
        toxicity_reading(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_an_unknown_toxic_label_names_the_classifier_s_labels():
    message = one_line_error(TOXIC_BERT, True, None, ["toxic", "hate"])
    assert "model.toxic_labels=['toxic', 'hate']" in message and "['hate']" in message
    assert str(sorted(TOXIC_BERT.values())) in message
    # the judge's params are named for the judge
    assert "model.judge_toxic_labels=['nasty']" in one_line_error(
        TOXIC_BERT, True, None, ["nasty"], prefix="model.judge_")


def test_a_multi_label_classifier_without_a_known_toxic_label_asks_for_the_param():
    message = one_line_error({0: "LABEL_0", 1: "LABEL_1"}, True, None, None)
    assert "set model.toxic_labels" in message and "LABEL_1" in message


def test_each_kind_of_classifier_refuses_the_other_kind_s_param():
    message = one_line_error(TOXIC_BERT, True, "toxic", None)
    assert "model.neutral_label='toxic' is for a softmax classifier" in message
    assert "multi_label_classification" in message and "model.toxic_labels" in message
    message = one_line_error({0: "nothate", 1: "hate"}, False, None, ["hate"],
                             prefix="model.judge_")
    assert "model.judge_toxic_labels=['hate'] is for a multi-label" in message
    assert "['hate', 'nothate']" in message and "model.judge_neutral_label" in message


def test_a_sigmoid_classifier_whose_config_does_not_say_is_multi_label_by_its_param(
        tmp_path, multilabel_scorer_dir):
    """Many hub classifiers leave problem_type unset: toxic labels then declare the kind."""
    unset = tmp_path / "no-problem-type"
    shutil.copytree(multilabel_scorer_dir, unset)
    config = json.loads((unset / "config.json").read_text())
    del config["problem_type"]
    (unset / "config.json").write_text(json.dumps(config))
    scorer = load_scorer(unset, CPU, torch.float32, batch_size=2)
    assert scorer.multi_label is None
    reading = toxicity_reading(scorer.id2label, scorer.multi_label, None, ["toxic"])
    np.testing.assert_allclose(reading.toxicity(scorer.logits(TEXTS)),
                               sigmoid_of_labels(multilabel_scorer_dir, TEXTS, [0]), atol=1e-6)
    with pytest.raises(DetoxError, match="no recognisable neutral label"):
        toxicity_reading(scorer.id2label, scorer.multi_label, None, None)
    # a softmax head that leaves problem_type unset (dynabench's) still refuses toxic labels
    with pytest.raises(DetoxError, match="is for a multi-label"):
        toxicity_reading({0: "nothate", 1: "hate"}, None, None, ["hate"])


def test_a_softmax_scorer_reads_exactly_as_before(roberta_scorer_dir):
    scorer = load_scorer(roberta_scorer_dir, CPU, torch.float32)
    assert not scorer.multi_label and not PackagedScorer("profanity-check").multi_label
    logits = scorer.logits(TEXTS)
    reading = toxicity_reading(scorer.id2label, scorer.multi_label, None, None)
    assert not reading.multi_label and reading.labels == ("nothate",)
    np.testing.assert_array_equal(reading.toxicity(logits), toxicity(logits, 0))
    hate = toxicity_reading(scorer.id2label, False, "hate", None)
    np.testing.assert_array_equal(hate.toxicity(logits), toxicity(logits, 1))
    # three softmax labels: 1 - P(neutral), up to float rounding
    three = torch.tensor([[1.0, 2.0, 0.5], [-1.0, 0.0, 3.0]])
    np.testing.assert_allclose(
        toxicity_reading({0: "hate", 1: "neutral", 2: "offensive"}, False, None, None)
        .toxicity(three), toxicity(three, 1), atol=1e-6)


def test_the_snapshot_records_the_problem_type(tmp_path, multilabel_scorer_dir,
                                                roberta_scorer_dir):
    import json

    manifest = snapshot_classifier(str(multilabel_scorer_dir), tmp_path / "judge", "model.judge")
    assert manifest["problem_type"] == "multi_label_classification"
    written = json.loads((tmp_path / "judge" / "source.json").read_text())
    assert written["problem_type"] == "multi_label_classification"
    assert written["id2label"] == {str(i): label for i, label in TOXIC_BERT.items()}
    # and the snapshot loads as the multi-label scorer it is
    assert load_scorer(tmp_path / "judge", CPU, torch.float32).multi_label
    softmax = snapshot_classifier(str(roberta_scorer_dir), tmp_path / "scorer", "model.scorer")
    assert softmax["problem_type"] is None  # not set: transformers' single-label default
    assert not load_scorer(tmp_path / "scorer", CPU, torch.float32).multi_label
