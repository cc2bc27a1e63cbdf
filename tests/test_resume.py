"""Checkpoints and resume of the PPO loop, and the divergence guard, on a tiny policy."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from detox.models import load_tokenizer
from detox.params import parse
from detox.toxicity import PackagedScorer
from detox.train.guard import WINDOW, divergence
from detox.train.params import TrainParams
from detox.train.policy import load_trainable
from detox.train.ppo import train
from detox.train.resume import LATEST, checkpoint_root, run_key

CPU = torch.device("cpu")


@pytest.fixture
def params(committed_params) -> TrainParams:
    params = parse(TrainParams, committed_params)
    return dataclasses.replace(
        params, layers=4,
        ppo=dataclasses.replace(params.ppo, steps=4, batch_size=4, mini_batch_size=2,
                                ppo_epochs=2, learning_rate=1e-3, save_every=2),
        generation=dataclasses.replace(params.generation, min_new_tokens=3, max_new_tokens=5))


@pytest.fixture
def prompts(tokenizer) -> list[list[int]]:
    texts = ["shut up you", "the river is", "you are a stupid", "in the fifteenth century the",
             "what a pathetic", "the castle", "you clown", "the old bridge"]
    return tokenizer(texts)["input_ids"]  # 8 prompts, batches of 4: an epoch every 2 steps


def run(tiny_neo_dir, params, prompts, folder):
    policy, reference = load_trainable(str(tiny_neo_dir), params.layers, CPU, params.seed,
                                       params.adapter)
    outcome = train(policy, reference, load_tokenizer(tiny_neo_dir),
                    PackagedScorer("profanity-check"), 0, prompts, params, CPU, folder)
    return policy, outcome


def weights(policy) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in policy.named_parameters()}


@pytest.mark.parametrize("adapted", [False, True], ids=["blocks", "lora"])
def test_a_resumed_run_ends_like_an_uninterrupted_one(tiny_neo_dir, params, prompts, tmp_path,
                                                      lora, adapted):
    if adapted:  # the checkpoint then holds the LoRA weights and the value head only
        params = dataclasses.replace(params, adapter=lora)
    whole, whole_outcome = run(tiny_neo_dir, params, prompts, tmp_path / "whole")
    # the same run stopped after step 2 (as if killed right after that checkpoint) ...
    half = dataclasses.replace(params, ppo=dataclasses.replace(params.ppo, steps=2))
    run(tiny_neo_dir, half, prompts, tmp_path / "split")
    assert (tmp_path / "split" / LATEST).read_text() == "step-000002"
    # ... and run again from a freshly loaded base policy: it resumes at step 3
    resumed, resumed_outcome = run(tiny_neo_dir, params, prompts, tmp_path / "split")
    assert resumed_outcome.log == whole_outcome.log  # every step's reward, toxicity, KL
    assert [row["step"] for row in resumed_outcome.log] == [1, 2, 3, 4]
    for name, tensor in weights(whole).items():
        assert torch.equal(tensor, dict(resumed.named_parameters())[name]), name
    if adapted:
        saved = load_file(tmp_path / "whole" / "step-000004" / "trainable.safetensors")
        assert saved and all("lora_" in name or name.startswith("v_head.") for name in saved)


def test_the_last_two_checkpoints_are_kept_and_hold_what_resume_needs(
        tiny_neo_dir, params, prompts, tmp_path):
    policy, outcome = run(tiny_neo_dir, params, prompts, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", LATEST, "step-000002",
                                                          "step-000004"]
    saved = tmp_path / "step-000004"
    trainable = load_file(saved / "trainable.safetensors")
    assert "v_head.summary.weight" in trainable
    assert not any(".h.0." in name for name in trainable)  # frozen blocks are not saved
    assert torch.equal(trainable["v_head.summary.weight"], policy.v_head.summary.weight)
    state = torch.load(saved / "optimizer.pt", weights_only=True)  # no arbitrary unpickling
    assert state["state"]
    progress = json.loads((saved / "progress.json").read_text())
    assert progress["step"] == 4 and progress["log"] == outcome.log
    assert (progress["epoch"], progress["cursor"]) == (1, 8)  # 8 prompts, 4 per step
    own = json.loads((saved / "rank-0.json").read_text())
    assert set(own) == {"rng", "python", "numpy"}


def test_a_checkpoint_half_written_is_ignored(tiny_neo_dir, params, prompts, tmp_path):
    half = dataclasses.replace(params, ppo=dataclasses.replace(params.ppo, steps=2))
    run(tiny_neo_dir, half, prompts, tmp_path)
    # a kill while saving step 4 leaves its partial folder behind; LATEST still names step 2
    partial = tmp_path / ".partial-step-000004"
    partial.mkdir()
    (partial / "trainable.safetensors").write_bytes(b"truncated")
    _, outcome = run(tiny_neo_dir, params, prompts, tmp_path)
    assert [row["step"] for row in outcome.log] == [1, 2, 3, 4]
    assert (tmp_path / LATEST).read_text() == "step-000004"
    assert not partial.exists()  # cleaned up by the next save


def test_one_writer_per_run(tmp_path):
    from accelerate import Accelerator

    from detox import DetoxError
    from detox.train.resume import Checkpoints

    first = Checkpoints(tmp_path, Accelerator(cpu=True))
    with pytest.raises(DetoxError, match="another process is training this run"):
        Checkpoints(tmp_path, Accelerator(cpu=True))
    del first


def test_run_key_changes_with_any_param_or_input(params, tiny_neo_dir, tmp_path):
    prompts_file = tmp_path / "train.parquet"
    prompts_file.write_bytes(b"prompts v1")
    key = run_key(params, [prompts_file, tiny_neo_dir], 1)
    assert key == run_key(params, [prompts_file, tiny_neo_dir], 1)
    other_lr = dataclasses.replace(params, ppo=dataclasses.replace(params.ppo, learning_rate=2e-3))
    assert run_key(other_lr, [prompts_file, tiny_neo_dir], 1) != key
    assert run_key(params, [prompts_file, tiny_neo_dir], 2) != key  # two processes: another run
    prompts_file.write_bytes(b"prompts v2")
    assert run_key(params, [prompts_file, tiny_neo_dir], 1) != key


def test_checkpoints_live_in_the_repository_dvc_names(monkeypatch, tmp_path):
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))  # a queued `dvc exp run` runs in a copy
    assert checkpoint_root() == tmp_path / "data" / "checkpoints"


# --- divergence ------------------------------------------------------------------------------

def healthy_stats(kl: float = 1.0, reward: float = 1.0) -> dict:
    return {"objective/kl": kl, "ppo/loss/total": 0.5, "objective/logprobs": np.zeros((4, 3)),
            "ppo/val/vpred": 0.1, "ppo/mean_scores": reward, "ppo/std_scores": 0.5}


def log_of(rewards: list[float]) -> list[dict]:
    return [{"step": i + 1, "reward_mean": r, "reward_std": 0.5} for i, r in enumerate(rewards)]


def test_a_healthy_step_does_not_diverge():
    assert divergence(healthy_stats(), log_of([1.0] * 12), max_kl=10, max_reward_drop=3) is None
    # a batch of one has no spread: its std is NaN, and that is not divergence
    assert divergence(healthy_stats() | {"ppo/std_scores": math.nan}, log_of([1.0]), 10, 3) \
        is None


@pytest.mark.parametrize("name, value", [("ppo/loss/total", math.nan),
                                         ("objective/logprobs", np.array([[0.0, -math.inf]])),
                                         ("ppo/val/vpred", math.inf)])
def test_nan_or_inf_in_any_stat_is_divergence(name, value):
    cause = divergence(healthy_stats() | {name: value}, log_of([1.0]), 10, 3)
    assert cause == f"{name} is not finite"


def test_kl_beyond_the_bound_is_divergence():
    assert "exceeds ppo.max_kl=10" in divergence(healthy_stats(kl=10.5), log_of([1.0]), 10, 3)
    assert divergence(healthy_stats(kl=9.5), log_of([1.0]), 10, 3) is None


def test_reward_collapse_is_measured_in_the_first_steps_spread():
    start = [1.0] * WINDOW
    # spread 0.5, bound 3: a drop of more than 1.5 collapses, a drop of 1.4 does not
    assert divergence(healthy_stats(), log_of(start + [-0.6] * WINDOW), 10, 3) is not None
    assert divergence(healthy_stats(), log_of(start + [-0.4] * WINDOW), 10, 3) is None
    assert divergence(healthy_stats(), log_of(start + [-5.0] * (WINDOW - 1)), 10, 3) is None


def test_a_fall_from_a_plateau_is_a_collapse_too():
    rising = [0.0] * WINDOW + [3.0] * WINDOW  # learned, then lost it all
    assert divergence(healthy_stats(), log_of(rising + [0.0] * WINDOW), 10, 3) is not None
    assert divergence(healthy_stats(), log_of(rising + [2.0] * WINDOW), 10, 3) is None


def test_a_diverging_run_keeps_its_last_good_checkpoint(tiny_neo_dir, params, prompts, tmp_path):
    absurd = dataclasses.replace(params, ppo=dataclasses.replace(params.ppo, learning_rate=1e4))
    base, _ = load_trainable(str(tiny_neo_dir), params.layers, CPU, params.seed)
    policy, outcome = run(tiny_neo_dir, absurd, prompts, tmp_path)
    assert outcome.diverged_at is not None and outcome.cause
    # the weights of step j wrote step j + 1's rollouts: only those a later step checked count
    assert outcome.model_step <= max(outcome.diverged_at - 2, 0)
    assert outcome.model_step % params.ppo.save_every == 0
    assert len(outcome.log) == outcome.model_step  # the metrics describe the model kept
    if outcome.model_step == 0:  # kept the state before any update: the base policy
        for name, tensor in weights(base).items():
            assert torch.equal(tensor, dict(policy.named_parameters())[name]), name
    assert all(torch.isfinite(p).all() for p in policy.parameters())
