"""The whole pipeline on a tiny random-weight Llama through the real `dvc repro`: a tokenizer
that adds a BOS, bos/eos/pad distinct, two eos ids in the generation config, an untied head;
then every other method and LoRA on it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from project import copy_project, run, set_params
from test_llama_family import always_next

pytestmark = pytest.mark.slow  # minutes: `pytest -m slow` (CI runs it)

SMALL = {"ppo.steps": 2, "ppo.batch_size": 4, "ppo.mini_batch_size": 2, "samples.total": 16,
         "online_dpo.samples": 16, "online_dpo.batch_size": 4,
         "samples.batch_size": 4, "data.eval_prompts": 4, "eval.samples_per_prompt": 2,
         "eval.batch_size": 8, "sft.batch_size": 2, "dpo.batch_size": 2,
         "sft.max_toxicity": 1.0, "dpo.min_margin": 0.01}


@pytest.fixture(scope="module")
def repo(tmp_path_factory, tiny_llama_dir) -> Path:
    repo = copy_project(tmp_path_factory.mktemp("llama-project"))
    set_params(repo, **SMALL, **{"model.policy": str(tiny_llama_dir)})
    run(repo, "dvc", "repro")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "llama baseline")
    return repo


def test_prompts_hold_text_and_the_bos_only_in_their_ids(repo, llama_tokenizer):
    special = [t for t in llama_tokenizer.all_special_tokens]
    for name in ("train", "in_distribution", "ood_toxic", "ood_benign"):
        table = pd.read_parquet(repo / f"data/prompts/{name}.parquet")
        assert not table["prompt"].map(lambda p: any(s in p for s in special)).any(), name
        assert table["input_ids"].map(lambda ids: ids[0] == llama_tokenizer.bos_token_id).all()
        assert table["input_ids"].map(len).between(1 + 6, 1 + 10).all()  # text tokens 6..10
    report = (repo / "metrics/report.md").read_text()
    assert "<s>" not in report and "<pad>" not in report


def test_continuations_end_at_either_eos_and_are_scored_on_their_sampled_ids(repo,
                                                                            llama_tokenizer):
    ends = {llama_tokenizer.convert_tokens_to_ids(t) for t in ("</s>", "<|eot|>")}
    rollouts = pd.concat(pd.read_parquet(path) for path in (repo / "data/rollouts").iterdir())
    last = rollouts["continuation_ids"].map(lambda ids: int(ids[-1]) if len(ids) else None)
    assert rollouts["ended_with_eos"].any() and (last[rollouts["ended_with_eos"]].isin(ends)).all()
    # nothing after an end token: a continuation stops at the first one
    assert not rollouts["continuation_ids"].map(lambda ids: bool(ends & set(ids[:-1]))).any()
    # the likelihoods are of exactly the sampled ids, end token included
    assert (rollouts["policy_tokens"] == rollouts["continuation_ids"].map(len)).all()


def test_the_published_folder_generates_with_plain_transformers(repo, llama_tokenizer):
    folder = repo / "data/models/detoxified"
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert sorted(model.generation_config.eos_token_id) == sorted(
        llama_tokenizer.convert_tokens_to_ids(["</s>", "<|eot|>"]))
    assert tokenizer.pad_token == "<pad>" and tokenizer.bos_token == "<s>"
    assert not model.config.tie_word_embeddings
    # PPO trained the top blocks; the untied head stayed the base's
    trained, base = (load_file(repo / f"data/models/{name}/model.safetensors")
                     for name in ("detoxified", "base"))
    assert torch.equal(trained["lm_head.weight"], base["lm_head.weight"])
    assert not torch.equal(trained["model.layers.11.mlp.up_proj.weight"],
                           base["model.layers.11.mlp.up_proj.weight"])
    # the second eos the likeliest token: plain generate, with the saved config, stops there
    eot = tokenizer.convert_tokens_to_ids("<|eot|>")
    always_next(model, eot)
    inputs = tokenizer(["shut up you"], return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=8, do_sample=False)[0].tolist()
    assert output[inputs["input_ids"].shape[1]:] == [eot]


@pytest.mark.parametrize("overrides", [
    {"method": "sft"}, {"method": "dpo"}, {"method": "word_filter"},
    {"method": "online_dpo"},
    {"adapter.kind": "lora"}, {"adapter.kind": "lora", "method": "dpo"},
    {"adapter.kind": "lora", "method": "online_dpo"},
], ids=["sft", "dpo", "word_filter", "online_dpo", "ppo-lora", "dpo-lora", "online_dpo-lora"])
def test_every_method_and_lora_run_on_llama(repo, overrides):
    set_params(repo, **overrides)
    try:
        run(repo, "dvc", "repro")
        training = json.loads((repo / "metrics/train.json").read_text())
        evaluation = json.loads((repo / "metrics/eval.json").read_text())
    finally:
        run(repo, "git", "checkout", "-q", "--", "params.yaml")
    assert training["method"] == overrides.get("method", "ppo")
    if "adapter.kind" in overrides:  # peft's default targets for Llama
        assert training["lora_target_modules"] == "q_proj, v_proj"
    for by_model in evaluation.values():
        assert 0 <= by_model["detoxified"]["mean_toxicity"] <= 1
