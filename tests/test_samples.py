"""The sample stage's library: which prompts, and k scored continuations of each, as sampled."""

from __future__ import annotations

import pandas as pd
import torch

from detox.generation import GenerationParams
from detox.sample.samples import COLUMNS, pick_prompts, scored_samples
from detox.toxicity import PackagedScorer, toxicity_reading

# The packaged scorers' labels (neutral, toxic) read as a softmax classifier's.
READING = toxicity_reading(PackagedScorer.id2label, False, None, None)
SAMPLING = GenerationParams(max_new_tokens_from=3, max_new_tokens_to=6, top_k=0, top_p=1.0)


def prompt_table(tokenizer, texts: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"prompt": texts,
                         "input_ids": [tokenizer(text)["input_ids"] for text in texts]})


def test_prompts_are_drawn_by_seed_and_all_taken_where_too_few(tokenizer, capsys):
    table = prompt_table(tokenizer, [f"prompt number {i}" for i in range(10)])
    first, again = pick_prompts(table, 4, seed=0), pick_prompts(table, 4, seed=0)
    assert first.equals(again) and first["prompt"].is_unique and len(first) == 4
    assert not first.equals(pick_prompts(table, 4, seed=1))
    assert len(pick_prompts(table, 25, seed=0)) == 10
    assert "25 prompts, but there are 10 training prompts" in capsys.readouterr().out


def test_each_prompt_gets_k_scored_continuations_kept_as_sampled(tokenizer, tiny_neo):
    prompts = prompt_table(tokenizer, ["you are a stupid", "the river is", "shut up you"])
    scorer = PackagedScorer("profanity-check")

    def draw(seed: int) -> pd.DataFrame:
        return scored_samples(tiny_neo, tokenizer, scorer, READING, prompts, 4, SAMPLING, 2, seed)

    table = draw(0)
    assert list(table.columns) == list(COLUMNS) and len(table) == 12
    assert table.groupby("prompt_id")["sample"].apply(list).tolist() == [[0, 1, 2, 3]] * 3
    for row in table.itertuples():
        assert list(row.prompt_ids) == prompts["input_ids"][row.prompt_id]
        assert 1 <= len(row.continuation_ids) <= SAMPLING.max_new_tokens_to
        assert tokenizer.decode(row.continuation_ids, skip_special_tokens=True) \
            == row.continuation
        assert row.ended_with_eos == (row.continuation_ids[-1] == tokenizer.eos_token_id)
    expected = 1 - scorer.logits(table["continuation"].tolist()).softmax(-1)[:, 0].numpy()
    assert torch.allclose(torch.tensor(table["toxicity"].to_numpy()),
                          torch.tensor(expected), atol=1e-6)
    assert draw(0).equals(table) and not draw(1)["continuation"].equals(table["continuation"])
