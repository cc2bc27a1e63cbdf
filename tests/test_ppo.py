"""The PPO loop on a tiny policy: what trains, what stays frozen, and TRL's padded forward pass."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from trl import PPOTrainer

from detox.params import parse
from detox.train.params import PPOParams, TrainParams
from detox.models import load_tokenizer
from detox.train.policy import load_trainable
from detox.train.log import COLUMNS, TRL_STATS, log_row
from detox.train.ppo import Outcome, ppo_config, run_ppo, train_summary
from detox.toxicity import PackagedScorer, toxicity_reading

CPU = torch.device("cpu")
# The packaged scorers' labels (neutral, toxic) read as a softmax classifier's.
READING = toxicity_reading(PackagedScorer.id2label, False, None, None)


@pytest.fixture
def params(committed_params):
    params = parse(TrainParams, committed_params)
    return dataclasses.replace(
        params, layers=4,
        ppo=dataclasses.replace(params.ppo, steps=2, batch_size=4, mini_batch_size=2, ppo_epochs=1,
                                learning_rate=1e-3),
        generation=dataclasses.replace(params.generation, max_new_tokens_from=3, max_new_tokens_to=5))


@pytest.fixture
def prompts(tokenizer) -> list[list[int]]:
    texts = ["shut up you", "the river is", "you are a stupid", "in the fifteenth century the",
             "what a pathetic", "the castle"]
    return tokenizer(texts)["input_ids"]


def test_train_updates_only_the_top_blocks_and_keeps_the_reference(tiny_neo_dir, params, prompts,
                                                                     tmp_path):
    policy, reference = load_trainable(str(tiny_neo_dir), params.layers, CPU, params.seed)
    before = {name: p.detach().clone() for name, p in policy.named_parameters()}
    reference_before = {name: p.detach().clone() for name, p in reference.named_parameters()}
    outcome = run_ppo(policy, reference, load_tokenizer(tiny_neo_dir),
                    PackagedScorer("profanity-check"), READING, prompts, params, CPU, tmp_path)
    log = outcome.log

    assert outcome.diverged_at is None and outcome.cause is None
    assert [row["step"] for row in log] == [1, 2]
    assert all(0 <= row["toxicity_mean"] <= 1 and row["response_tokens"] >= 1 for row in log)
    changed = {name for name, p in policy.named_parameters() if not torch.equal(p, before[name])}
    assert changed and all(".h.8." in n or ".h.9." in n or ".h.10." in n or ".h.11." in n
                           or "ln_f" in n or "v_head" in n for n in changed)
    for name, p in reference.named_parameters():
        torch.testing.assert_close(p, reference_before[name], rtol=0, atol=0)


def test_lora_ppo_trains_only_the_adapter_and_the_value_head(tiny_neo_dir, tiny_neo, params,
                                                             prompts, lora, tmp_path):
    params = dataclasses.replace(params, adapter=lora)
    policy, reference = load_trainable(str(tiny_neo_dir), params.layers, CPU, params.seed, lora)
    before = {name: p.detach().clone() for name, p in policy.named_parameters()}
    outcome = run_ppo(policy, reference, load_tokenizer(tiny_neo_dir),
                    PackagedScorer("profanity-check"), READING, prompts, params, CPU, tmp_path)
    assert outcome.diverged_at is None and len(outcome.log) == 2
    changed = {name for name, p in policy.named_parameters() if not torch.equal(p, before[name])}
    assert any("lora_B" in name for name in changed) and any("v_head" in name for name in changed)
    assert all("lora_" in name or name.startswith("v_head.") for name in changed)
    ids = torch.tensor([prompts[0]])
    with torch.no_grad():
        with policy.pretrained_model.disable_adapter():  # the reference: still the base model
            torch.testing.assert_close(policy.pretrained_model(ids).logits, tiny_neo(ids).logits,
                                       rtol=0, atol=0)
        assert not torch.equal(policy.pretrained_model(ids).logits, tiny_neo(ids).logits)


@pytest.mark.parametrize("adapted", [False, True])
def test_gradient_checkpointing_recomputes_the_blocks_and_changes_no_result(
        tiny_neo_dir, params, prompts, lora, tmp_path, adapted):
    """TRL's loss forward runs in eval mode, where transformers would not checkpoint: the
    blocks must still be recomputed in backward, with the same updates as without."""
    results = {}
    for checkpointing in (False, True):
        these = dataclasses.replace(
            params, adapter=lora if adapted else params.adapter,
            ppo=dataclasses.replace(params.ppo, gradient_checkpointing=checkpointing))
        policy, reference = load_trainable(str(tiny_neo_dir), these.layers, CPU, these.seed,
                                           these.adapter)
        calls = []  # the top block's forward runs, each with whether autograd recorded it
        top = policy.pretrained_model.get_submodule(
            "base_model.model.transformer.h.11" if adapted else "transformer.h.11")
        forward = top.forward  # (a forward hook would not see checkpoint's recomputation)

        def counted(*args, forward=forward, calls=calls, **kwargs):
            calls.append(torch.is_grad_enabled())
            return forward(*args, **kwargs)

        top.forward = counted
        outcome = run_ppo(policy, reference, load_tokenizer(tiny_neo_dir),
                        PackagedScorer("profanity-check"), READING, prompts, these, CPU,
                        tmp_path / str(checkpointing))
        weights = {n: p.detach().clone() for n, p in policy.named_parameters()}
        results[checkpointing] = outcome.log, weights, calls
    (log, weights, calls), (log_gc, weights_gc, calls_gc) = results[False], results[True]
    # equal up to float rounding: backward sums the same gradients in another order
    assert log_gc == [pytest.approx(row, rel=1e-4, abs=1e-6) for row in log]
    for name, tensor in weights.items():
        torch.testing.assert_close(weights_gc[name], tensor, rtol=1e-4, atol=1e-6, msg=name)
    # the same forward passes, plus one recomputation per mini-batch forward that had grads
    assert calls_gc.count(False) == calls.count(False)
    assert calls_gc.count(True) == 2 * calls.count(True) > 0


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


# --- the summary of the log ------------------------------------------------------------------

def make_log(scores: list[float], toxicities: list[float], kls: list[float]) -> Outcome:
    trl = {stat: 0.0 for stat in TRL_STATS.values()} | {"objective/kl_coef": 0.2}
    return Outcome([log_row(i + 1, trl | {"ppo/mean_scores": score, "objective/kl": kl},
                            samples=8, toxicity_mean=toxic, response_tokens=12.0,
                            max_new_tokens=16)
                    for i, (score, toxic, kl) in enumerate(zip(scores, toxicities, kls))])


def test_a_log_row_names_trl_stats_and_penalises_the_score_by_the_kl():
    trl = {stat: float(i) for i, stat in enumerate(TRL_STATS.values())}
    trl |= {"ppo/mean_scores": 1.5, "objective/kl": 2.0, "objective/kl_coef": 0.25}
    row = log_row(3, trl, samples=64, toxicity_mean=0.1, response_tokens=9.5, max_new_tokens=12)
    assert list(row) == list(COLUMNS)
    assert row["score_mean"] == 1.5 and row["kl"] == 2.0 and row["kl_coef"] == 0.25
    assert row["reward_mean"] == pytest.approx(1.5 - 0.25 * 2.0)  # what PPO maximised
    assert row["entropy"] == trl["objective/entropy"]
    assert row["clipfrac_value"] == trl["ppo/val/clipfrac"]
    assert row["samples"] == 64 and isinstance(row["samples"], int)


PPO = PPOParams(steps=10, batch_size=8, mini_batch_size=4, ppo_epochs=2, learning_rate=1e-4,
                init_kl_coef=0.2, adaptive_kl=True, target_kl=6.0, kl_horizon=10000,
                save_every=5, max_kl_ratio=1.0, max_score_drop=0.75,
                gradient_checkpointing=False)
COUNTS = {"trainable_params": 1, "total_params": 2, "trainable_fraction": 0.5}


def test_train_summary_start_and_end_windows():
    scores = [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0]
    toxicities = [0.9, 0.8, 0.7, 0.5, 0.3, 0.2, 0.1]
    kls = [0.0, 0.1, 0.3, 0.2, 0.5, 0.8, 1.25]
    parameters = {"trainable_params": 100, "total_params": 400, "trainable_fraction": 0.25}
    summary = train_summary(make_log(scores, toxicities, kls), parameters, PPO, window=3)
    assert (summary.trainable_params, summary.total_params, summary.trainable_fraction) == (
        100, 400, 0.25)
    assert summary.policy_samples == summary.scorer_calls == 56
    assert summary.gradient_steps == 7 * PPO.ppo_epochs * PPO.batch_size // PPO.mini_batch_size
    assert not summary.diverged and summary.diverged_at_step is None
    assert summary.details == {
        "steps": 7,
        "score_mean_start": pytest.approx((-1.0 - 0.5 + 0.0) / 3, abs=1e-6),
        "score_mean_end": pytest.approx((1.0 + 1.5 + 2.0) / 3, abs=1e-6),
        "reward_mean_start": pytest.approx((-1.5 - 0.2 * (0.0 + 0.1 + 0.3)) / 3, abs=1e-6),
        "reward_mean_end": pytest.approx((4.5 - 0.2 * (0.5 + 0.8 + 1.25)) / 3, abs=1e-6),
        "toxicity_mean_start": pytest.approx((0.9 + 0.8 + 0.7) / 3, abs=1e-6),
        "toxicity_mean_end": pytest.approx((0.3 + 0.2 + 0.1) / 3, abs=1e-6),
        "kl_start": pytest.approx((0.0 + 0.1 + 0.3) / 3, abs=1e-6),
        "kl_end": pytest.approx((0.5 + 0.8 + 1.25) / 3, abs=1e-6),
        "kl_coef_start": pytest.approx(0.2, abs=1e-6), "kl_coef_end": pytest.approx(0.2, abs=1e-6),
    }


def test_train_summary_default_window_is_five_steps():
    scores = [float(i) for i in range(12)]  # 0..11
    summary = train_summary(make_log(scores, [0.5] * 12, [0.0] * 12), COUNTS, PPO).details
    assert summary["score_mean_start"] == pytest.approx(2.0)   # mean of 0..4
    assert summary["score_mean_end"] == pytest.approx(9.0)     # mean of 7..11
    assert summary["steps"] == 12


def test_train_summary_log_shorter_than_window():
    summary = train_summary(make_log([1.0, 2.0], [0.4, 0.2], [0.1, 0.3]), COUNTS, PPO,
                            window=5).details
    assert summary["score_mean_start"] == summary["score_mean_end"] == pytest.approx(1.5)
    assert summary["toxicity_mean_start"] == pytest.approx(0.3)
    assert summary["kl_end"] == pytest.approx(0.2)


def test_train_summary_of_a_run_that_diverged_at_its_first_step():
    outcome = Outcome([], diverged_at=1, cause="ppo/loss/total is not finite", model_step=0)
    summary = train_summary(outcome, COUNTS, PPO)
    details = summary.details
    assert details["steps"] == 0 and details["score_mean_start"] is None  # JSON null, not NaN
    assert summary.diverged is True and summary.diverged_at_step == 1
    assert summary.divergence == "ppo/loss/total is not finite" and summary.model_step == 0
    assert summary.policy_samples == summary.gradient_steps == 0


# --- the KL controller -----------------------------------------------------------------------

def test_every_ppo_param_reaches_trl_and_its_kl_controller(tiny_neo_dir, params, tokenizer):
    from trl.trainer.utils import AdaptiveKLController, FixedKLController

    ppo = dataclasses.replace(params.ppo, init_kl_coef=0.3, target_kl=2.5, kl_horizon=700,
                              learning_rate=2e-4, ppo_epochs=3)
    config = ppo_config(dataclasses.replace(params, ppo=ppo), CPU)
    assert (config.learning_rate, config.batch_size, config.mini_batch_size, config.ppo_epochs,
            config.seed) == (2e-4, ppo.batch_size, ppo.mini_batch_size, 3, params.seed)
    policy, reference = load_trainable(str(tiny_neo_dir), params.layers, CPU, params.seed)
    controller = PPOTrainer(config, policy, reference, tokenizer).kl_ctl
    assert isinstance(controller, AdaptiveKLController)
    assert (controller.value, controller.target, controller.horizon) == (0.3, 2.5, 700)
    fixed = ppo_config(dataclasses.replace(params, ppo=dataclasses.replace(ppo, adaptive_kl=False)),
                       CPU)
    controller = PPOTrainer(fixed, policy, reference, tokenizer).kl_ctl
    assert isinstance(controller, FixedKLController) and controller.value == 0.3


@pytest.mark.parametrize("target_kl, rising", [(1e-4, True), (1e4, False)])
def test_beta_moves_towards_the_target_at_the_pace_the_horizon_sets(tiny_neo_dir, params, prompts,
                                                                    tmp_path, target_kl, rising):
    horizon = 20  # at most a factor 1 +- 0.2 * 4 / 20 = 1.04 per step
    ppo = dataclasses.replace(params.ppo, steps=4, adaptive_kl=True, target_kl=target_kl,
                              kl_horizon=horizon)
    policy, reference = load_trainable(str(tiny_neo_dir), params.layers, CPU, params.seed)
    outcome = run_ppo(policy, reference, load_tokenizer(tiny_neo_dir),
                    PackagedScorer("profanity-check"), READING, prompts,
                    dataclasses.replace(params, ppo=ppo), CPU, tmp_path)
    betas = [row["kl_coef"] for row in outcome.log]
    assert betas[0] == params.ppo.init_kl_coef
    # step 1's KL is 0 (the policy is the reference): below any target, beta falls at first
    assert betas[1] == pytest.approx(betas[0] * (1 - 0.2 * ppo.batch_size / horizon))
    factor = 1 + (0.2 if rising else -0.2) * ppo.batch_size / horizon  # far from target: clipped
    for before, after, row in zip(betas[1:], betas[2:], outcome.log[1:]):
        assert row["kl"] > 0
        assert after == pytest.approx(before * factor)
