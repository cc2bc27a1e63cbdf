"""Prompt sets: toxicity filter, column checks, prompt cutting, train/test split, eval samples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from detox import DetoxError
from detox.builtin import corpus
from detox.data import (clean_prompts, filter_toxic, require_columns, sample, split,
                        tokenize_prompts)


# --- require_columns / filter_toxic ----------------------------------------------------------

def test_require_columns_names_the_missing_column():
    table = pd.DataFrame({"prompt": ["a"], "score": [0.5]})
    with pytest.raises(DetoxError) as info:
        require_columns(table, ["prompt", "toxicity"], "data.train")
    message = str(info.value)
    assert message.startswith("data.train:")
    assert "missing column(s) toxicity" in message
    assert "prompt, score" in message  # what it has instead
    require_columns(table, ["prompt", "score"], "data.train")  # all present: no error


def test_filter_toxic_keeps_rows_strictly_above_threshold():
    table = pd.DataFrame({
        "prompt": ["a", "b", "c", "d", "e", "f", "g"],
        "toxicity": [0.9, None, 0.3, 0.31, 0.0, np.nan, 1.0],
    })
    kept = filter_toxic(table, 0.3, "data.train", "lower data.toxicity_threshold")
    assert kept["prompt"].tolist() == ["a", "d", "g"]
    assert kept["toxicity"].tolist() == [0.9, 0.31, 1.0]
    assert kept.index.tolist() == [0, 1, 2]
    assert len(table) == 7  # the input is left alone


def test_filter_toxic_nothing_left():
    table = pd.DataFrame({"prompt": ["a", "b", "c"], "toxicity": [0.1, None, 0.3]})
    with pytest.raises(DetoxError) as info:
        filter_toxic(table, 0.3, "data.train", "lower data.toxicity_threshold")
    message = str(info.value)
    assert "data.toxicity_threshold" in message
    assert "data.train" in message and "of 3 rows" in message


def test_filter_toxic_without_any_label_says_so():
    table = pd.DataFrame({"prompt": ["a", "b"], "toxicity": [None, np.nan]})
    with pytest.raises(DetoxError, match="has no toxicity labels"):
        filter_toxic(table, 0.3, "data.train", "hint")


def test_clean_prompts_drops_blank_and_heading_lines_and_strips():
    table = pd.DataFrame({"prompt": ["", " = Heading = ", "  text one ", None, " = = Sub = = ",
                                     "= not a heading = because it goes on", "\n"],
                          "toxicity": range(7)})
    cleaned = clean_prompts(table, "data.ood_benign")
    assert cleaned["prompt"].tolist() == ["text one", "= not a heading = because it goes on"]
    assert cleaned["toxicity"].tolist() == [2, 5]
    with pytest.raises(DetoxError, match="blank or a heading"):
        clean_prompts(table.iloc[[0, 1, 6]], "data.ood_benign")


def test_filter_toxic_needs_a_toxicity_column():
    with pytest.raises(DetoxError, match="missing column\\(s\\) toxicity"):
        filter_toxic(pd.DataFrame({"prompt": ["a"]}), 0.3, "data.train", "hint")


# --- tokenize_prompts ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def long_prompts() -> pd.DataFrame:
    """Prompts far longer than any cut length, with an extra column that must survive."""
    rows = corpus.generate("toxic-prompts", 400, 3)
    prompts = [f"{a['prompt']} {a['continuation']} {b['prompt']}"
               for a, b in zip(rows[::2], rows[1::2])]
    return pd.DataFrame({"prompt": prompts, "toxicity": np.linspace(0.4, 0.9, len(prompts))})


def test_tokenize_prompts_cuts_to_lengths_in_range(long_prompts, tokenizer):
    assert min(len(tokenizer(p)["input_ids"]) for p in long_prompts["prompt"]) > 12
    out = tokenize_prompts(long_prompts, tokenizer, 3, 7, seed=0, source="data.train")
    assert len(out) == len(long_prompts)
    lengths = out["input_ids"].map(len)
    assert lengths.between(3, 7).all()
    assert set(lengths) == {3, 4, 5, 6, 7}  # sampled over the whole range, both ends included
    for full, ids, text in zip(long_prompts["prompt"], out["input_ids"], out["prompt"]):
        assert list(ids) == tokenizer(full)["input_ids"][: len(ids)]  # a prefix of the prompt
        assert text == tokenizer.decode(ids)  # prompt column is the decoded cut
        assert full.startswith(text)
    assert out["toxicity"].tolist() == long_prompts["toxicity"].tolist()


def test_tokenize_prompts_is_deterministic_for_a_seed(long_prompts, tokenizer):
    first = tokenize_prompts(long_prompts, tokenizer, 2, 9, seed=5, source="data.train")
    again = tokenize_prompts(long_prompts, tokenizer, 2, 9, seed=5, source="data.train")
    other = tokenize_prompts(long_prompts, tokenizer, 2, 9, seed=6, source="data.train")
    assert first["input_ids"].map(list).tolist() == again["input_ids"].map(list).tolist()
    assert first["prompt"].tolist() == again["prompt"].tolist()
    assert first["input_ids"].map(len).tolist() != other["input_ids"].map(len).tolist()


def test_tokenize_prompts_fixed_length(long_prompts, tokenizer):
    out = tokenize_prompts(long_prompts, tokenizer, 4, 4, seed=0, source="data.train")
    assert (out["input_ids"].map(len) == 4).all()


def test_tokenize_prompts_short_and_empty_prompts(tokenizer):
    table = pd.DataFrame({"prompt": ["", None, "   ", "hi", "  the castle is  "]})
    assert len(tokenizer("the castle is")["input_ids"]) <= 6  # shorter than any cut length
    out = tokenize_prompts(table, tokenizer, 6, 10, seed=0, source="data.ood_benign")
    # empty (after stripping) prompts are dropped; a short prompt is kept whole, stripped
    assert out["prompt"].tolist() == ["hi", "the castle is"]
    assert out["input_ids"].map(list).tolist() == [tokenizer("hi")["input_ids"],
                                                   tokenizer("the castle is")["input_ids"]]
    assert out.index.tolist() == [0, 1]


def test_tokenize_prompts_all_empty(tokenizer):
    with pytest.raises(DetoxError, match="data.ood_toxic: every prompt is empty"):
        tokenize_prompts(pd.DataFrame({"prompt": ["", None]}), tokenizer, 1, 2, 0,
                         "data.ood_toxic")


def test_tokenize_prompts_needs_a_prompt_column(tokenizer):
    with pytest.raises(DetoxError, match="missing column\\(s\\) prompt"):
        tokenize_prompts(pd.DataFrame({"text": ["a"]}), tokenizer, 1, 2, 0, "data.train")


# --- split / sample --------------------------------------------------------------------------

def numbered(n: int) -> pd.DataFrame:
    return pd.DataFrame({"id": range(n), "prompt": [f"prompt {i}" for i in range(n)]})


@pytest.mark.parametrize("n, n_test", [(50, 10), (23, 5), (7, 1), (12, 2)])
def test_split_sizes_disjoint_and_complete(n, n_test):
    assert n_test == round(n * 0.2)
    train, test = split(numbered(n), 0.2, seed=0)
    assert len(test) == n_test and len(train) == n - n_test
    assert set(train["id"]).isdisjoint(test["id"])
    assert sorted([*train["id"], *test["id"]]) == list(range(n))
    assert train.index.tolist() == list(range(len(train)))
    assert test.index.tolist() == list(range(len(test)))
    # rows stay whole
    assert (train["prompt"] == "prompt " + train["id"].astype(str)).all()


def test_split_is_shuffled():
    train, _ = split(numbered(100), 0.2, seed=0)
    assert train["id"].tolist() != sorted(train["id"])


def test_split_is_deterministic_and_seeded():
    table = numbered(60)
    train, test = split(table, 0.2, seed=1)
    train2, test2 = split(table, 0.2, seed=1)
    assert train.equals(train2) and test.equals(test2)
    _, test3 = split(table, 0.2, seed=2)
    assert set(test["id"]) != set(test3["id"])


@pytest.mark.parametrize("n, fraction", [(2, 0.2), (4, 0.1), (3, 0.9)])
def test_split_that_would_leave_a_side_empty(n, fraction):
    with pytest.raises(DetoxError, match="data.test_fraction"):
        split(numbered(n), fraction, seed=0)


def test_sample_smaller_table_is_returned_whole():
    table = numbered(5)
    table.index = [10, 11, 12, 13, 14]
    out = sample(table, 8, seed=0)
    assert out["id"].tolist() == [0, 1, 2, 3, 4]
    assert out.index.tolist() == [0, 1, 2, 3, 4]
    assert sample(numbered(8), 8, seed=0)["id"].tolist() == list(range(8))


def test_sample_draws_n_distinct_rows_deterministically():
    table = numbered(100)
    out = sample(table, 10, seed=0)
    assert len(out) == 10 and out["id"].is_unique
    assert set(out["id"]) <= set(table["id"])
    assert out.index.tolist() == list(range(10))
    assert out.equals(sample(table, 10, seed=0))
    assert set(out["id"]) != set(sample(table, 10, seed=1)["id"])
