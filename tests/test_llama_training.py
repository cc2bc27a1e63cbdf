"""The training methods on a Llama-family policy (the conftest's tiny Llama: bos, eos and pad
distinct, BOS added by the tokenizer, two eos ids, an untied output head): a PPO step changes
only the trainable tensors (the top blocks, the final norm and the value head; never the
embeddings, the blocks below or the head) and leaves the reference alone; with LoRA at the
committed default targets (peft's for llama) PPO, sft and dpo load, run and train only the
adapter."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch

from detox.train.card import training_card
from detox.train.methods import load_method
from detox.train.summary import TrainSummary
from detox.models import load_tokenizer
from detox.params import parse
from detox.toxicity import PackagedScorer, toxicity_reading
from detox.train.dpo import dpo_pairs, train_dpo
from detox.train.finetune import trainable_lm
from detox.train.params import DPOParams, SFTParams, TrainParams
from detox.train.policy import count_parameters, load_trainable
from detox.train.ppo import run_ppo
from detox.train.sft import sft_targets, train_sft

CPU = torch.device("cpu")
LAYERS = 4
TOP = tuple(f"model.layers.{block}." for block in range(12 - LAYERS, 12))
PROMPTS = ["shut up you", "the river is", "you are a stupid", "in the fifteenth century the",
           "what a pathetic", "the castle"]


@pytest.fixture
def params(committed_params) -> TrainParams:
    params = parse(TrainParams, committed_params)
    return dataclasses.replace(
        params, layers=LAYERS,
        ppo=dataclasses.replace(params.ppo, steps=1, batch_size=4, mini_batch_size=2,
                                ppo_epochs=1, learning_rate=1e-3),
        generation=dataclasses.replace(params.generation, max_new_tokens_from=3,
                                       max_new_tokens_to=5))


@pytest.fixture
def prompts(llama_tokenizer) -> list[list[int]]:
    return llama_tokenizer(PROMPTS)["input_ids"]  # each starts with the tokenizer's BOS


def ppo_step(policy, reference, tiny_llama_dir, prompts, params, tmp_path):
    """One PPO step; the names of the policy's tensors it changed."""
    before = {name: p.detach().clone() for name, p in policy.named_parameters()}
    scorer = PackagedScorer("profanity-check")
    outcome = run_ppo(policy, reference, load_tokenizer(tiny_llama_dir), scorer,
                    toxicity_reading(scorer.id2label, scorer.multi_label, None, None), prompts,
                    params, CPU, tmp_path)
    assert outcome.diverged_at is None and len(outcome.log) == 1
    return {name for name, p in policy.named_parameters() if not torch.equal(p, before[name])}


def test_a_ppo_step_changes_only_the_top_blocks_the_final_norm_and_the_value_head(
        tiny_llama_dir, prompts, params, tmp_path):
    policy, reference = load_trainable(tiny_llama_dir, LAYERS, CPU, params.seed)
    reference_before = {name: p.detach().clone() for name, p in reference.named_parameters()}
    changed = ppo_step(policy, reference, tiny_llama_dir, prompts, params, tmp_path)
    trainable = {name for name, p in policy.named_parameters() if p.requires_grad}
    assert changed and changed <= trainable
    assert all(name.startswith(tuple(f"pretrained_model.{top}" for top in TOP))
               or name.startswith(("pretrained_model.model.norm.", "v_head."))
               for name in trainable)
    assert any(name.startswith(f"pretrained_model.{TOP[0]}") for name in changed)
    assert {"pretrained_model.lm_head.weight",
            "pretrained_model.model.embed_tokens.weight"}.isdisjoint(trainable)
    for name, p in reference.named_parameters():
        torch.testing.assert_close(p, reference_before[name], rtol=0, atol=0, msg=name)


