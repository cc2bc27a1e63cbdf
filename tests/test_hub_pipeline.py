"""The whole pipeline through the hub code path (`from_pretrained(<folder>)`, `load_dataset(<file>)`)
on local fixtures in the real formats, driven by the real `dvc repro`; and its one-line errors."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from hub_fixtures import jigsaw_csv, rtp_jsonl, wiki_toxic_parquet, wikitext_txt
from project import copy_project, error_lines, run, set_params

pytestmark = pytest.mark.slow  # minutes: `pytest -m slow` (CI runs it)


@pytest.fixture(scope="module")
def sources(tmp_path_factory, tiny_neo_dir, roberta_scorer_dir,
            multilabel_scorer_dir) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("sources")
    generic = folder / "generic-labels-scorer"
    shutil.copytree(roberta_scorer_dir, generic)
    config = json.loads((generic / "config.json").read_text())
    config.update(id2label={"0": "LABEL_0", "1": "LABEL_1"}, label2id={"LABEL_0": 0, "LABEL_1": 1})
    (generic / "config.json").write_text(json.dumps(config))
    no_text = folder / "no_text.csv"
    pd.DataFrame({"id": [1, 2], "body": ["a", "b"]}).to_csv(no_text, index=False)
    return {
        "rtp": str(rtp_jsonl(folder / "real-toxicity-prompts.jsonl")),
        "jigsaw": str(jigsaw_csv(folder / "train.csv")),
        "wiki_toxic": str(wiki_toxic_parquet(folder / "wiki_toxic_test.parquet")),
        "wikitext": str(wikitext_txt(folder / "wiki.test.raw.txt")),
        "policy": str(tiny_neo_dir), "scorer": str(roberta_scorer_dir),
        "generic_scorer": str(generic), "no_text": str(no_text),
        "multilabel_scorer": str(multilabel_scorer_dir),
    }


@pytest.fixture(scope="module")
def repo(tmp_path_factory, sources) -> Path:
    repo = copy_project(tmp_path_factory.mktemp("hub-project"))
    set_params(repo, **{
        "data.train": sources["rtp"], "data.ood_toxic": sources["wiki_toxic"],
        "data.ood_benign": sources["wikitext"], "data.prompt_min_tokens": 3,
        "data.prompt_max_tokens": 6, "data.eval_prompts": 6,
        "model.policy": sources["policy"], "model.scorer": sources["scorer"],
        # the fixture holds 6 distinct toxic texts, some also wiki_toxic's: few training prompts
        "ppo.steps": 2, "ppo.batch_size": 2, "ppo.mini_batch_size": 1, "ppo.ppo_epochs": 2,
        "generation.max_new_tokens_from": 3, "generation.max_new_tokens_to": 6, "eval.batch_size": 4,
        "eval.samples_per_prompt": 2, "model.judge": sources["scorer"],
    })
    run(repo, "dvc", "repro")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "hub fixtures baseline")
    return repo


def test_pipeline_runs_on_hub_format_fixtures(repo, sources):
    def manifest(path: str) -> dict:
        return json.loads((repo / path).read_text())

    assert manifest("data/raw/train.json")["source"] == sources["rtp"]
    assert manifest("data/raw/train.json")["rows"] == len(pd.read_json(sources["rtp"], lines=True))
    assert manifest("data/models/scorer/source.json")["id2label"] == {"0": "nothate", "1": "hate"}
    assert manifest("data/models/base/source.json")["blocks"] == 12
    assert manifest("data/models/judge/source.json")["source"] == sources["scorer"]
    assert manifest("data/models/fluency/source.json")["source"] is None

    evaluation = json.loads((repo / "metrics/eval.json").read_text())
    assert evaluation["ood_toxic"]["base"]["prompts"] == 6  # wiki_toxic rows with label 1
    benign = pd.read_parquet(repo / "data/prompts/ood_benign.parquet")["prompt"]
    assert not benign.str.contains("=").any()  # wikitext headings dropped
    train = pd.read_parquet(repo / "data/prompts/train.parquet")
    test = pd.read_parquet(repo / "data/prompts/in_distribution.parquet")
    assert set(train["toxicity"].round(2)) == {0.8}  # RTP: nulls and prompt.toxicity <= 0.3 dropped
    assert json.loads((repo / "metrics/train.json").read_text())["steps"] == 2
    assert len(test) > 0 and (repo / "data/models/detoxified/model.safetensors").exists()


def test_jigsaw_csv_with_a_row_cap(repo, sources):
    set_params(repo, **{"data.train": sources["jigsaw"], "data.train_prompts": 10})
    try:
        run(repo, "dvc", "repro", "prepare")
        train, test = (pd.read_parquet(repo / f"data/prompts/{name}.parquet")["prompt"]
                       for name in ("train", "in_distribution"))
        counts = json.loads((repo / "data/prompts/counts.json").read_text())["train"]
    finally:
        run(repo, "git", "checkout", "-q", "--", "params.yaml")
    # 10 of the 24 toxic rows are sampled; the fixture repeats each comment 4 times, and the
    # wiki_toxic fixture holds the same toxic comments: repeats and OOD prompts are dropped
    # before the 80/20 split of what is left (test size rounded up)
    assert counts["repeated_texts_dropped"] > 0 and counts["ood_overlap_dropped"] > 0
    assert len(train) + len(test) == 10 - counts["repeated_texts_dropped"] \
        - counts["repeated_queries_dropped"] - counts["ood_overlap_dropped"]
    assert len(test) == math.ceil((len(train) + len(test)) * 0.2)
    assert set(train).isdisjoint(test)


@pytest.mark.parametrize("override, message", [
    ({"data.train": "allenai/real-toxicity-prompts?split=train"},
     "data.train='allenai/real-toxicity-prompts?split=train': could not load it"),
    ({"data.ood_toxic": "NO_TEXT"}, "no text column"),
    ({"data.toxicity_threshold": 0.95}, "lower data.toxicity_threshold"),
    ({"model.scorer": "GENERIC_SCORER"}, "set model.neutral_label"),
    ({"model.scorer": "MULTILABEL_SCORER", "model.neutral_label": "nothate"},
     "model.neutral_label='nothate' is for a softmax classifier"),
    ({"model.judge": "MULTILABEL_SCORER", "model.judge_toxic_labels": ["toxic", "rude"]},
     "model.judge_toxic_labels=['toxic', 'rude']: ['rude'] not among the classifier's labels"),
    ({"ppo.batch_size": 64}, "ppo.batch_size=64 x 1 process(es) is more than the"),
    ({"data.prompt_max_tokens": 60}, "exceeds the policy's context of 64 tokens"),
    pytest.param({"model.device": "cuda"}, "model.device='cuda' but no CUDA GPU",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")),
])
def test_errors_are_one_line_without_traceback(repo, sources, override, message):
    named = {"NO_TEXT": sources["no_text"], "GENERIC_SCORER": sources["generic_scorer"],
             "MULTILABEL_SCORER": sources["multilabel_scorer"]}
    set_params(repo, **{k: named.get(v, v) if isinstance(v, str) else v
                        for k, v in override.items()})
    try:
        result = run(repo, "dvc", "repro", check=False)
    finally:
        run(repo, "git", "checkout", "-q", "--", "params.yaml")
    errors = error_lines(result)
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    assert len(errors) == 1 and message in errors[0], result.stdout + result.stderr
    assert not list(repo.rglob(".tmp.*"))


def test_a_multi_label_classifier_as_reward_scorer_and_judge(repo, sources):
    """unitary/toxic-bert's kind (one sigmoid per label) through `dvc repro` as model.scorer
    (its `toxic` label found by name) and as model.judge (two labels, the larger counts)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    set_params(repo, **{"model.scorer": sources["multilabel_scorer"],
                        "model.judge": sources["multilabel_scorer"],
                        "model.judge_toxic_labels": ["insult", "obscene"],
                        "reward": "log_toxicity"})
    try:
        run(repo, "dvc", "repro")
        manifests = {name: json.loads((repo / f"data/models/{name}/source.json").read_text())
                     for name in ("scorer", "judge")}
        rollouts = pd.concat([pd.read_parquet(path)
                              for path in sorted((repo / "data/rollouts").glob("*.parquet"))])
        training = json.loads((repo / "metrics/train.json").read_text())
        evaluation = json.loads((repo / "metrics/eval.json").read_text())
        # PPO reads no samples: those of sft, scored by the same classifier
        set_params(repo, method="sft")
        run(repo, "dvc", "repro", "sample")
        samples = pd.read_parquet(repo / "data/samples/train.parquet")
    finally:
        run(repo, "git", "checkout", "-q", "--", "params.yaml", "dvc.lock")
        run(repo, "dvc", "checkout", "-q", "--force")
    assert {m["problem_type"] for m in manifests.values()} == {"multi_label_classification"}
    assert training["steps"] == 2 and not training["diverged"]
    assert 0 < evaluation["in_distribution"]["detoxified"]["mean_toxicity"] < 1

    # the classifier run here by transformers itself: toxicity is the sigmoid of its labels
    model = AutoModelForSequenceClassification.from_pretrained(sources["multilabel_scorer"])
    tokenizer = AutoTokenizer.from_pretrained(sources["multilabel_scorer"])

    def sigmoid(texts: list[str]) -> torch.Tensor:
        with torch.no_grad():
            rows = [model(**tokenizer([text or " "], return_tensors="pt")).logits[0]
                    for text in texts]
        return torch.sigmoid(torch.stack(rows))

    p = sigmoid(rollouts["continuation"].tolist())
    torch.testing.assert_close(torch.tensor(rollouts["toxicity"].to_numpy(), dtype=torch.float32),
                               p[:, 0], atol=1e-5, rtol=0)  # `toxic`
    torch.testing.assert_close(
        torch.tensor(rollouts["judge_toxicity"].to_numpy(), dtype=torch.float32),
        p[:, [4, 2]].max(dim=1).values, atol=1e-5, rtol=0)  # max(insult, obscene)
    torch.testing.assert_close(torch.tensor(samples["toxicity"].to_numpy(), dtype=torch.float32),
                               sigmoid(samples["continuation"].tolist())[:, 0], atol=1e-5,
                               rtol=0)
