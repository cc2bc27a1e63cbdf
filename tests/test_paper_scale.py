"""The paper preset's code path at the real model sizes, on CPU (slow: `pytest -m slow`).

A gpt-neo-125m-shaped policy (config only, real vocabulary size, random weights) and a
roberta-base-shaped scorer go through `dvc repro` with the paper-rtp preset's settings; only the
sources point at local fixtures and the step counts are cut, so shapes, memory and dtype
handling are proven at the real size without a download.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from transformers import GPTNeoConfig, GPTNeoForCausalLM, RobertaConfig, RobertaForSequenceClassification

from hub_fixtures import TOXIC, wiki_toxic_parquet, wikitext_txt
from project import composed, copy_project, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def paper_repo(tmp_path_factory, tokenizer) -> Path:
    """The paper preset with two PPO steps at real size, run with `dvc repro`."""
    tmp_path = tmp_path_factory.mktemp("paper-scale")
    torch.manual_seed(0)
    policy_dir, scorer_dir = tmp_path / "gpt-neo-125m-shaped", tmp_path / "roberta-base-shaped"
    GPTNeoForCausalLM(GPTNeoConfig(
        vocab_size=50257, hidden_size=768, num_layers=12, num_heads=12,
        attention_types=[[["global", "local"], 6]], window_size=256, max_position_embeddings=2048,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
    )).save_pretrained(policy_dir)
    tokenizer.save_pretrained(policy_dir)
    RobertaForSequenceClassification(RobertaConfig(
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id, id2label={0: "nothate", 1: "hate"},
        label2id={"nothate": 0, "hate": 1},
    )).save_pretrained(scorer_dir)
    tokenizer.save_pretrained(scorer_dir)

    # RealToxicityPrompts-shaped prompts, distinct within the preset's 30-40 query tokens.
    rtp = tmp_path / "rtp.jsonl"
    rtp.write_text("".join(
        json.dumps({"prompt": {"text": f"{j} " + " ".join(TOXIC[i:] + TOXIC[:i]),
                               "toxicity": 0.9},
                    "continuation": {"text": " " + " ".join(TOXIC), "toxicity": 0.1}}) + "\n"
        for i in range(len(TOXIC)) for j in range(8)))

    repo = tmp_path / "project"
    repo.mkdir()
    copy_project(repo)
    params = composed("preset=paper-rtp")
    params["data"].update(train=str(rtp), ood_toxic=str(wiki_toxic_parquet(tmp_path / "wt.parquet")),
                          ood_benign=str(wikitext_txt(tmp_path / "wiki.txt")), eval_prompts=8)
    params["model"].update(policy=str(policy_dir), scorer=str(scorer_dir), judge=str(scorer_dir),
                           # fp16 needs a GPU, and bf16 matmuls are emulated (very slow) on
                           # most CPUs: the lower precisions are for the GPU run.
                           fluency_lm=None, precision="fp32", device="cpu")
    params["ppo"].update(steps=2, ppo_epochs=1)
    params["eval"].update(batch_size=8, samples_per_prompt=2)
    params["samples"].update(total=32)  # the baselines' samples: 8 prompts, 4 each
    # a random-weight scorer scores every text alike: any target, any difference makes a pair
    params["sft"].update(max_toxicity=1.0)
    params["dpo"].update(min_margin=1e-6)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(repo, "dvc", "repro")
    return repo


def test_paper_preset_two_ppo_steps_at_real_size(paper_repo):
    repo = paper_repo
    training = json.loads((repo / "metrics/train.json").read_text())
    assert training["steps"] == 2
    assert training["trainable_params"] == 56_686_849
    prompts = [len(ids) for ids in pd.read_parquet(
        repo / "data/prompts/train.parquet")["input_ids"]]
    assert 30 <= min(prompts) and max(prompts) <= 40
    evaluation = json.loads((repo / "metrics/eval.json").read_text())
    assert evaluation["in_distribution"]["detoxified"]["n"] > 0
    assert Path(repo / "data/models/detoxified/model.safetensors").stat().st_size > 400e6


@pytest.mark.parametrize("method", ["word_filter", "sft", "dpo"])
def test_each_baseline_at_real_size(paper_repo, method):
    """`-S preset=paper-rtp -S method=...`: the same trainable blocks (no value head), and a
    published folder evaluate scored."""
    repo = paper_repo
    params = yaml.safe_load((repo / "params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump({**params, "method": method},
                                                     sort_keys=False))
    run(repo, "dvc", "repro")
    training = json.loads((repo / "metrics/train.json").read_text())
    assert training["method"] == method
    # the paper's 56,686,849 less the value head's 769: sft and dpo train no value head
    assert training["trainable_params"] == (0 if method == "word_filter" else 56_686_080)
    if method == "word_filter":
        generation = json.loads((repo / "data/models/detoxified/generation_config.json")
                                .read_text())
        assert len(generation["bad_words_ids"]) == training["banned_sequences"] > 0
    else:
        assert training["policy_samples"] == 32 and training["gradient_steps"] >= 1
    evaluation = json.loads((repo / "metrics/eval.json").read_text())
    assert evaluation["ood_toxic"]["detoxified"]["n"] > 0
