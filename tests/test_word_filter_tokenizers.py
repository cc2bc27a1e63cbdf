"""The word filter's banned sequences are the ids each tokenizer emits for a word in running
text, whatever the family: GPT-2's byte-level BPE (the GPT-Neo fixture), a Llama tokenizer that
adds a BOS and has several special tokens, and a SentencePiece-style one (``▁`` word starts);
and a tiny Llama taught a listed word never emits it under the filter. (The GPT-Neo policy's
own tests: tests/test_word_filter.py.)"""

from __future__ import annotations

import re

import pytest
from tokenizers import SentencePieceBPETokenizer
from transformers import AutoModelForCausalLM, LlamaTokenizerFast

from detox.generation import generate
from detox.models import load_tokenizer
from detox.train.word_filter import add_word_filter, banned_sequences

from test_word_filter import taught

WORDS = ["hell", "idiot"]
HELL = re.compile(r"\bhell\b", re.IGNORECASE)
# the word at a text's start, mid-sentence (any casing) and at a line's start
WRITTEN = ["hell is here", "the village is hell", "you are an Idiot", "what the HELL",
           "the village\nhell", "they said\nIdiot"]
CLEAN = ["the village is friendly", "a kind person who helped everyone"]


def contains(ids: list[int], sequences: list[list[int]]) -> bool:
    banned = {tuple(seq) for seq in sequences}
    return any(tuple(ids[i:i + n]) in banned for n in {len(seq) for seq in sequences}
               for i in range(len(ids) - n + 1))


@pytest.fixture(scope="module")
def sentencepiece_tokenizer(corpus_texts) -> LlamaTokenizerFast:
    """SentencePiece-style BPE (``▁`` marks a word's start, prepended to every text), BOS
    added, as Llama 2's and Mistral's; its merges straddle a newline and the next word's
    first letter ("\\nh")."""
    backend = SentencePieceBPETokenizer()
    listed = ["hell no\nhell yes HELL Hell idiot\nIdiot IDIOT"] * 20  # no byte fallback
    backend.train_from_iterator(corpus_texts + listed, vocab_size=400,
                                special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    return LlamaTokenizerFast(tokenizer_object=backend._tokenizer, bos_token="<s>",
                              eos_token="</s>", unk_token="<unk>", add_bos_token=True,
                              legacy=True)


@pytest.mark.parametrize("name", ["tokenizer", "llama_tokenizer", "sentencepiece_tokenizer"])
def test_the_word_as_each_tokenizer_writes_it_in_running_text_is_banned(name, request):
    tokenizer = request.getfixturevalue(name)
    sequences = banned_sequences(WORDS, tokenizer)
    for text in WRITTEN:  # as the tokenizer encodes a whole text, its specials included
        assert contains(tokenizer(text)["input_ids"], sequences), text
    for text in CLEAN:
        assert not contains(tokenizer(text)["input_ids"], sequences), text
    special = set(tokenizer.all_special_ids)
    assert not any(special & set(seq) for seq in sequences)
    assert sequences == sorted(sequences) and len({tuple(s) for s in sequences}) == len(sequences)


def test_a_llama_tokenizer_that_adds_a_bos_bans_what_the_same_bpe_does(llama_tokenizer,
                                                                       tokenizer):
    # the fixture's Llama tokenizer is the GPT-Neo fixture's BPE plus special tokens and a BOS
    assert llama_tokenizer("hell")["input_ids"][0] == llama_tokenizer.bos_token_id
    assert banned_sequences(WORDS, llama_tokenizer) == banned_sequences(WORDS, tokenizer)
    mid = llama_tokenizer("the village is hell")["input_ids"]
    before = llama_tokenizer("the village is")["input_ids"]
    assert mid[len(before):] in banned_sequences(WORDS, llama_tokenizer)


def test_sentencepiece_line_starts_are_banned_as_the_model_writes_them(sentencepiece_tokenizer):
    tokenizer = sentencepiece_tokenizer
    sequences = banned_sequences(["hell"], tokenizer)
    line = tokenizer("the\nhell", add_special_tokens=False)["input_ids"]
    first = tokenizer("the", add_special_tokens=False)["input_ids"]
    # the newline merges into the word's first token: the word alone (or with a leading
    # space, " hell" -> "▁hell") is not what follows a newline
    assert line[:len(first)] == first and len(line) > len(first)
    assert line[len(first):] not in [tokenizer(t, add_special_tokens=False)["input_ids"]
                                     for t in ("hell", " hell")]
    assert line[len(first):] in sequences


@pytest.mark.parametrize("words", [["</s>"], ["<|eot|>", "<pad>", "<s>"]])
def test_special_tokens_on_the_list_ban_nothing_special(llama_tokenizer, words):
    """A list entry that is a special token: the policy must still be able to stop, and a
    space before it is no reason to ban the space."""
    sequences = banned_sequences(words + ["hell"], llama_tokenizer)
    special = set(llama_tokenizer.all_special_ids)
    assert not any(special & set(seq) for seq in sequences)
    space = llama_tokenizer(" ", add_special_tokens=False)["input_ids"]
    assert space not in sequences


@pytest.fixture(scope="module")
def llama_hell_dir(tmp_path_factory, make_tiny_llama, llama_tokenizer):
    """A tiny Llama fine-tuned to continue its BOS and " the village is" with " a hell hell
    ...", saved with its tokenizer."""
    ids = llama_tokenizer(" the village is a" + " hell" * 10)["input_ids"]
    return taught(make_tiny_llama(seed=0), llama_tokenizer, ids,
                  tmp_path_factory.mktemp("llama-hell"))


def test_a_llama_that_prefers_a_listed_word_never_emits_it_under_the_filter(llama_hell_dir):
    model = AutoModelForCausalLM.from_pretrained(llama_hell_dir).eval()
    tokenizer = load_tokenizer(llama_hell_dir)
    query = tokenizer(" the village is")["input_ids"]  # BOS first

    def texts(seed: int) -> list[str]:
        return tokenizer.batch_decode(generate(model, tokenizer, [query] * 32, 8, top_k=0,
                                               top_p=1.0, seed=seed), skip_special_tokens=True)

    assert sum(bool(HELL.search(text)) for text in texts(1)) >= 0.9 * 32
    add_word_filter(model, tokenizer, "badwords-py:en")
    for seed in range(2):
        assert not any(HELL.search(text) for text in texts(seed))
