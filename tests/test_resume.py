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
from detox.toxicity import PackagedScorer, toxicity_reading
from detox.train.guard import WINDOW, divergence
from detox.train.log import COLUMNS
from detox.train.params import TrainParams
from detox.train.policy import load_trainable
from detox.train.ppo import run_ppo
from detox.train.resume import LATEST, checkpoint_root, run_key

CPU = torch.device("cpu")
# The packaged scorers' labels (neutral, toxic) read as a softmax classifier's.
READING = toxicity_reading(PackagedScorer.id2label, False, None, None)


@pytest.fixture
def params(committed_params) -> TrainParams:
    params = parse(TrainParams, committed_params)
    return dataclasses.replace(
        params, layers=4,
        ppo=dataclasses.replace(params.ppo, steps=4, batch_size=4, mini_batch_size=2,
                                ppo_epochs=2, learning_rate=1e-3, save_every=2),
        generation=dataclasses.replace(params.generation, max_new_tokens_from=3, max_new_tokens_to=5))


@pytest.fixture
def prompts(tokenizer) -> list[list[int]]:
    texts = ["shut up you", "the river is", "you are a stupid", "in the fifteenth century the",
             "what a pathetic", "the castle", "you clown", "the old bridge"]
    return tokenizer(texts)["input_ids"]  # 8 prompts, batches of 4: an epoch every 2 steps


def run(tiny_neo_dir, params, prompts, folder, scorer=None, log_dir=None):
    policy, reference = load_trainable(str(tiny_neo_dir), params.layers, CPU, params.seed,
                                       params.adapter)
    outcome = run_ppo(policy, reference, load_tokenizer(tiny_neo_dir),
                    scorer or PackagedScorer("profanity-check"), READING, prompts, params, CPU,
                    folder, log_dir=log_dir)
    return policy, outcome


def series(log_dir) -> dict[str, list[tuple[int, float]]]:
    """Every dvclive series in ``log_dir``: name -> [(step, value)]."""
    found = {}
    for path in sorted((log_dir / "plots" / "metrics").glob("*.tsv")):
        lines = path.read_text().splitlines()
        assert lines[0] == f"step\t{path.stem}"  # no timestamp: reruns write the same files
        found[path.stem] = [(int(a), float(b)) for a, b in (line.split("\t") for line in lines[1:])]
    return found


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


def test_checkpoints_reach_back_past_the_collapse_window_and_hold_what_resume_needs(
        tiny_neo_dir, params, prompts, tmp_path):
    long = dataclasses.replace(params, ppo=dataclasses.replace(params.ppo, steps=12))
    policy, outcome = run(tiny_neo_dir, long, prompts, tmp_path)
    # within WINDOW + 1 = 6 steps of the latest (12), and the newest one beyond: step 6
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".lock", LATEST, "step-000006", "step-000008", "step-000010", "step-000012"]
    saved = tmp_path / "step-000012"
    trainable = load_file(saved / "trainable.safetensors")
    assert "v_head.summary.weight" in trainable
    assert not any(".h.0." in name for name in trainable)  # frozen blocks are not saved
    assert torch.equal(trainable["v_head.summary.weight"], policy.v_head.summary.weight)
    state = torch.load(saved / "optimizer.pt", weights_only=True)  # no arbitrary unpickling
    assert state["state"]
    progress = json.loads((saved / "progress.json").read_text())
    assert progress["step"] == 12 and progress["log"] == outcome.log
    assert (progress["epoch"], progress["cursor"]) == (5, 8)  # 8 prompts, 4 per step
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

    first = Checkpoints(tmp_path, Accelerator(cpu=True), reach=1)
    with pytest.raises(DetoxError, match="another process is training this run"):
        Checkpoints(tmp_path, Accelerator(cpu=True), reach=1)
    del first


def test_run_key_changes_with_any_param_the_run_reads_or_input(params, tiny_neo_dir, tmp_path):
    prompts_file = tmp_path / "train.parquet"
    prompts_file.write_bytes(b"prompts v1")
    key = run_key(params.used(), [prompts_file, tiny_neo_dir], 1)
    assert key == run_key(params.used(), [prompts_file, tiny_neo_dir], 1)
    other_lr = dataclasses.replace(params, ppo=dataclasses.replace(params.ppo, learning_rate=2e-3))
    assert run_key(other_lr.used(), [prompts_file, tiny_neo_dir], 1) != key
    # another method's params: the same PPO run, whose checkpoints it resumes
    other_beta = dataclasses.replace(params, dpo=dataclasses.replace(params.dpo, beta=0.5))
    assert run_key(other_beta.used(), [prompts_file, tiny_neo_dir], 1) == key
    assert run_key(params.used(), [prompts_file, tiny_neo_dir], 2) != key  # another run
    prompts_file.write_bytes(b"prompts v2")
    assert run_key(params.used(), [prompts_file, tiny_neo_dir], 1) != key


