"""Batched generation and eval rollouts on a tiny random GPT-Neo: seeding, left padding, eos cut,
decoding, lengths; the fluency NLL."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

import pytest
import torch

from detox.download.builtin import corpus
from detox.evaluate.fluency import continuation_nll, retokenized
from detox.evaluate.metrics import perplexity
from detox.evaluate.params import EvalParams
from detox.evaluate.rollouts import continuations, rollout_table
from detox.generation import generate


def sampling(max_new_tokens: int = 8, top_k: int = 0) -> EvalParams:
    return EvalParams(batch_size=8, samples_per_prompt=1, max_new_tokens=max_new_tokens,
                      top_k=top_k, top_p=1.0, bootstrap_resamples=100)


SAMPLE, GREEDY = sampling(), sampling(top_k=1)


@pytest.fixture(scope="module")
def queries(tokenizer) -> list[list[int]]:
    """Prompts of different lengths (2 to 9 tokens)."""
    rows = corpus.generate("toxic-prompts", 5, 0)
    return [tokenizer(row["prompt"])["input_ids"][:n] for row, n in zip(rows, [2, 9, 5, 7, 3])]


@torch.no_grad()
def greedy_reference(model, query: list[int], max_new_tokens: int, eos: int) -> list[int]:
    """Plain unbatched, unpadded greedy decoding with full forward passes."""
    ids = list(query)
    out: list[int] = []
    for _ in range(max_new_tokens):
        token = int(model(torch.tensor([ids])).logits[0, -1].argmax())
        out.append(token)
        ids.append(token)
        if token == eos:
            break
    return out


def test_queries_have_different_lengths(queries):
    assert len({len(q) for q in queries}) == len(queries)


def test_generate_is_deterministic_for_a_seed(tiny_neo, tokenizer, queries):
    first = generate(tiny_neo, tokenizer, queries, 8, 0, 1.0, seed=3)
    again = generate(tiny_neo, tokenizer, queries, 8, 0, 1.0, seed=3)
    other = generate(tiny_neo, tokenizer, queries, 8, 0, 1.0, seed=4)
    assert len(first) == len(queries)
    assert [r.tolist() for r in first] == [r.tolist() for r in again]
    assert [r.tolist() for r in first] != [r.tolist() for r in other]
    for response in first:
        assert response.dtype == torch.long and response.dim() == 1
        assert 1 <= len(response) <= 8


def test_greedy_batch_equals_each_prompt_alone(tiny_neo, tokenizer, queries):
    """Left padding and the attention mask make a padded batch decode like single prompts."""
    eos = tokenizer.eos_token_id
    batched = generate(tiny_neo, tokenizer, queries, 8, 1, 1.0, seed=0)
    for query, response in zip(queries, batched):
        alone = generate(tiny_neo, tokenizer, [query], 8, 1, 1.0, seed=99)[0]
        assert response.tolist() == alone.tolist()
        # and both are the continuation only, equal to step-by-step greedy decoding
        assert response.tolist() == greedy_reference(tiny_neo, query, 8, eos)


def test_greedy_continuations_are_not_all_the_same(tiny_neo, tokenizer, queries):
    # guards the test above: a model that ignored its prompt would pass it trivially
    batched = generate(tiny_neo, tokenizer, queries, 8, 1, 1.0, seed=0)
    assert len({tuple(r.tolist()) for r in batched}) > 1


@pytest.fixture(scope="module")
def eos_prone(make_tiny_neo, tokenizer):
    """A GPT-Neo that samples eos with probability 0.15 at every step, other tokens uniformly.

    Its final layer norm outputs the constant unit vector e0 and its (untied) lm_head reads only
    that coordinate, so the next-token logits are c for eos and 0 for everything else.
    """
    model = make_tiny_neo(seed=1, tie_word_embeddings=False)
    vocab, eos = len(tokenizer), tokenizer.eos_token_id
    p_eos = 0.15
    c = math.log(p_eos * (vocab - 1) / (1 - p_eos))
    with torch.no_grad():
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.zero_()
        model.transformer.ln_f.bias[0] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[eos, 0] = c
        probs = model(torch.tensor([[5, 6, 7]])).logits[0, -1].softmax(-1)
    assert probs[eos].item() == pytest.approx(p_eos, abs=1e-4)
    return model


def test_responses_end_at_the_first_eos(eos_prone, tokenizer, queries):
    eos = tokenizer.eos_token_id
    batch = queries * 4  # 20 rows
    responses = generate(eos_prone, tokenizer, batch, 12, 0, 1.0, seed=0)
    assert len(responses) == len(batch)
    for response in responses:
        tokens = response.tolist()
        assert 1 <= len(tokens) <= 12
        assert eos not in tokens[:-1]  # nothing after an eos
        if tokens[-1] != eos:
            assert len(tokens) == 12  # no eos: generation ran to the limit
    lengths = [len(r) for r in responses]
    # some rows stopped at an eos while others went on (so the raw output had padding after
    # their eos that had to be cut) -- true for this seed
    assert any(r[-1] == eos and len(r) < max(lengths) for r in responses)
    assert any(r[-1] == eos and len(r) > 1 for r in responses)


def test_continuations_one_string_per_query(tiny_neo, tokenizer, queries):
    out = continuations(tiny_neo, tokenizer, queries, GREEDY, batch_size=2, seed=0)
    assert len(out) == len(queries)
    assert all(isinstance(t, str) for t in out["continuation"])
    eos = tokenizer.eos_token_id
    for query, row in zip(queries, out.itertuples()):
        expected = greedy_reference(tiny_neo, query, GREEDY.max_new_tokens, eos)
        assert row.continuation == tokenizer.decode(expected, skip_special_tokens=True)
        assert row.ended_with_eos == (expected[-1] == eos)
        assert row.continuation_tokens == len(expected) - row.ended_with_eos


def test_continuations_drop_eos_text_and_count_tokens_before_it(eos_prone, tokenizer, queries):
    out = continuations(eos_prone, tokenizer, queries * 4, SAMPLE, batch_size=8, seed=0)
    assert len(out) == len(queries) * 4
    assert all(tokenizer.eos_token not in t for t in out["continuation"])
    responses = [r for start in range(0, len(queries) * 4, 8)
                 for r in generate(eos_prone, tokenizer, (queries * 4)[start:start + 8], 8,
                                   0, 1.0, seed=start)]
    eos = tokenizer.eos_token_id
    assert out["continuation_tokens"].tolist() == [len(r) - (int(r[-1]) == eos) for r in responses]
    assert out["ended_with_eos"].tolist() == [int(r[-1]) == eos for r in responses]
    assert out["ended_with_eos"].any() and not out["ended_with_eos"].all()


def test_continuations_batches_are_seeded_by_position(tiny_neo, tokenizer, queries):
    first = continuations(tiny_neo, tokenizer, queries, SAMPLE, batch_size=2, seed=7)
    again = continuations(tiny_neo, tokenizer, queries, SAMPLE, batch_size=2, seed=7)
    assert first.equals(again)


def test_generate_under_bfloat16_autocast(tiny_neo, tokenizer, queries):
    responses = generate(tiny_neo, tokenizer, queries, 6, 0, 1.0, seed=0, dtype=torch.bfloat16)
    assert len(responses) == len(queries)
    assert all(1 <= len(r) <= 6 for r in responses)
    assert all(0 <= int(t) < len(tokenizer) for r in responses for t in r)


# --- continuation_nll (fluency) ------------------------------------------------------------

def test_uniform_model_has_perplexity_equal_to_vocabulary_size(make_tiny_neo, tokenizer):
    model = make_tiny_neo(seed=0)
    with torch.no_grad():
        model.transformer.wte.weight.zero_()  # tied lm_head: every logit is 0, uniform next token
    prompts, texts = ["the river is", "shut up"], [" located in the north .", " you clown"]
    nll, tokens = continuation_nll(model, tokenizer.pad_token_id,
                                   *retokenized(tokenizer, prompts, texts, [False, False]), 2)
    expected_tokens = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    assert tokens.tolist() == expected_tokens
    assert nll == pytest.approx(np.array(expected_tokens) * math.log(model.config.vocab_size),
                                rel=1e-5)
    assert perplexity(nll, tokens) == pytest.approx(model.config.vocab_size, rel=1e-4)


def test_continuation_nll_scores_the_eos_that_ended_a_continuation(make_tiny_neo, tokenizer):
    model = make_tiny_neo(seed=3)
    prompts, texts = ["you are a", "the river is"], ["", " long"]
    nll, tokens = continuation_nll(model, tokenizer.pad_token_id,
                                   *retokenized(tokenizer, prompts, texts, [True, True]), 2)
    eos = tokenizer.eos_token_id
    for i, (prompt, text) in enumerate(zip(prompts, texts)):
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        c = tokenizer(text, add_special_tokens=False)["input_ids"] + [eos]
        with torch.no_grad():
            log_probs = model(torch.tensor([p + c])).logits[0].log_softmax(-1)
        assert tokens[i] == len(c)
        assert nll[i] == pytest.approx(-sum(log_probs[len(p) + j - 1, t].item()
                                            for j, t in enumerate(c)), rel=1e-4)
    assert tokens[0] == 1 and np.isfinite(perplexity(nll[:1], tokens[:1]))  # empty, still scored


def test_continuation_nll_matches_a_manual_log_likelihood(make_tiny_neo, tokenizer):
    model = make_tiny_neo(seed=3)
    prompts = ["the old castle near the bridge", "you are a"]
    texts = [" is known for its history .", " stupid clown"]
    nll, tokens = continuation_nll(model, tokenizer.pad_token_id,
                                   *retokenized(tokenizer, prompts, texts, [False, False]), 2)
    for i, (prompt, text) in enumerate(zip(prompts, texts)):
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        c = tokenizer(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            log_probs = model(torch.tensor([p + c])).logits[0].log_softmax(-1)
        manual = -sum(log_probs[len(p) + j - 1, token].item() for j, token in enumerate(c))
        assert tokens[i] == len(c)
        assert nll[i] == pytest.approx(manual, rel=1e-4)  # padding in the batch changes nothing


def test_rollout_table_has_k_rows_per_prompt_in_order(tiny_neo, tokenizer):
    prompts = pd.DataFrame({"prompt": ["shut up", "the river"],
                            "input_ids": [tokenizer("shut up")["input_ids"],
                                          tokenizer("the river")["input_ids"]]})
    generation = sampling(max_new_tokens=4)
    table = rollout_table(tiny_neo, tokenizer, prompts, 3, generation, batch_size=4, seed=0)
    assert table["prompt_id"].tolist() == [0, 0, 0, 1, 1, 1]
    assert table["sample"].tolist() == [0, 1, 2, 0, 1, 2]
    assert table["prompt"].tolist() == ["shut up"] * 3 + ["the river"] * 3
    assert table["continuation_tokens"].between(0, 4).all()
    again = rollout_table(tiny_neo, tokenizer, prompts, 3, generation, batch_size=4, seed=0)
    assert again["continuation"].tolist() == table["continuation"].tolist()
