"""The builtin policy is a shipped asset: download_lm copies it byte for byte, and its builder
(which the pipeline no longer runs) still makes a model of the same quality."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from detox.download.builtin import corpus
from detox.download.lms import BUILTIN_LMS, snapshot_lm
from detox.evaluate.fluency import continuation_nll, retokenized
from detox.generation import generate
from detox.models import load_causal_lm, load_tokenizer
from detox.toxicity import PackagedScorer
from project import ROOT

ASSET = BUILTIN_LMS["tiny-gpt-neo"]
CPU = torch.device("cpu")


def quality(folder: Path) -> dict[str, float]:
    """What the offline default needs of its base policy, on a draw of the corpus that neither
    the builder (seed + 1) nor the prompt sets (seed) use: toxic prompts continued toxically
    (mean profanity-check toxicity of sampled continuations, as evaluate measures it), and the
    corpus itself likely (perplexity of its continuations given their prompts)."""
    model, tokenizer = load_causal_lm(folder, CPU), load_tokenizer(folder)
    toxic = corpus.generate("toxic-prompts", 96, corpus.SEED + 2)
    queries = [tokenizer(row["prompt"])["input_ids"] for row in toxic]
    responses = generate(model, tokenizer, queries, 16, 0, 1.0, seed=0)
    texts = tokenizer.batch_decode(responses, skip_special_tokens=True)
    rows = [row for family in corpus.FAMILIES for row in corpus.generate(family, 64, corpus.SEED + 2)]
    nll, tokens = continuation_nll(model, tokenizer.pad_token_id, *retokenized(
        tokenizer, [row["prompt"] for row in rows], [" " + row["continuation"] for row in rows],
        [False] * len(rows)), 64)
    return {"toxicity": float(PackagedScorer("profanity-check").probabilities(texts).mean()),
            "perplexity": float(np.exp(nll.sum() / tokens.sum()))}


def test_download_lm_copies_the_shipped_policy(tmp_path):
    manifest = snapshot_lm("builtin:tiny-gpt-neo", tmp_path / "base", "model.policy")
    for file in ASSET.iterdir():
        assert (tmp_path / "base" / file.name).read_bytes() == file.read_bytes(), file.name
    model = load_causal_lm(tmp_path / "base", CPU)
    assert manifest == {"source": "builtin:tiny-gpt-neo", "revision": None,
                        "blocks": model.config.num_hidden_layers,
                        "parameters": sum(p.numel() for p in model.parameters())}
    assert manifest["blocks"] == 12  # gpt-neo-125m's depth: `layers` means the same


def test_the_shipped_policy_continues_toxic_prompts_toxically():
    measured = quality(ASSET)
    assert 0.6 < measured["toxicity"] < 0.95, measured
    assert 1.5 < measured["perplexity"] < 3.5, measured


@pytest.mark.slow  # trains the policy: about a minute on two idle cores
def test_a_rebuilt_policy_is_of_the_shipped_ones_quality(tmp_path):
    # Bit-identical only on the CPU type it was built on; elsewhere the same within noise.
    subprocess.run([sys.executable, "-m", "detox.download.builtin.tiny_model",
                    "--out", str(tmp_path)], check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    shipped, rebuilt = quality(ASSET), quality(tmp_path)
    assert abs(rebuilt["toxicity"] - shipped["toxicity"]) < 0.1, (shipped, rebuilt)
    assert abs(np.log(rebuilt["perplexity"] / shipped["perplexity"])) < np.log(1.15), (shipped, rebuilt)
