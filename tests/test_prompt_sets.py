"""Prompt sets: toxicity filter, column checks, prompt cutting, train/test split, eval samples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from detox import DetoxError
from detox.download.builtin import corpus
from detox.prepare.prompt_sets import (clean_prompts, drop_duplicates, filter_toxic, query_texts,
                                       held_out_size, require_columns, sample, split,
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


def test_clean_prompts_drops_blank_and_heading_lines_and_keeps_texts_as_they_are():
    table = pd.DataFrame({"prompt": ["", " = Heading = ", "  text one ", None, " = = Sub = = ",
                                     "= not a heading = because it goes on", "\n"],
                          "toxicity": range(7)})
    cleaned = clean_prompts(table, "data.ood_benign")
    # not stripped here: TRL's queries are cut from prompt + continuation exactly as given
    assert cleaned["prompt"].tolist() == ["  text one ", "= not a heading = because it goes on"]
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


@pytest.mark.parametrize("n, n_test", [(50, 10), (23, 5), (7, 2), (12, 3), (10, 2)])
def test_split_sizes_disjoint_and_complete(n, n_test):
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


@pytest.mark.parametrize("rows, n_test", [(10977, 2196), (35109, 7022), (10, 2), (11, 3)])
def test_test_size_rounds_up_like_datasets_train_test_split(rows, n_test):
    # the paper's counts: Jigsaw 8,781 / 2,196 and RealToxicityPrompts 28,087 / 7,022
    assert held_out_size(rows, 0.2) == n_test


@pytest.mark.parametrize("n, fraction", [(1, 0.2), (5, 0.81), (3, 0.9)])
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


# --- held-out prompts ------------------------------------------------------------------------

def test_drop_duplicates_keeps_each_prompt_once_and_none_that_is_excluded():
    table = pd.DataFrame({"prompt": ["you are a", "You  are a", "the river", "you are a ",
                                     "shut up", "the castle"], "id": range(6)})
    kept, repeats, excluded = drop_duplicates(table, exclude=pd.Series(["SHUT up", "elsewhere"]))
    assert kept["id"].tolist() == [0, 2, 5]  # first of each, case and spacing ignored
    assert (repeats, excluded) == (2, 1)
    assert kept.index.tolist() == [0, 1, 2]
    assert drop_duplicates(table)[1:] == (2, 0)


def test_prompts_cut_to_a_few_tokens_leak_when_rows_are_split(tokenizer):
    """Distinct texts become the same query once cut; split distinct queries, not rows."""
    rows = corpus.generate("toxic-prompts", 600, 0)
    table = pd.DataFrame({"prompt": [row["prompt"] for row in rows]})
    cut = tokenize_prompts(table, tokenizer, 3, 5, seed=0, source="data.train")
    row_train, row_test = split(cut, 0.2, seed=0)
    assert row_test["prompt"].isin(set(row_train["prompt"])).any()  # a row split leaks
    distinct, repeats, _ = drop_duplicates(cut)
    assert repeats > 0
    train, test = split(distinct, 0.2, seed=0)
    assert not test["prompt"].isin(set(train["prompt"])).any()


# --- queries: prompt only, or prompt + continuation as TRL builds them --------------------------

def test_query_texts_prompt_or_prompt_and_continuation():
    table = pd.DataFrame({"prompt": [" Her name was", "He said "],
                          "continuation": [" Ann.", "hello"]})
    assert query_texts(table, "prompt", "data.train").tolist() == ["Her name was", "He said"]
    assert query_texts(table, "prompt_continuation", "data.train").tolist() == \
        [" Her name was Ann.", "He said hello"]
    with pytest.raises(DetoxError, match="data.train_query"):
        query_texts(table.assign(continuation=None), "prompt_continuation", "data.train")
    with pytest.raises(DetoxError, match="data.train_query"):
        query_texts(table[["prompt"]], "prompt_continuation", "data.train")