def test_checkpoints_live_in_the_repository_dvc_names(monkeypatch, tmp_path):
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))  # a queued `dvc exp run` runs in a copy
    assert checkpoint_root() == tmp_path / "data" / "checkpoints"


# --- divergence ------------------------------------------------------------------------------

def healthy_stats(kl: float = 1.0) -> dict:
    return {"objective/kl": kl, "ppo/loss/total": 0.5, "objective/logprobs": np.zeros((4, 3)),
            "ppo/val/vpred": 0.1, "ppo/mean_scores": 1.0, "ppo/std_scores": 0.5}


def log_of(scores: list[float], entropy: float = 10.0, spread: float = 0.5,
           tokens: float = 10.0) -> list[dict]:
    return [{"step": i + 1, "score_mean": r, "score_std": spread, "entropy": entropy,
             "response_tokens": tokens} for i, r in enumerate(scores)]


def diverged(scores: list[float], kl: float = 1.0, batch_size: int = 64) -> str | None:
    found = divergence(healthy_stats(kl), log_of(scores), max_kl_ratio=0.5, max_score_drop=0.5,
                       batch_size=batch_size)
    return None if found is None else found.cause


def test_a_healthy_step_does_not_diverge():
    assert diverged([1.0] * 12) is None
    # a batch of one has no spread: its std is NaN, and that is not divergence
    assert divergence(healthy_stats() | {"ppo/std_scores": math.nan}, log_of([1.0]), 0.5, 0.5,
                      1) is None


@pytest.mark.parametrize("name, value", [("ppo/loss/total", math.nan),
                                         ("objective/logprobs", np.array([[0.0, -math.inf]])),
                                         ("ppo/val/vpred", math.inf)])
def test_nan_or_inf_in_any_stat_is_divergence(name, value):
    found = divergence(healthy_stats() | {name: value}, log_of([1.0]), 0.5, 0.5, 64)
    assert found.cause == f"{name} is not finite" and found.first_bad_step == 1


def test_the_kl_bound_is_a_share_of_the_first_steps_entropy_per_token():
    # entropy 10 nats over 10 tokens at step 1, ratio 0.5: a KL beyond 0.5 nats per token
    assert "exceeds ppo.max_kl_ratio=0.5 times the entropy per token at step 1" in diverged(
        [1.0], kl=5.5)
    assert diverged([1.0], kl=4.5) is None
    assert divergence(healthy_stats(5.5), log_of([1.0], entropy=20.0), 0.5, 0.5, 64) is None
    # the same KL per continuation over continuations twice as long is half as much per token
    longer = log_of([1.0]) + [log_of([1.0], tokens=20.0)[0] | {"step": 2}]
    assert divergence(healthy_stats(5.5), longer, 0.5, 0.5, 64) is None


def test_losing_half_of_what_the_score_gained_is_a_collapse():
    start, learned = [0.0] * WINDOW, [1.0] * WINDOW  # gained 1.0
    assert "the score collapsed" in diverged(start + learned + [0.4] * WINDOW)  # lost 0.6
    assert diverged(start + learned + [0.6] * WINDOW) is None  # lost 0.4
    assert diverged(start + learned) is None
    # all the way back to where it started: the collapse a fixed bound in reward units missed
    assert diverged(start + learned + [0.0] * WINDOW) is not None


def test_a_collapse_distrusts_its_window_and_a_kl_breach_its_own_step():
    scores = [0.0] * WINDOW + [1.0] * WINDOW + [0.4] * WINDOW  # collapsed at step 15
    collapse = divergence(healthy_stats(), log_of(scores), 0.5, 0.5, 64)
    assert collapse.first_bad_step == 15 - WINDOW + 1
    # the weights of step 9 wrote the window's first rollouts: the last trusted are step 9's
    assert collapse.last_good_step == 15 - WINDOW - 1
    breach = divergence(healthy_stats(5.5), log_of([1.0] * 3), 0.5, 0.5, 64)
    assert (breach.first_bad_step, breach.last_good_step) == (3, 1)
    assert divergence(healthy_stats(5.5), log_of([1.0]), 0.5, 0.5, 64).last_good_step == 0


