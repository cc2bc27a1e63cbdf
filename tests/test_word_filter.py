"""The word_filter baseline: a tiny GPT-Neo taught to say "hell" never says it under the filter,
through detox.generation or a plain ``generate`` on the saved folder; the banned sequences; the
errors; and the filtered policy's likelihood in continuation_nll."""

from __future__ import annotations


import json
import math
import re

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from detox import DetoxError
from detox.evaluate.fluency import continuation_nll, retokenized
from detox.generation import generate
from detox.train.word_filter import add_word_filter, banned_sequences, load_words

SOURCE = "badwords-py:en"
HELL = re.compile(r"\bhell\b", re.IGNORECASE)
PROMPT = " the village is"


@pytest.fixture(scope="module")
def hell_dir(tmp_path_factory, make_tiny_neo, tokenizer):
    """A tiny GPT-Neo fine-tuned to answer " a hell hell hell ..." (" hell" is two tokens for
    this tokenizer, " hel" + "l": the filter must ban the pair), saved with its tokenizer."""
    ids = tokenizer(PROMPT + " a" + " hell" * 10, add_special_tokens=False)["input_ids"]
    return taught(make_tiny_neo(seed=0), tokenizer, ids, tmp_path_factory.mktemp("hell"))


def taught(model, tokenizer, ids: list[int], path):
    """``model`` fitted to the one sequence ``ids`` (60 Adam steps), saved in ``path`` with
    ``tokenizer``: a policy that prefers what a filter must ban."""
    ids = torch.tensor([ids])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(60):
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval().save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def load(path):
    return AutoModelForCausalLM.from_pretrained(path).eval()


def sample(model, tokenizer, seed: int, n: int = 32) -> list[torch.Tensor]:
    query = tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    return generate(model, tokenizer, [query] * n, 8, top_k=0, top_p=1.0, seed=seed)


def contains(ids: list[int], sequences: list[list[int]]) -> bool:
    banned = {tuple(seq) for seq in sequences}
    return any(tuple(ids[i:i + n]) in banned for n in {len(seq) for seq in sequences}
               for i in range(len(ids) - n + 1))


def test_a_policy_that_prefers_a_listed_word_never_emits_it_under_the_filter(hell_dir,
                                                                           tokenizer):
    model = load(hell_dir)
    unfiltered = tokenizer.batch_decode(sample(model, tokenizer, seed=1), skip_special_tokens=True)
    assert sum(bool(HELL.search(text)) for text in unfiltered) >= 0.9 * len(unfiltered)

    summary = add_word_filter(model, tokenizer, SOURCE)
    banned = model.generation_config.bad_words_ids
    query = tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    for seed in range(2):  # generate(..., top_k=, top_p=) merges the model's generation config
        for response in sample(model, tokenizer, seed):
            assert not contains(query[1:] + response.tolist(), banned)
            assert not HELL.search(tokenizer.decode(response, skip_special_tokens=True))
    assert re.fullmatch("[0-9a-f]{12}", summary.pop("word_list_sha256"))
    assert summary == {"word_list": SOURCE, "words": 796, "banned_sequences": len(banned),
                       "banned_token_ids": len({i for seq in banned for i in seq}),
                       "banned_single_tokens": sum(len(seq) == 1 for seq in banned)}


def test_the_published_folder_alone_honours_the_list(hell_dir, tokenizer, tmp_path):
    model = load(hell_dir)
    add_word_filter(model, tokenizer, SOURCE)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "generation_config.json").read_text())
    assert saved["bad_words_ids"] == model.generation_config.bad_words_ids

    published, plain = AutoModelForCausalLM.from_pretrained(tmp_path), AutoTokenizer.from_pretrained(tmp_path)
    inputs = plain([PROMPT] * 32, return_tensors="pt")
    torch.manual_seed(0)
    output = published.generate(**inputs, do_sample=True, max_new_tokens=8,
                                pad_token_id=plain.eos_token_id)
    texts = plain.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert not any(HELL.search(text) for text in texts)
    torch.manual_seed(0)  # the same call on the unfiltered folder does say it
    output = load(hell_dir).generate(**inputs, do_sample=True, max_new_tokens=8,
                                     pad_token_id=plain.eos_token_id)
    assert any(HELL.search(text) for text in plain.batch_decode(output, skip_special_tokens=True))


def test_banned_sequences_cover_casings_and_a_leading_space(tokenizer):
    sequences = banned_sequences(["hell", "idiot"], tokenizer)
    for variant in ("hell", " hell", "Hell", " Hell", "HELL", " HELL", " idiot", "IDIOT"):
        assert tokenizer(variant, add_special_tokens=False)["input_ids"] in sequences
    assert sequences == sorted(sequences) and len({tuple(s) for s in sequences}) == len(sequences)
    assert len(sequences) == 12  # no two variants tokenise alike here
    # a list entry that is the eos token itself: the policy must still be able to stop
    assert [tokenizer.eos_token_id] not in banned_sequences([tokenizer.eos_token], tokenizer)