def test_lora_ppo_with_the_default_targets_trains_only_the_adapter(tiny_llama_dir, prompts,
                                                                   params, lora, tmp_path):
    policy, reference = load_trainable(tiny_llama_dir, LAYERS, CPU, params.seed, lora)
    assert reference is None
    assert count_parameters(policy)["lora_target_modules"] == "q_proj, v_proj"
    with torch.no_grad():  # LoRA starts as a no-op (B = 0): let A's gradient flow too
        for name, param in policy.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1)
    changed = ppo_step(policy, reference, tiny_llama_dir, prompts,
                       dataclasses.replace(params, adapter=lora), tmp_path)
    assert any("lora_A" in name for name in changed) and any("v_head" in n for n in changed)
    assert all("lora_" in name or name.startswith("v_head.") for name in changed)
    assert all(any(f".{top}" in name for top in TOP) for name in changed if "lora_" in name)


@pytest.fixture
def samples(llama_tokenizer) -> pd.DataFrame:
    """Two scored samples per prompt, in data/samples/train.parquet's layout, written after
    each prompt's ids (BOS first) and ended by the tokenizer's eos."""
    rows = []
    for prompt_id, prompt in enumerate(PROMPTS[:4]):
        for sample, (text, toxicity) in enumerate([(" kind friend .", 0.02),
                                                   (" stupid idiot .", 0.97)]):
            ids = (llama_tokenizer(text, add_special_tokens=False)["input_ids"]
                   + [llama_tokenizer.eos_token_id])
            rows.append({"prompt_id": prompt_id, "prompt": prompt,
                         "prompt_ids": llama_tokenizer(prompt)["input_ids"], "sample": sample,
                         "continuation": text, "continuation_ids": ids, "ended_with_eos": True,
                         "toxicity": toxicity})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("method", ["sft", "dpo"])
def test_sft_and_dpo_with_lora_default_targets_train_only_the_adapter(
        method, samples, tiny_llama_dir, committed_params, lora):
    model, reference = trainable_lm(tiny_llama_dir, LAYERS, CPU, 0, lora)
    assert reference is None  # the policy with its adapter disabled is the reference
    assert count_parameters(model)["lora_target_modules"] == "q_proj, v_proj"
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    tokenizer = load_tokenizer(tiny_llama_dir)
    if method == "sft":
        settings = parse(SFTParams, {**committed_params["sft"], "epochs": 1, "batch_size": 4},
                         "sft.")
        steps, _ = train_sft(model, tokenizer, sft_targets(samples, 0.5), settings, 0, CPU,
                             "fp32")
    else:
        settings = parse(DPOParams, {**committed_params["dpo"], "epochs": 1, "batch_size": 4},
                         "dpo.")
        steps, _ = train_dpo(model, None, tokenizer, dpo_pairs(samples, 0.5), settings, 0, CPU,
                             "fp32")
    assert steps == 1
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert changed and all("lora_" in name for name in changed)
    assert all(any(f".{top}" in name for top in TOP) for name in changed)


@pytest.mark.parametrize("adapted", [False, True])
def test_the_summary_and_the_model_card_say_what_trained(tiny_llama_dir, committed_params,
                                                         lora, adapted):
    policy, _ = load_trainable(tiny_llama_dir, LAYERS, CPU, 0, lora if adapted else None)
    counts = count_parameters(policy)  # what the train stage writes into metrics/train.json
    raw = {**committed_params, "layers": LAYERS,
           "adapter": {**committed_params["adapter"], "kind": "lora" if adapted else "none"}}
    summary = {**counts, "method": "ppo", "kl_coef_start": 0.2, "kl_coef_end": 0.2,
               "diverged": False, "policy_samples": 8, "scorer_calls": 8, "gradient_steps": 2}
    text = training_card(load_method("ppo"), {"source": str(tiny_llama_dir)},
                         {"source": "builtin:profanity-check"}, parse(TrainParams, raw),
                         TrainSummary.from_json(summary), 6).text
    assert f"{counts['trainable_params']:,} of {counts['total_params']:,}" in text
    if adapted:
        assert "on q_proj, v_proj) in the top 4 blocks" in text
    else:
        assert ("the top 4 transformer blocks and the final norm; the embeddings, the blocks "
                "below and the output head frozen; PPO's value head trains too") in text
