"""The model-size benchmark (detox.bench.scale) runs, here on CPU with a tiny shape, and its
memory estimate counts the parameters the loaded policy and reference really hold, for
GPT-Neo, GPT-2 and Llama."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, PretrainedConfig

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
    # peft's default for gpt_neo: q_proj and v_proj only
    default = estimate(policy_config("125m"), 8, 8, None)
    assert default["trainable"] == 8 * 2 * 8 * (768 + 768) + 768 + 1 == 197_377


def family_config(family: str, make_tiny_llama) -> PretrainedConfig:
    """A tiny policy config of each family (Llama's head is untied)."""
    if family == "gpt_neo":
        return policy_config("tiny")
    if family == "gpt2":
        return GPT2Config(vocab_size=512, n_positions=64, n_embd=16, n_layer=12, n_head=2)
    return make_tiny_llama().config


@pytest.mark.parametrize("family", ["gpt_neo", "gpt2", "llama"])
@pytest.mark.parametrize("adapter", ["none", "lora"])
def test_the_estimate_agrees_with_the_loaded_policy(tmp_path, adapter, lora, family,
                                                    make_tiny_llama):
    torch.manual_seed(0)
    config = family_config(family, make_tiny_llama)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path)
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


def test_an_untied_head_is_frozen_in_the_estimate_too(make_tiny_llama):
    untied = make_tiny_llama().config
    tied = make_tiny_llama(tie_word_embeddings=True).config
    head = untied.vocab_size * untied.hidden_size
    assert estimate(untied, 5, None)["params"] == estimate(tied, 5, None)["params"] + head
    assert estimate(untied, 5, None)["trainable"] == estimate(tied, 5, None)["trainable"]


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