def test_load_words(tmp_path):
    words = load_words(SOURCE)
    assert len(words) == 796 and "hell" in words and all(w == w.strip() and w for w in words)
    path = tmp_path / "words.txt"
    path.write_text("# ours\n\nfoo\n  bar baz  \n#not\n", encoding="utf-8")
    assert load_words(str(path)) == ["foo", "bar baz"]


def test_an_edited_word_list_changes_its_recorded_hash(tmp_path, tokenizer, make_tiny_neo):
    path = tmp_path / "words.txt"
    hashes = []
    for words in ("hell\n", "hell\n# a comment changes nothing\n", "hell\ndamn\n"):
        path.write_text(words, encoding="utf-8")
        hashes.append(add_word_filter(make_tiny_neo(), tokenizer, str(path))["word_list_sha256"])
    assert hashes[0] == hashes[1] != hashes[2]


def test_clear_errors(tmp_path, tokenizer, tiny_neo):
    with pytest.raises(DetoxError, match=r"word_filter\.words.*'xx'.*\ben\b"):
        load_words("badwords-py:xx")
    with pytest.raises(DetoxError, match=r"word_filter\.words.*no such file"):
        load_words(str(tmp_path / "missing.txt"))
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing yet\n\n", encoding="utf-8")
    with pytest.raises(DetoxError, match=r"`.*empty\.txt` \(0 words\) yields no token ids"):
        add_word_filter(tiny_neo, tokenizer, str(empty))
    assert tiny_neo.generation_config.bad_words_ids is None  # left as it was
    with pytest.raises(DetoxError, match=r"`given` \(0 words\) yields no token ids"):
        banned_sequences([], tokenizer)


@torch.no_grad()
def reference_nll(model, tokenizer, prompt: str, text: str, banned: list[list[int]]) -> float:
    """Unbatched, one position at a time: mask every token that completes a banned sequence
    given the tokens before it, renormalise; a masked target is scored unmasked."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = prompt_ids + tokenizer(text, add_special_tokens=False)["input_ids"]
    logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    total = 0.0
    for t in range(len(prompt_ids), len(ids)):
        masked = logits[t - 1].clone()
        for seq in banned:
            if len(seq) == 1 or (len(seq) - 1 <= t and ids[t - len(seq) + 1:t] == seq[:-1]):
                masked[seq[-1]] = -math.inf
        row = logits[t - 1] if math.isinf(masked[ids[t]]) else masked
        total -= float(torch.log_softmax(row, dim=-1)[ids[t]])
    return total


def test_continuation_nll_scores_the_filtered_policy(hell_dir, tokenizer):
    model = load(hell_dir)
    # " hel hel" is clean, but after each " hel" the model wanted "l"; " a hell" has a masked
    # target, which the filtered policy cannot have sampled; the others have nothing near a
    # banned sequence.
    texts = [" a hel hel hel", " a hell", " the village", " friendly and"]
    ids = retokenized(tokenizer, [PROMPT] * len(texts), texts, [False] * len(texts))
    base, counts = continuation_nll(model, tokenizer.pad_token_id, *ids, 3)
    assert np.allclose(base, [reference_nll(model, tokenizer, PROMPT, t, [])
                              for t in texts], atol=1e-4)

    add_word_filter(model, tokenizer, SOURCE)
    banned = model.generation_config.bad_words_ids
    nll, filtered_counts = continuation_nll(model, tokenizer.pad_token_id, *ids, 3)
    assert (filtered_counts == counts).all()
    kept = [0, 2, 3]
    assert np.allclose(nll[kept], [reference_nll(model, tokenizer, PROMPT, texts[i], banned)
                                   for i in kept], atol=1e-4)
    assert nll[0] < base[0] - 1  # the banned "l"'s mass went to what was written
    assert np.isposinf(nll[1])  # a banned token has probability 0 under the filtered policy


def test_continuation_nll_of_a_model_without_a_filter_is_unchanged(tiny_neo, tokenizer):
    """The same numbers as a direct cross-entropy, with or without an eos scored."""
    texts, prompts = [" the village", "", " a"], [PROMPT, " friendly", " the"]
    nll, counts = continuation_nll(tiny_neo, tokenizer.pad_token_id,
                                   *retokenized(tokenizer, prompts, texts, [False, True, True]), 2)
    eos = tokenizer.eos_token_id
    for value, count, prompt, text, ended in zip(nll, counts, prompts, texts, [False, True, True]):
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        text_ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [eos] * ended
        ids = torch.tensor([prompt_ids + text_ids])
        with torch.no_grad():
            logits = tiny_neo(input_ids=ids).logits[0, len(prompt_ids) - 1:-1]
        expected = torch.nn.functional.cross_entropy(logits, ids[0, len(prompt_ids):],
                                                     reduction="sum")
        assert count == len(text_ids) and value == pytest.approx(float(expected), abs=1e-4)
