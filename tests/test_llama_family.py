"""What a Llama-family checkpoint brings that GPT-Neo does not, piece by piece: a tokenizer that
adds a BOS, bos/eos/pad all distinct, a generation config naming two eos ids, a converted
tokenizer that names the wrong eos. (The whole pipeline on it: tests/test_llama_pipeline.py.)"""

from __future__ import annotations

import copy

import pandas as pd
import pytest
import torch
from trl import AutoModelForCausalLMWithValueHead

from detox import DetoxError
from detox.download.lms import correct_tokenizer
from detox.evaluate.fluency import continuation_nll
from detox.evaluate.rollouts import rollout_table
from detox.evaluate.params import EvalParams
from detox.generation import generate
from detox.models import end_ids, special_prefix
from detox.prepare.prompt_sets import tokenize_prompts

TEXTS = ["shut up you worthless moron and go away", "the old castle near the river was"]


def always_next(model, token_id: int) -> None:
    """Make ``token_id`` the model's next token everywhere, whatever the hidden state: a head
    with a bias that dwarfs every logit (a head without one cannot promise it)."""
    head = model.lm_head
    biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    with torch.no_grad():
        biased.weight.copy_(head.weight)
        biased.bias.zero_()
        biased.bias[token_id] = 1e4
    model.lm_head = biased


def test_special_prefix_is_the_bos_a_llama_tokenizer_adds(llama_tokenizer, tokenizer):
    assert special_prefix(llama_tokenizer) == [llama_tokenizer.bos_token_id]
    assert llama_tokenizer("a")["input_ids"][0] == llama_tokenizer.bos_token_id
    assert special_prefix(tokenizer) == []  # GPT-Neo's adds nothing


def test_prompts_hold_text_only_and_count_text_tokens(llama_tokenizer):
    table = tokenize_prompts(pd.DataFrame({"prompt": TEXTS}), llama_tokenizer, 3, 3, seed=0,
                             source="fixture")
    bos = llama_tokenizer.bos_token_id
    for prompt, ids, text in zip(table["prompt"], table["input_ids"], TEXTS):
        assert ids[0] == bos and bos not in ids[1:]
        assert len(ids) == 1 + 3  # the BOS does not count toward the prompt's length
        assert "<s>" not in prompt and text.startswith(prompt.strip())
        assert ids[1:] == llama_tokenizer(prompt, add_special_tokens=False)["input_ids"]


def test_every_eos_of_the_generation_config_ends_a_continuation(make_tiny_llama,
                                                                llama_tokenizer):
    model = make_tiny_llama(seed=1)
    eos, eot = (llama_tokenizer.convert_tokens_to_ids(t) for t in ("</s>", "<|eot|>"))
    assert end_ids(model, llama_tokenizer) == [eos, eot]
    always_next(model, eot)  # generation must stop at the second eos
    queries = [llama_tokenizer(text)["input_ids"] for text in TEXTS]
    responses = generate(model, llama_tokenizer, queries, 8, top_k=0, top_p=1.0, seed=0)
    assert all(r.tolist()[-1] == eot and len(r) < 8 for r in responses)

    prompts = pd.DataFrame({"prompt": TEXTS, "input_ids": queries})
    sampling = EvalParams(batch_size=2, samples_per_prompt=2, max_new_tokens=8, top_k=0,
                          top_p=1.0, bootstrap_resamples=100)
    table = rollout_table(model, llama_tokenizer, prompts, 2, sampling, 2, seed=0)
    assert table["ended_with_eos"].all()
    assert (table["continuation_ids"].map(lambda ids: ids[-1]) == eot).all()
    assert (table["continuation_tokens"] == table["continuation_ids"].map(len) - 1).all()
    assert not table["continuation"].str.contains("eot").any()


def test_likelihood_is_scored_on_the_sampled_ids(make_tiny_llama, llama_tokenizer):
    """Re-tokenising decoded text can give other ids than were sampled; the KL must not."""
    model = make_tiny_llama(seed=2)
    prompt = llama_tokenizer(TEXTS[0])["input_ids"]
    # ids that decode to text whose re-tokenisation differs: single characters of a word
    word = llama_tokenizer(" worthless", add_special_tokens=False)["input_ids"]
    pieces = [llama_tokenizer.convert_tokens_to_ids(c) for c in "Ġworthless"]
    assert pieces != word and llama_tokenizer.decode(pieces) == llama_tokenizer.decode(word)
    nll, tokens = continuation_nll(model, llama_tokenizer.pad_token_id, [prompt, prompt],
                                   [pieces, word], batch_size=2)
    with torch.no_grad():
        log_probs = model(torch.tensor([prompt + pieces])).logits[0].log_softmax(-1)
    manual = -sum(log_probs[len(prompt) + j - 1, t].item() for j, t in enumerate(pieces))
    assert tokens.tolist() == [len(pieces), len(word)]
    assert abs(nll[0] - manual) < 1e-3 and abs(nll[0] - nll[1]) > 1e-3


def test_a_converted_tokenizer_gets_the_models_eos_and_a_pad_that_is_not_bos(
        make_tiny_llama, llama_tokenizer):
    """As transformers converts SmolLM2's GGUF: eos = bos, no pad, a BOS added."""
    model = make_tiny_llama(seed=0, pad_token_id=None)
    model.generation_config.pad_token_id = None
    broken = copy.deepcopy(llama_tokenizer)
    broken.eos_token, broken.pad_token = "<s>", None
    changes = correct_tokenizer(broken, model, add_bos=False)
    assert broken.eos_token == "</s>" and broken.pad_token == "</s>"  # pad = eos, not bos
    assert broken("a")["input_ids"] == broken("a", add_special_tokens=False)["input_ids"]
    assert len(changes) == 3 and any("eos_token '<s>' -> '</s>'" in c for c in changes)
    # an agreeing tokenizer is left alone
    assert correct_tokenizer(copy.deepcopy(llama_tokenizer), make_tiny_llama(seed=0)) == []


def test_end_ids_read_the_generation_config_through_trls_value_head(make_tiny_llama,
                                                                   llama_tokenizer):
    """Llama 3 Instruct's config names one eos, its generation config two: PPO samples through
    TRL's wrapper, which carries the config only."""
    from trl import AutoModelForCausalLMWithValueHead

    model = make_tiny_llama(seed=0)
    eos, eot = llama_tokenizer.convert_tokens_to_ids(["</s>", "<|eot|>"])
    model.config.eos_token_id = eos
    model.generation_config.eos_token_id = [eos, eot]
    wrapped = AutoModelForCausalLMWithValueHead(model)
    assert end_ids(wrapped, llama_tokenizer) == end_ids(model, llama_tokenizer) == [eos, eot]


def test_special_token_strings_in_a_source_text_are_read_as_text(llama_tokenizer):
    table = tokenize_prompts(pd.DataFrame({"prompt": ["the river is </s> and <s> you are a"]}),
                             llama_tokenizer, 8, 8, seed=0, source="fixture")
    specials = set(llama_tokenizer.all_special_ids)
    ids = table["input_ids"][0]
    assert ids[0] == llama_tokenizer.bos_token_id and not specials & set(ids[1:])


def test_a_model_and_tokenizer_without_any_eos_are_refused(make_tiny_llama, llama_tokenizer):
    model = make_tiny_llama(seed=0, eos_token_id=None)
    model.generation_config.eos_token_id = None
    tokenizer = copy.deepcopy(llama_tokenizer)
    tokenizer.eos_token = None
    with pytest.raises(DetoxError, match="names an eos token"):
        correct_tokenizer(tokenizer, model)
