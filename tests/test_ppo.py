"""The PPO loop on a tiny policy: what trains, what stays frozen, and TRL's padded forward pass."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from trl import PPOTrainer

from detox.params import parse_params
from detox.policy import load_tokenizer, load_trainable
from detox.ppo import ppo_config, train
from detox.scorers import PackagedScorer

CPU = torch.device("cpu")


@pytest.fixture
def params(committed_params):
    params = parse_params(committed_params)
    return dataclasses.replace(
        params, layers=4,
        ppo=dataclasses.replace(params.ppo, steps=2, batch_size=4, mini_batch_size=2, ppo_epochs=1,
                                learning_rate=1e-3),
        generation=dataclasses.replace(params.generation, min_new_tokens=3, max_new_tokens=5))


@pytest.fixture
def prompts(tokenizer) -> list[list[int]]:
    texts = ["shut up you", "the river is", "you are a stupid", "in the fifteenth century the",
             "what a pathetic", "the castle"]
    return tokenizer(texts)["input_ids"]


def test_train_updates_only_the_top_blocks_and_keeps_the_reference(tiny_neo_dir, params, prompts):
    policy, reference = load_trainable(str(tiny_neo_dir), params.layers, CPU, params.seed)
    before = {name: p.detach().clone() for name, p in policy.named_parameters()}
    reference_before = {name: p.detach().clone() for name, p in reference.named_parameters()}
    log = train(policy, reference, load_tokenizer(tiny_neo_dir), PackagedScorer("profanity-check"),
                0, prompts, params, CPU)

    assert [row["step"] for row in log] == [1, 2]
    assert all(0 <= row["toxicity_mean"] <= 1 and row["response_tokens"] >= 1 for row in log)
    changed = {name for name, p in policy.named_parameters() if not torch.equal(p, before[name])}
    assert changed and all(".h.8." in n or ".h.9." in n or ".h.10." in n or ".h.11." in n
                           or "ln_f" in n or "v_head" in n for n in changed)
    for name, p in reference.named_parameters():
        torch.testing.assert_close(p, reference_before[name], rtol=0, atol=0)


def test_ppo_forward_pass_scores_a_padded_row_like_the_row_alone(tiny_neo_dir, params, prompts):
    """Padding a short query + response must not shift its positions (TRL gives no position ids)."""
    policy, reference = load_trainable(str(tiny_neo_dir), params.layers, CPU, params.seed)
    tokenizer = load_tokenizer(tiny_neo_dir)
    trainer = PPOTrainer(ppo_config(params, CPU), policy, reference, tokenizer)
    queries = [torch.tensor(prompts[3]), torch.tensor(prompts[0])]  # long and short
    responses = [torch.tensor(prompts[4]), torch.tensor(prompts[5])]

    def logprobs(q, r):
        inputs = trainer.prepare_model_inputs(q, r)
        all_logprobs, _, _, masks = trainer.batched_forward_pass(policy, q, r, inputs)
        return all_logprobs, masks

    batch_logprobs, batch_masks = logprobs(queries, responses)
    alone_logprobs, alone_masks = logprobs(queries[1:], responses[1:])
    short = batch_logprobs[1][batch_masks[1].bool()]
    torch.testing.assert_close(short, alone_logprobs[0][alone_masks[0].bool()], rtol=1e-4, atol=1e-5)