def test_a_drop_within_the_noise_of_a_mean_is_no_collapse():
    # a gain of 0.1 in a score whose per-sample spread is 0.5: then losing 0.08 is noise for a
    # batch of 4 (4 standard errors of a difference of 5-step means: 0.63) but not for 1024
    scores = [0.0] * WINDOW + [0.1] * WINDOW + [0.02] * WINDOW
    assert diverged(scores, batch_size=4) is None
    assert diverged(scores, batch_size=1024) is not None


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


class SignFlip:
    """The offline reward scorer, whose verdict turns over from its ``flip_at``-th call on:
    training that goes well and then is rewarded for the opposite."""

    def __init__(self, flip_at: int) -> None:
        self.scorer, self.flip_at, self.calls = PackagedScorer("profanity-check"), flip_at, 0
        self.id2label = self.scorer.id2label

    def logits(self, texts: list[str]) -> torch.Tensor:
        self.calls += 1
        logits = self.scorer.logits(texts)
        return -logits if self.calls >= self.flip_at else logits


def test_a_late_collapse_rolls_back_to_a_checkpoint_before_it(tiny_neo_dir, params, prompts,
                                                               tmp_path):
    flip_at = 9  # steps 1-8 learn from the real scorer, step 9 on from its opposite
    late = dataclasses.replace(params, reward="neutral_softmax", ppo=dataclasses.replace(
        params.ppo, steps=20, save_every=1, learning_rate=3e-3, batch_size=8,
        mini_batch_size=4))
    healthy, healthy_outcome = run(tiny_neo_dir, dataclasses.replace(
        late, ppo=dataclasses.replace(late.ppo, steps=flip_at - 1)), prompts, tmp_path / "ok")
    assert healthy_outcome.diverged_at is None  # the same run before the flip is fine
    policy, outcome = run(tiny_neo_dir, late, prompts, tmp_path / "flip", SignFlip(flip_at),
                          log_dir=tmp_path / "log")
    assert outcome.cause and outcome.cause.startswith("the score collapsed"), outcome.cause
    assert outcome.diverged_at >= flip_at
    assert 1 <= outcome.model_step <= flip_at - 1
    # back to before the collapsed window (its first step's rollouts came from the weights of
    # the step before), not merely to before the step that noticed it
    assert outcome.model_step <= outcome.diverged_at - WINDOW - 1
    assert outcome.log == healthy_outcome.log[:outcome.model_step]
    kept = load_file(tmp_path / "flip" / f"step-{outcome.model_step:06d}" /
                     "trainable.safetensors")
    for name, tensor in kept.items():
        assert torch.equal(tensor, dict(policy.named_parameters())[name]), name
    # the dvclive series describe the model kept, not the steps thrown away
    assert series(tmp_path / "log")["score_mean"] == [
        (row["step"], pytest.approx(row["score_mean"])) for row in outcome.log]


def test_a_resumed_run_continues_the_same_dvclive_series(tiny_neo_dir, params, prompts,
                                                         tmp_path):
    run(tiny_neo_dir, params, prompts, tmp_path / "whole", log_dir=tmp_path / "whole-log")
    whole = series(tmp_path / "whole-log")
    half = dataclasses.replace(params, ppo=dataclasses.replace(params.ppo, steps=3))
    # killed after step 3, whose checkpoint was never written: the resumed run starts at 3
    run(tiny_neo_dir, half, prompts, tmp_path / "split", log_dir=tmp_path / "split-log")
    assert series(tmp_path / "split-log")["kl"][-1][0] == 3
    run(tiny_neo_dir, params, prompts, tmp_path / "split", log_dir=tmp_path / "split-log")
    resumed = series(tmp_path / "split-log")
    assert set(whole) == set(COLUMNS) - {"step"} and len(whole) >= 8
    assert resumed == whole
    assert [step for step, _ in resumed["score_mean"]] == [1, 2, 3, 4]


def test_an_uncommitted_repository_gets_one_clear_line_about_the_training_log(tmp_path,
                                                                              monkeypatch):
    import subprocess

    from detox import DetoxError
    from detox.train.log import LiveSeries

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DetoxError, match="needs a git repository with a commit"):
        LiveSeries(tmp_path / "log", [])


def test_a_run_that_kept_no_step_still_leaves_its_log(tmp_path):
    from detox.train.log import LiveSeries

    LiveSeries(tmp_path / "log", [])  # diverged at step 1: DVC still expects the outputs
    assert (tmp_path / "log" / "plots" / "metrics").is_dir()
    assert json.loads((tmp_path / "log" / "metrics.json").read_text()) == {}
