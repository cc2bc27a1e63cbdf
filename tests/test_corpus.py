"""The builtin offline corpus (and the byte-level tokenizer trained on it)."""

from __future__ import annotations

import pytest

from detox.download.builtin import corpus
from detox.download.builtin.tiny_model import EOS, train_tokenizer


@pytest.mark.parametrize("family", corpus.FAMILIES)
def test_generate_is_deterministic(family):
    rows = corpus.generate(family, 40, seed=0)
    assert rows == corpus.generate(family, 40, seed=0)
    assert len(rows) == 40
    assert all(set(row) == {"prompt", "continuation"} for row in rows)
    assert all(row["prompt"] and row["continuation"] for row in rows)
    assert all("{" not in row["prompt"] + row["continuation"] for row in rows)  # all filled


@pytest.mark.parametrize("family", corpus.FAMILIES)
def test_generate_differs_across_seeds(family):
    assert corpus.generate(family, 40, seed=0) != corpus.generate(family, 40, seed=1)


def test_families_differ():
    prompts = {family: {row["prompt"] for row in corpus.generate(family, 60, 0)}
               for family in corpus.FAMILIES}
    assert prompts["toxic-prompts"].isdisjoint(prompts["ood-benign"])
    assert prompts["ood-toxic"].isdisjoint(prompts["ood-benign"])
    assert prompts["toxic-prompts"].isdisjoint(prompts["ood-toxic"])


def test_smaller_draw_is_a_prefix():
    assert corpus.generate("ood-toxic", 10, 3) == corpus.generate("ood-toxic", 25, 3)[:10]
    assert corpus.generate("ood-toxic", 0, 3) == []


def test_toxic_prompts_are_mostly_insulting_and_benign_ones_are_not():
    def insulting(text: str) -> bool:
        words = set(text.replace(",", " ").split())
        return bool(words & (set(corpus.INSULTS) | set(corpus.INSULT_NOUNS)
                             | {n + "s" for n in corpus.INSULT_NOUNS}))

    toxic = corpus.generate("toxic-prompts", 400, 0)
    benign = corpus.generate("ood-benign", 400, 0)
    share = sum(insulting(r["prompt"] + " " + r["continuation"]) for r in toxic) / len(toxic)
    assert share > 0.6
    assert not any(insulting(r["prompt"]) for r in benign)


def test_unknown_family():
    with pytest.raises(ValueError, match="unknown builtin family 'wikitext'"):
        corpus.generate("wikitext", 3, 0)


def test_train_tokenizer_round_trips_and_pads_with_eos(corpus_texts):
    tokenizer = train_tokenizer(corpus_texts, vocab_size=350)
    assert len(tokenizer) == 350
    assert tokenizer.eos_token == tokenizer.pad_token == EOS
    assert tokenizer.convert_tokens_to_ids(EOS) == tokenizer.eos_token_id
    for text in corpus_texts[:20] + ["unseen wörds ✓ 123"]:
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.decode(ids) == text
    # merges were learnt: corpus text needs fewer tokens than bytes
    sample = corpus_texts[0]
    assert len(tokenizer(sample)["input_ids"]) < len(sample.encode())
    assert set(tokenizer(sample).keys()) == {"input_ids", "attention_mask"}
