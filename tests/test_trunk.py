"""The frozen trunk computed once per PPO step: a step with it gives the weights and stats of a
step without it, on every family (GPT-Neo, GPT-2, Llama) and with LoRA, while the bottom blocks
run once per row instead of once per pass; afterwards the blocks are as they were."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
import torch
from trl import PPOTrainer

from detox.models import load_tokenizer
from detox.params import parse
from detox.train.params import TrainParams
from detox.train.policy import causal_lm, load_trainable, transformer_blocks
from detox.train.ppo import ppo_config
from detox.train import trunk
from detox.train.trunk import frozen_depth, reused_frozen_trunk

CPU = torch.device("cpu")
LAYERS = 4  # of 12: a trunk of 8 blocks
BATCH, EPOCHS = 4, 2


@pytest.fixture(scope="module")
def params(committed_params) -> TrainParams:
    params = parse(TrainParams, committed_params)
    return dataclasses.replace(params, layers=LAYERS, ppo=dataclasses.replace(
        params.ppo, batch_size=BATCH, mini_batch_size=2, ppo_epochs=EPOCHS, learning_rate=1e-3))


def ppo_step(path, params, adapter, reuse: bool):
    """One ``PPOTrainer.step`` on fixed queries and responses of unequal lengths (so rows are
    padded); the trainable tensors after it, its stats, the trunk's use (``None`` without) and
    whether every block's forward is its own again (transformers itself may leave a bound
    method of the class in the instance)."""
    policy, reference = load_trainable(path, LAYERS, CPU, seed=0, adapter=adapter)
    blocks = [block for model in (policy, reference) if model is not None
              for block in transformer_blocks(causal_lm(model))[1]]
    trainer = PPOTrainer(ppo_config(params, CPU), policy, reference, load_tokenizer(path))
    ids = torch.Generator().manual_seed(1)
    vocab = policy.pretrained_model.config.vocab_size
    queries = [torch.randint(3, vocab, (n,), generator=ids) for n in (3, 5, 4, 6)]
    responses = [torch.randint(3, vocab, (n,), generator=ids) for n in (4, 2, 5, 3)]
    scores = [torch.tensor(s) for s in (1.0, -0.5, 0.3, -1.2)]
    with (reused_frozen_trunk(policy, reference) if reuse else contextlib.nullcontext()) as use:
        stats = trainer.step(queries, responses, scores)
    trained = {name: p.detach().clone() for name, p in policy.named_parameters() if p.requires_grad}
    restored = all(getattr(block.forward, "__module__", None) != trunk.__name__
                   for block in blocks)
    return trained, stats, use, restored


@pytest.mark.parametrize("family,with_lora", [("gpt_neo", False), ("gpt2", False),
                                              ("llama", False), ("llama", True)])
def test_a_step_reusing_the_trunk_equals_a_step_without(family_dirs, params, with_lora, family,
                                                        request):
    adapter = request.getfixturevalue("lora") if with_lora else None
    plain, plain_stats, _, _ = ppo_step(family_dirs[family], params, adapter, reuse=False)
    reused, stats, use, restored = ppo_step(family_dirs[family], params, adapter, reuse=True)
    assert plain.keys() == reused.keys()
    for name in plain:
        torch.testing.assert_close(reused[name], plain[name], rtol=1e-5, atol=1e-6, msg=name)
    for key in ("objective/kl", "ppo/loss/total", "ppo/policy/approxkl", "ppo/val/vpred"):
        assert stats[key] == pytest.approx(plain_stats[key], rel=1e-4, abs=1e-6), key
    # the policy's pass computes each row; the reference's and every epoch's reuse them
    assert use.computed == BATCH and use.reused == BATCH * (1 + EPOCHS)
    assert restored


def test_the_trunk_ends_at_the_lowest_trained_block(family_dirs, lora):
    for adapter in (None, lora):
        policy, reference = load_trainable(family_dirs["llama"], LAYERS, CPU, seed=0,
                                           adapter=adapter)
        _, blocks = transformer_blocks(causal_lm(policy))
        assert frozen_depth(blocks) == 12 - LAYERS
        if reference is not None:  # all frozen, but only its bottom blocks are the policy's
            _, its_blocks = transformer_blocks(causal_lm(reference))
            assert frozen_depth(its_blocks) == 12
