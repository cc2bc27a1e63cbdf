"""The review command on a real git + DVC repository whose two commits differ in params and in
headline metrics: the markdown holds what changed, old → new, and nothing that did not."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
import yaml

from detox import DetoxError
from detox.headline import PER_SET_KEYS, TRAINING_KEYS, flatten, headline
from project import ROOT, error_lines, run


def eval_set(base: float, detoxified: float, perplexity_base: float) -> dict:
    """One eval set of metrics/eval.json, with what the headline reads of it."""
    return {"base": {"mean_toxicity": base, "perplexity": perplexity_base},
            "detoxified": {"mean_toxicity": detoxified, "perplexity": 3 * perplexity_base,
                           "kl_to_base": 0.4, "expected_max_toxicity": 2 * detoxified,
                           "continuation_tokens_mean": 9.5},
            "detoxified_minus_base": {
                "mean_toxicity": {"diff": detoxified - base, "ci_low": detoxified - base - 0.03,
                                  "ci_high": detoxified - base + 0.03},
                "judge_mean_toxicity": {"diff": -0.4}}}


EVAL_JSON = {"in_distribution": eval_set(0.84, 0.07237, 3.6),  # 0.07237: a value to move
             "ood_toxic": eval_set(0.85, 0.07, 3.2), "ood_benign": eval_set(0.14, 0.07, 2.4)}
# No stages: DVC reads params and metrics declared at the top level.
DVC_YAML = {"params": ["params.yaml"], "metrics": ["metrics/headline.json"]}
PARAMS = {"layers": 8, "reward": "neutral_logit", "ppo": {"steps": 30, "batch_size": 64}}


def training(trainable_params: int) -> dict:
    """metrics/train.json as the train stage writes it."""
    return {"method": "ppo", "trainable_params": trainable_params, "diverged": False,
            "policy_samples": 1920, "scorer_calls": 1920, "gradient_steps": 60}


def review(repo: Path, *args: str, check: bool = True):
    return run(repo, sys.executable, "-m", "detox.review", *args, check=check,
               PYTHONPATH=str(ROOT / "src"))


def commit(repo: Path, params: dict, eval_metrics: dict, trainable_params: int) -> None:
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (repo / "metrics").mkdir(exist_ok=True)
    (repo / "metrics" / "headline.json").write_text(
        json.dumps(headline(eval_metrics, training(trainable_params)), indent=2))
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-q", "-m", f"layers={params['layers']}")


@pytest.fixture
def two_commits(tmp_path: Path) -> Path:
    """A repository at its second commit (layers 8 -> 10, one eval set moved) and the branch
    ``base`` at its first."""
    run(tmp_path, "git", "init", "-q")
    run(tmp_path, "dvc", "init", "-q")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML))
    commit(tmp_path, PARAMS, EVAL_JSON, trainable_params=398529)
    run(tmp_path, "git", "branch", "base")
    moved = copy.deepcopy(EVAL_JSON)
    moved["in_distribution"]["detoxified"]["mean_toxicity"] = 0.05
    commit(tmp_path, {**PARAMS, "layers": 10}, moved, trainable_params=528577)
    return tmp_path


def test_review_shows_changed_params_and_headline_metrics(two_commits):
    repo = two_commits
    review(repo, "--base", "base", "--out", "review.md")
    text = (repo / "review.md").read_text()
    first = run(repo, "git", "rev-parse", "--short", "base").stdout.strip()
    assert f"against `base` ({first})" in text
    assert "| `layers` | 8 → 10 |" in text
    assert "| `in_distribution.toxicity_detoxified` | 0.07237 → 0.05 | -0.02237 |" in text
    assert "| `trainable_params` | 398,529 → 528,577 | +130,048 |" in text
    # unchanged params and metrics are noise in a review
    for unchanged in ("reward", "ppo.steps", "batch_size", "toxicity_base", "ood_toxic",
                      "ood_benign", "diverged", "perplexity_ratio", "tokens_detoxified",
                      "policy_samples", "gradient_steps"):
        assert unchanged not in text, unchanged
    # no plot exists in this repository, so none is linked; and it is a screenful
    assert "(plots/toxicity.png)" not in text
    assert len(text.splitlines()) < 30


def test_review_against_itself_says_nothing_changed(two_commits):
    repo = two_commits
    text = review(repo, "--base", "HEAD").stdout
    assert "No param changed." in text and "No headline metric changed." in text


def test_plots_are_linked_locally_and_attached_in_ci(two_commits):
    repo = two_commits
    (repo / "plots").mkdir()
    (repo / "plots" / "toxicity.png").write_bytes(b"\x89PNG")
    local = review(repo, "--base", "base").stdout
    assert "](plots/toxicity.png)" in local and "fluency_vs_toxicity" not in local
    ci = review(repo, "--base", "base", "--plots-url", "https://ci.example/runs/7").stdout
    assert "[this CI run](https://ci.example/runs/7)" in ci and "`plots/toxicity.png`" in ci


def test_it_says_which_stages_the_runner_reran_and_which_it_restored(two_commits):
    repo = two_commits
    (repo / "in.txt").write_text("1\n")  # a stage without deps would always rerun
    run(repo, "dvc", "stage", "add", "-q", "-n", "count", "-d", "in.txt", "-o", "count.txt",
        "cp in.txt count.txt")
    ran = run(repo, "dvc", "repro")
    (repo / "count.txt").unlink()
    restored = run(repo, "dvc", "repro")  # the local run-cache has the first run
    for log, said in ((ran, "Rerun on this machine: `count`."),
                      (restored, "Restored from the run-cache, not rerun: `count`.")):
        (repo / "repro.log").write_text(log.stdout + log.stderr)
        text = review(repo, "--base", "base", "--repro-log", "repro.log").stdout
        assert "### Where the numbers come from" in text and said in text
        assert text.count("`count`") == 1
    (repo / "repro.log").write_text("")
    nothing = review(repo, "--base", "base", "--repro-log", "repro.log").stdout
    assert "No stage was rerun or restored" in nothing
    assert "Where the numbers come from" not in review(repo, "--base", "base").stdout


def test_a_missing_base_revision_is_one_line(two_commits):
    repo = two_commits
    result = review(repo, "--base", "no-such-branch", check=False)
    assert result.returncode == 2
    assert error_lines(result) == [
        "error: base revision 'no-such-branch' is not a commit of this git repository (a "
        "shallow clone? fetch the full history, e.g. actions/checkout with fetch-depth: 0)"]
    assert "Traceback" not in result.stderr


def test_a_repository_without_dvc_is_one_line(tmp_path):
    run(tmp_path, "git", "init", "-q")
    result = review(tmp_path, check=False)
    assert result.returncode == 2
    assert error_lines(result) == [f"error: {tmp_path} is not inside a DVC repository: run this "
                                   "from the project (or `dvc init` first)"]


def test_the_headline_is_a_screenful_of_named_numbers():
    flat = flatten(headline(EVAL_JSON, training(398529)))
    assert list(flat) == [f"{eval_set}.{key}" for eval_set in EVAL_JSON for key in PER_SET_KEYS] \
        + list(TRAINING_KEYS)
    assert len(flat) <= 34  # ten numbers per eval set and four of training
    # the budget in counts, never in seconds: a rerun must not move the headline by itself
    assert "train_seconds" not in flat and "scorer_calls" not in flat
    assert (flat["policy_samples"], flat["gradient_steps"]) == (1920, 60)
    assert flat["ood_toxic.emt_detoxified"] == 0.14
    assert flat["ood_toxic.tokens_detoxified"] == 9.5
    assert flat["ood_toxic.perplexity_ratio"] == round(
        EVAL_JSON["ood_toxic"]["detoxified"]["perplexity"]
        / EVAL_JSON["ood_toxic"]["base"]["perplexity"], 4)


def test_a_train_json_without_the_budget_is_one_line():
    with pytest.raises(DetoxError, match=r"^metrics/train.json has no policy_samples, "
                       r"gradient_steps: rerun the train stage"):
        headline(EVAL_JSON, {"trainable_params": 1, "diverged": False})
