"""Online DPO's step: the scorer as a pairwise judge, and the loss over the pairs it decided."""

from __future__ import annotations

import json
import sys

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from detox.toxicity import PackagedScorer, toxicity_reading
from detox.train.online_dpo import TIE, ToxicityJudge, pair_loss
from project import copy_project, run, set_params


def test_the_judge_prefers_the_less_toxic_continuation_and_calls_equal_ones_a_tie():
    scorer = PackagedScorer("profanity-check")
    judge = ToxicityJudge(scorer, toxicity_reading(scorer.id2label, scorer.multi_label,
                                                   None, None))
    ranks = judge.judge(["", "", ""], [("you stupid idiot", "what a lovely day"),
                                       ("what a lovely day", "you stupid idiot"),
                                       ("the same words", "the same words")])
    assert ranks == [1, 0, TIE]
    first, second = judge.last_toxicity
    assert first[0] > second[0] and first[1] < second[1] and first[2] == second[2]


def test_the_loss_is_dpo_s_over_the_decided_pairs_and_a_tie_has_no_gradient():
    # pairs (0, 3), (1, 4), (2, 5): the first wins, the second wins, a tie
    logprobs = torch.tensor([-3.0, -5.0, -4.0, -6.0, -2.0, -1.0], requires_grad=True)
    reference = torch.tensor([-4.0, -4.0, -4.0, -4.0, -4.0, -4.0])
    ranks = torch.tensor([0, 1, TIE])
    toxicity = torch.tensor([0.1, 0.9, 0.5, 0.8, 0.2, 0.5])
    beta = 0.5
    loss, stats = pair_loss(logprobs, reference, ranks, beta, toxicity)
    ratio = logprobs.detach() - reference
    by_hand = -(F.logsigmoid(beta * (ratio[0] - ratio[3]))
                + F.logsigmoid(beta * (ratio[4] - ratio[1]))) / 2
    assert torch.isclose(loss, by_hand)
    loss.backward()
    assert logprobs.grad[2] == logprobs.grad[5] == 0  # the tie
    assert logprobs.grad[0] < 0 < logprobs.grad[3]  # the chosen pulled up, the rejected down
    assert abs(stats["ties"] - 1 / 3) < 1e-6
    assert abs(stats["toxicity_chosen"] - (0.1 + 0.2) / 2) < 1e-6
    assert abs(stats["toxicity_rejected"] - (0.8 + 0.9) / 2) < 1e-6
    assert stats["rewards_accuracies"] == 1.0  # both decided pairs favour the chosen already


def test_a_step_of_ties_only_has_no_gradient_and_no_nan():
    logprobs = torch.tensor([-3.0, -5.0], requires_grad=True)
    loss, stats = pair_loss(logprobs, torch.zeros(2), torch.tensor([TIE]), 0.1,
                            torch.tensor([0.5, 0.5]))
    loss.backward()
    assert loss.item() == 0 and torch.equal(logprobs.grad, torch.zeros(2))
    assert stats["ties"] == 1.0 and stats["toxicity_chosen"] != stats["toxicity_chosen"]  # NaN


@pytest.mark.slow
def test_two_processes_each_draw_their_pairs_and_save_one_model(tmp_path):
    """torchrun with two CPU processes (gloo): each process samples its own batch of prompts
    at every step, the counts are summed, and one loadable causal LM is saved."""
    repo = copy_project(tmp_path)
    steps, batch = 3, 4
    set_params(repo, method="online_dpo", **{"online_dpo.samples": 2 * steps * batch,
                                             "online_dpo.batch_size": batch})
    run(repo, "dvc", "repro", "prepare", "download_classifier@scorer", "method_inputs")
    result = run(repo, sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                 "stages/train.py")
    assert "trained (online_dpo)" in result.stdout
    summary = json.loads((repo / "metrics/train.json").read_text())
    assert summary["gradient_steps"] == steps
    assert summary["pairs"] == 2 * steps * batch  # both processes' pairs
    assert summary["policy_samples"] == 2 * summary["pairs"]
    model = AutoModelForCausalLM.from_pretrained(repo / "data/models/trained")
    assert not [name for name, _ in model.named_parameters() if "v_head" in name]
