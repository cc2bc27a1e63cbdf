"""The model-size benchmark (detox.bench.scale) runs, here on CPU with a tiny shape, and its
memory estimate counts the parameters the loaded policy and reference really hold."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import GPTNeoForCausalLM

from detox.bench.scale import estimate, main, policy_config
from detox.train.policy import count_parameters, load_trainable
from project import ROOT

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "c_fc", "c_proj"]


def test_the_estimate_counts_the_papers_trainable_parameters():
    full = estimate(policy_config("125m"), 8, None, LORA_TARGETS)
    assert full["trainable"] == 56_686_849  # the paper's count
    assert full["params"] == 125_198_592 + 768 + 1
    adapted = estimate(policy_config("125m"), 8, 8, LORA_TARGETS)
    assert adapted["trainable"] == 885_505 and adapted["reference_copy_bytes"] == 0
    assert adapted["params"] == 125_198_592 + 884_736 + 768 + 1


@pytest.mark.parametrize("adapter", ["none", "lora"])
def test_the_estimate_agrees_with_the_loaded_policy(tmp_path, adapter, lora):
    torch.manual_seed(0)
    config = policy_config("tiny")
    GPTNeoForCausalLM(config).save_pretrained(tmp_path)
    policy, reference = load_trainable(tmp_path, 5, torch.device("cpu"), 0,
                                       lora if adapter == "lora" else None)
    counts = count_parameters(policy)
    estimated = estimate(config, 5, lora.rank if adapter == "lora" else None,
                         lora.target_modules)
    assert (estimated["trainable"], estimated["params"]) == (counts["trainable_params"],
                                                             counts["total_params"])
    # what the reference holds beyond the tensors it shares with the policy
    shared = {p.data_ptr() for p in policy.parameters()}
    own = [] if reference is None else [p for p in reference.parameters()
                                        if p.data_ptr() not in shared]
    assert estimated["reference_copy_bytes"] == sum(p.numel() * p.element_size() for p in own)


@pytest.mark.slow  # the GPU script's code path on CPU (the device run is what it is for)
def test_the_bench_runs_on_cpu(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # the paper-rtp preset is composed from conf/
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # tiny ops: threads only add overhead (conftest)
    out = tmp_path / "bench.json"
    main(["--sizes", "tiny", "--adapters", "lora", "--steps", "2", "--ppo-epochs", "1",
          "--gradient-checkpointing", "--workdir", str(tmp_path), "--out", str(out)])
    (row,) = json.loads(out.read_text())  # measured in a process of its own
    assert "error" not in row, row
    assert row["steps"] == 2 and row["samples_per_s"] > 0 and not row["diverged"]
    assert (row["batch_size"], row["mini_batch_size"], row["layers"]) == (16, 4, 8)
    assert not (tmp_path / "unused").exists()  # no checkpoint was written
    assert "| gpt-neo-tiny-shaped | lora | yes |" in capsys.readouterr().out
