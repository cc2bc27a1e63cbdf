"""The prepare stage on raw tables with repeated prompts: held-out sets are held out."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from detox.download.builtin import corpus
from project import ROOT

SHARED = ["shut up you clown", "you are a pig", "what a fool"]  # short: no cut changes them


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, tiny_neo_dir, committed_params) -> Path:
    """A workspace whose raw training table repeats every prompt and shares some with OOD."""
    work = tmp_path_factory.mktemp("prepare")
    rows = corpus.generate("toxic-prompts", 300, 1)
    train = [row["prompt"] for row in rows] * 2 + SHARED * 3
    ood_toxic = [row["prompt"] for row in corpus.generate("ood-toxic", 60, 1)] + SHARED
    ood_benign = [row["prompt"] for row in corpus.generate("ood-benign", 60, 1)]
    (work / "data/raw").mkdir(parents=True)
    for name, prompts, toxicity in (("train", train, 0.9), ("ood_toxic", ood_toxic, 1.0),
                                    ("ood_benign", ood_benign, float("nan"))):
        pd.DataFrame({"prompt": prompts, "toxicity": toxicity, "continuation": None}) \
            .to_parquet(work / f"data/raw/{name}.parquet")
    shutil.copytree(tiny_neo_dir, work / "data/models/base")
    params = dict(committed_params, data={**committed_params["data"], "eval_prompts": 1000})
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    result = subprocess.run([sys.executable, str(ROOT / "stages/prepare.py")], cwd=work,
                            capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert result.returncode == 0, result.stderr
    return work


def prompts(work: Path, name: str) -> set[str]:
    return set(pd.read_parquet(work / f"data/prompts/{name}.parquet")["prompt"])


def test_no_eval_prompt_occurs_in_train(prepared):
    train = prompts(prepared, "train")
    for name in ("in_distribution", "ood_toxic", "ood_benign"):
        assert prompts(prepared, name).isdisjoint(train), name
    assert set(SHARED) <= prompts(prepared, "ood_toxic")  # kept out of train, not out of OOD


def test_no_text_is_cut_into_a_training_and_a_test_prompt(prepared):
    # every text comes twice; cut to two lengths, its copies would be two different prompts
    train, test = (pd.read_parquet(prepared / f"data/prompts/{name}.parquet")
                   for name in ("train", "in_distribution"))
    assert set(train["source_text"]).isdisjoint(test["source_text"])
    assert train["source_text"].is_unique and test["source_text"].is_unique


def test_each_prompt_is_kept_once_and_the_drops_are_recorded(prepared):
    counts = json.loads((prepared / "data/prompts/counts.json").read_text())
    train = pd.read_parquet(prepared / "data/prompts/train.parquet")
    test = pd.read_parquet(prepared / "data/prompts/in_distribution.parquet")
    assert train["prompt"].is_unique and test["prompt"].is_unique
    assert counts["train"]["repeated_texts_dropped"] >= 300  # every text came twice
    assert counts["train"]["ood_overlap_dropped"] == len(SHARED)
    assert counts["train"]["prompts"] == len(train)
    assert counts["train"]["held_out"] == len(test)  # eval_prompts above the test size: all of it
    distinct = counts["train"]["toxic_rows"] - counts["train"]["repeated_texts_dropped"] \
        - counts["train"]["repeated_queries_dropped"] - counts["train"]["ood_overlap_dropped"]
    assert len(train) + len(test) == distinct
