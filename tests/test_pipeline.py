"""End to end: the real `dvc repro` / `dvc exp run` on a copy of the project, reduced eval size.

Runs the offline default (builtin corpus, tiny GPT-Neo, profanity-check) through DVC in a fresh
git repo; takes a few minutes on two CPU cores.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from detox.download.builtin import corpus
from detox.headline import flatten
from detox.model_card import CARD_METRICS
from detox.review import dvc_json
from detox.sweep import read_sweep
from detox.train.word_filter import load_words

from project import ROOT, copy_project, error_lines, run, set_params

EVAL_PROMPTS = 48


def metrics(repo: Path, name: str) -> dict:
    return json.loads((repo / "metrics" / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = copy_project(tmp_path_factory.mktemp("project"))
    set_params(repo, **{"data.eval_prompts": EVAL_PROMPTS})
    run(repo, "dvc", "repro")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "baseline")
    return repo


def test_repro_detoxifies_and_writes_declared_outputs(repo):
    evaluation = metrics(repo, "eval")
    assert set(evaluation) == {"in_distribution", "ood_toxic", "ood_benign"}
    k = yaml.safe_load((ROOT / "params.yaml").read_text())["eval"]["samples_per_prompt"]
    for by_model in evaluation.values():
        for model in ("base", "detoxified"):
            summary = by_model[model]
            assert summary["prompts"] == EVAL_PROMPTS and summary["n"] == EVAL_PROMPTS * k
            assert 0 <= summary["mean_toxicity"] <= summary["expected_max_toxicity"] <= 1
            assert summary["perplexity"] > 1
            assert summary["kl_to_base"] >= 0 and 0 < summary["distinct_2_per_prompt"] <= 1
        assert by_model["base"]["kl_to_base"] == 0  # the base's own samples
        difference = by_model["detoxified_minus_base"]["mean_toxicity"]
        assert difference["ci_low"] <= difference["diff"] <= difference["ci_high"]
    for toxic_set in ("in_distribution", "ood_toxic"):
        base = evaluation[toxic_set]["base"]["mean_toxicity"]
        assert evaluation[toxic_set]["detoxified"]["mean_toxicity"] <= base / 2

    # PPO reads no samples: none were drawn
    samples = json.loads((repo / "data/samples/summary.json").read_text())
    assert samples["policy_samples"] == 0 and not (repo / "data/samples/train.parquet").exists()

    training = metrics(repo, "train")
    assert training["steps"] == yaml.safe_load((ROOT / "params.yaml").read_text())["ppo"]["steps"]
    assert training["score_mean_end"] > training["score_mean_start"]
    assert 0 < training["trainable_params"] < training["total_params"]

    report = (repo / "metrics/report.md").read_text()
    assert "## Base model performance" in report and "Exp. Max Toxicity" in report
    for path in ("data/models/detoxified/config.json", "plots/toxicity.png",
                 "plots/toxicity_histograms.png", "plots/fluency_vs_toxicity.png",
                 "plots/train/plots/metrics/score_mean.tsv", "plots/eval_toxicity.csv",
                 "data/rollouts/ood_benign.parquet", "data/raw/train.json",
                 "data/models/base/source.json"):
        assert (repo / path).is_file(), path


def test_dvc_plots_show_renders_every_training_stat_per_step_and_the_method_s_panels(repo):
    shown = json.loads(run(repo, "dvc", "plots", "show", "--json").stdout)
    assert not shown.get("errors")  # no panel names a file this method did not write
    rendered = shown["data"]
    steps = yaml.safe_load((ROOT / "params.yaml").read_text())["ppo"]["steps"]
    series = {}  # train's dvclive series: stat -> the steps drawn
    for name, plots in rendered.items():
        if name.startswith("plots/train/plots/metrics/"):
            for plot in plots:
                series[Path(name).stem] = [int(row["step"])
                                           for row in plot["content"]["data"]["values"]]
    assert {"score_mean", "reward_mean", "kl", "kl_coef", "entropy", "loss_policy",
            "loss_value", "clipfrac_policy", "toxicity_mean", "response_tokens"} <= set(series)
    assert all(sorted(found) == list(range(1, steps + 1)) for found in series.values())
    assert [plot["type"] for plot in rendered["plots/train/panels.png"]] == ["image"]


def test_the_detoxified_folder_loads_and_carries_a_model_card_with_the_eval_results(repo):
    folder = repo / "data/models/detoxified"
    weights = AutoModelForCausalLM.from_pretrained(folder).state_dict()
    assert AutoTokenizer.from_pretrained(folder).eos_token_id is not None
    trained = load_file(repo / "data/models/trained/model.safetensors")
    base = load_file(repo / "data/models/base/model.safetensors")
    assert trained and set(trained) <= set(weights)
    assert all(torch.equal(weights[name], tensor) for name, tensor in trained.items())
    assert any(not torch.equal(base[name], tensor) for name, tensor in trained.items())
    card = ModelCard.load(folder / "README.md")
    evaluation = metrics(repo, "eval")
    assert {(r.dataset_name, r.metric_type): r.metric_value for r in card.data.eval_results} \
        == {(name, key): evaluation[name]["detoxified"][key]
            for name in evaluation for key, _ in CARD_METRICS}
    training = metrics(repo, "train")
    assert f"{training['trainable_params']:,} of {training['total_params']:,}" in card.text
    assert "## How to load" in card.text and "## Evaluation" in card.text


def test_the_published_folder_is_a_registry_artifact_got_by_name(repo, tmp_path):
    run(repo, "git", "tag", "-a", "detoxified@v1.0.0", "-m", "Registering artifact")
    try:
        run(tmp_path, "dvc", "artifacts", "get", str(repo), "detoxified", "--rev", "v1.0.0",
            "-o", "got")
    finally:
        run(repo, "git", "tag", "-d", "detoxified@v1.0.0")
    got, published = tmp_path / "got", repo / "data/models/detoxified"
    assert sorted(p.name for p in got.iterdir()) == sorted(p.name for p in published.iterdir())
    assert (got / "README.md").read_text() == (published / "README.md").read_text()


def test_eval_sets_share_no_prompt_with_train(repo):
    train = set(pd.read_parquet(repo / "data/prompts/train.parquet")["prompt"])
    for name in ("in_distribution", "ood_toxic", "ood_benign"):
        held_out = pd.read_parquet(repo / f"data/prompts/{name}.parquet")["prompt"]
        assert held_out.is_unique and not held_out.isin(train).any(), name
    evaluation = metrics(repo, "eval")
    for by_model in evaluation.values():
        for model in ("base", "detoxified"):
            assert 0 <= by_model[model]["empty_share"] <= 1
            assert by_model[model]["continuation_tokens_mean"] > 0


def test_second_repro_runs_nothing(repo):
    result = run(repo, "dvc", "repro")
    assert "Running stage" not in result.stdout
    assert "up to date" in result.stdout


@pytest.mark.parametrize("change, stages", [
    # another method: what the method reads is rewritten first (then train, and sample where
    # the method reads samples); download_given writes again that there is none to evaluate
    ({"method": "word_filter"}, {"method_inputs", "download_given"}),
    ({"method": "sft"}, {"method_inputs", "download_given"}),
    ({"samples.total": 64}, {"sample"}),  # the samples' own params: nothing else until they move
    ({"eval.batch_size": 8}, {"evaluate"}),
    # another method's params, or the model given to method=given: method_inputs and
    # download_given rerun and write what they wrote (the next test), never train itself
    ({"dpo.beta": 0.2}, {"method_inputs"}),
    ({"model.given": "builtin:tiny-gpt-neo"}, {"download_given"}),
    ({"ppo.steps": 3}, {"method_inputs"}),  # then train: its file moves
    ("src/detox/train/dpo.py", {"train"}),  # a method's code: training only, never evaluate
    ("src/detox/train/params.py", {"method_inputs", "train"}),  # it checks every method's
    ("src/detox/evaluate/report.py", {"evaluate"}),
])
def test_dvc_status_lists_exactly_the_stages_a_change_reruns(repo, change, stages):
    if isinstance(change, dict):
        set_params(repo, **change)
    else:
        with open(repo / change, "a") as edited:
            edited.write("\n# an edit\n")
    try:
        status = json.loads(run(repo, "dvc", "status", "--json").stdout)
    finally:
        run(repo, "git", "checkout", "-q", "--", ".")
    assert set(status) == stages


def test_another_method_s_params_rerun_only_what_writes_the_same_file(repo):
    set_params(repo, **{"dpo.beta": 0.2, "online_dpo.learning_rate": 1e-3,
                        "model.given": "builtin:tiny-gpt-neo"})
    try:
        result = run(repo, "dvc", "repro")
        status = json.loads(run(repo, "dvc", "status", "--json").stdout)
    finally:
        run(repo, "git", "checkout", "-q", "--", ".")
    assert "Running stage 'method_inputs'" in result.stdout
    assert "Running stage 'download_given'" in result.stdout
    assert "Running stage 'train'" not in result.stdout and status == {}


def test_train_refuses_a_method_params_file_other_than_params_yaml_s(repo):
    set_params(repo, **{"ppo.steps": 3})  # without rerunning method_inputs
    try:
        result = run(repo, sys.executable, "stages/train.py", check=False)
    finally:
        run(repo, "git", "checkout", "-q", "--", ".")
    assert result.returncode != 0
    assert error_lines(result) == [
        "error: data/method_params.json is not params.yaml's ppo params: run `dvc repro` (its "
        "method_inputs stage writes it)"]


@pytest.mark.slow
def test_an_edit_of_training_code_retrains_but_reruns_nothing_after_train(repo):
    read_by_evaluate = (repo / "metrics" / "train.json").read_text()
    with open(repo / "src/detox/train/ppo.py", "a") as edited:
        edited.write("\n# an edit\n")
    try:
        result = run(repo, "dvc", "repro")
    finally:
        run(repo, "git", "checkout", "-q", "--", ".")
    assert "Running stage 'train'" in result.stdout
    # the same seed made the same model and summary; only the wall clock moved, and no stage
    # reads it
    assert "Running stage 'evaluate'" not in result.stdout
    assert (repo / "metrics" / "train.json").read_text() == read_by_evaluate
    assert json.loads((repo / "metrics" / "train_time.json").read_text())["train_seconds"] > 0


@pytest.mark.slow
def test_same_seed_gives_identical_metrics(repo):
    before = (repo / "metrics" / "eval.json").read_text()
    run(repo, "dvc", "repro", "--force", "--single-item", "train")
    run(repo, "dvc", "repro", "--force", "--single-item", "evaluate")
    assert (repo / "metrics" / "eval.json").read_text() == before


@pytest.mark.slow
def test_exp_run_more_layers_trains_more_parameters(repo):
    baseline = metrics(repo, "train")["trainable_params"]
    # Hydra composes params.yaml from conf/ on `exp run`: the reduced eval size is passed again.
    run(repo, "dvc", "exp", "run", "-S", "layers=10", "-S", f"data.eval_prompts={EVAL_PROMPTS}")
    assert metrics(repo, "train")["trainable_params"] > baseline
    diff = run(repo, "dvc", "metrics", "diff", "--json").stdout
    changed = json.loads(diff)["metrics/headline.json"]
    assert changed["trainable_params"]["diff"] > 0
    # the headline only: a screenful, and no wall-clock number that changes by itself
    table = run(repo, "dvc", "metrics", "diff", "--all").stdout
    assert len(table.strip().splitlines()) <= 36  # 34 headline metrics, the header, its rule
    assert "seconds" not in table and "metrics/eval.json" not in table
    assert "trainable_params" in run(repo, "dvc", "exp", "show", "--csv").stdout
    run(repo, "git", "checkout", "-q", "--", ".")
    run(repo, "dvc", "checkout", "-q")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["word_filter", "sft", "dpo", "online_dpo"])
def test_each_baseline_runs_through_exp_run_is_scored_and_published(repo, method):
    """`dvc exp run -S method=...` on the offline default: evaluate scores what the method
    built, the published folder loads and its card names the method and its budget."""
    log = run(repo, "dvc", "exp", "run", "-S", f"method={method}", "-S",
              f"data.eval_prompts={EVAL_PROMPTS}").stdout
    # from the PPO baseline, which drew no samples: the word filter and online DPO read none
    # either, sft draws them (dpo may find sft's in the run-cache)
    if method in ("word_filter", "sft", "online_dpo"):
        assert ("Running stage 'sample'" in log) == (method == "sft")
    training, evaluation = metrics(repo, "train"), metrics(repo, "eval")
    assert training["method"] == method and not training["diverged"]
    if method != "word_filter":  # whose drop is within noise here: it bans few corpus words
        for toxic_set in ("in_distribution", "ood_toxic"):
            scores = evaluation[toxic_set]
            assert scores["detoxified"]["mean_toxicity"] < scores["base"]["mean_toxicity"]
    # its own panels, and no panel that names a file this method did not write
    shown = json.loads(run(repo, "dvc", "plots", "show", "--json").stdout)
    assert not shown.get("errors") and "plots/train/panels.png" in shown["data"]
    folder = repo / "data/models/detoxified"
    model = AutoModelForCausalLM.from_pretrained(folder)
    base = load_file(repo / "data/models/base/model.safetensors")
    weights = load_file(folder / "model.safetensors")
    card = ModelCard.load(folder / "README.md").text
    assert f"| method | `{method}` |" in card
    assert f"{training['policy_samples']:,} policy samples drawn" in card
    if method == "word_filter":
        assert model.generation_config.bad_words_ids
        # the corpus's curses that the list bans: in the base's continuations, never in its own
        banned = [w for w in corpus.CURSES if w in load_words(training["word_list"])]
        rollouts = pd.read_parquet(repo / "data/rollouts/in_distribution.parquet")
        said = rollouts["continuation"].str.contains(rf"\b(?:{'|'.join(banned)})\b")
        assert banned and said[rollouts["model"] == "base"].any()
        assert not said[rollouts["model"] == "detoxified"].any()
        assert all(torch.equal(weights[name], base[name]) for name in base)
        assert training["gradient_steps"] == training["policy_samples"] == 0
    elif method == "online_dpo":  # PPO's budget, two samples per prompt per step
        assert training["policy_samples"] == training["scorer_calls"] == 2 * training["pairs"]
        assert training["policy_samples"] == 1920 and training["gradient_steps"] == 60
        assert any(not torch.equal(weights[name], base[name]) for name in base)
    else:
        samples = json.loads((repo / "data/samples/summary.json").read_text())
        assert training["policy_samples"] == samples["policy_samples"] == 1920
        assert training["gradient_steps"] > 0 and training["loss_end"] < training["loss_start"]
        assert any(not torch.equal(weights[name], base[name]) for name in base)
    run(repo, "git", "checkout", "-q", "--", ".")
    run(repo, "dvc", "checkout", "-q")


@pytest.mark.slow
def test_a_given_model_is_evaluated_as_the_pipeline_evaluates_its_own(repo, tmp_path):
    """`method=given` on the baseline's published PPO model (a folder outside the project):
    the same prompts, seeds and weights give the PPO run's evaluation, number for number."""
    published = tmp_path / "published"
    shutil.copytree(repo / "data/models/detoxified", published)
    evaluated = metrics(repo, "eval")
    run(repo, "dvc", "exp", "run", "-S", "method=given", "-S", f"model.given={published}",
        "-S", f"data.eval_prompts={EVAL_PROMPTS}")
    training, given = metrics(repo, "train"), metrics(repo, "eval")
    assert training["method"] == "given" and training["given"] == str(published)
    assert training["policy_samples"] == training["gradient_steps"] == 0
    for eval_set, by_model in evaluated.items():
        for model in ("base", "detoxified"):
            for key in ("mean_toxicity", "judge_mean_toxicity", "perplexity", "kl_to_base"):
                assert given[eval_set][model][key] == by_model[model][key], (eval_set, key)
    card = ModelCard.load(repo / "data/models/detoxified/README.md").text
    assert f"| given model | `{published}`" in card and "## Evaluation" in card
    run(repo, "git", "checkout", "-q", "--", ".")
    run(repo, "dvc", "checkout", "-q")


def test_a_given_model_with_another_vocabulary_is_refused_in_one_line(repo, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    other = tmp_path / "other"
    tokenizer = AutoTokenizer.from_pretrained(repo / "data/models/base")
    tokenizer.add_tokens(["<an-extra-token>"])
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_layer=1, n_embd=8, n_head=2)
                    ).save_pretrained(other)
    tokenizer.save_pretrained(other)
    set_params(repo, method="given", **{"model.given": str(other)})
    try:
        result = run(repo, "dvc", "repro", "train", check=False)
        # nothing half-written: DVC cleared train's outputs, and the stage wrote none
        cleared = (not (repo / "data/models/trained").exists()
                   and not list(repo.rglob(".tmp.*")))
    finally:
        run(repo, "git", "checkout", "-q", "--", ".")
        run(repo, "dvc", "checkout", "-q")  # the baseline's outputs back, for the next tests
    assert result.returncode != 0 and cleared
    (line,) = error_lines(result)
    assert "reads another vocabulary than the base policy" in line


# the output of the stage that refuses them: train for what only the loaded policy can tell,
# method_inputs (which checks every method's params) for the rest
@pytest.mark.parametrize("override, param, refused_by", [
    ({"layers": 13}, "layers", "data/models/trained"),
    pytest.param({"reward": "foo"}, "reward", "data/method_params.json", marks=pytest.mark.slow),
    pytest.param({"layers": 0}, "layers", "data/method_params.json", marks=pytest.mark.slow),
    pytest.param({"ppo.batch_size": -4}, "ppo.batch_size", "data/method_params.json",
                 marks=pytest.mark.slow),
])
def test_bad_params_fail_in_one_line_and_leave_no_partial_outputs(repo, override, param,
                                                                  refused_by):
    set_params(repo, **override)
    try:
        result = run(repo, "dvc", "repro", check=False)
    finally:
        run(repo, "git", "checkout", "-q", "--", "params.yaml")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    errors = error_lines(result)
    assert len(errors) == 1 and f"{param}=" in errors[0], output
    assert not list(repo.rglob(".tmp.*"))
    assert not (repo / refused_by).exists()


SHORT = ("-S", "ppo.steps=2", "-S", f"data.eval_prompts={EVAL_PROMPTS}")


@pytest.mark.slow
def test_a_queued_layer_sweep_is_compared_then_restored_from_a_remote(repo, tmp_path):
    """The paper's layer ablation as documented, shortened; then, from a fresh clone, one of
    its experiments restored from the remote's run-cache without running a stage."""
    run(repo, "dvc", "exp", "remove", "--all-commits")  # other tests' experiments
    run(repo, "dvc", "exp", "run", "--queue", "-S", "layers=6,8,10", *SHORT)
    # the queue runs the code it was queued with, whatever the workspace holds meanwhile
    stage_py = repo / "src/detox/stage.py"
    queued_code = stage_py.read_text()
    stage_py.write_text(queued_code + '\nraise RuntimeError("the workspace\'s later code")\n')
    try:
        run(repo, "dvc", "exp", "run", "--run-all")  # runs the queue, returns when it is done
    finally:
        stage_py.write_text(queued_code)
    result = run(repo, sys.executable, "-m", "detox.sweep")
    assert "3 experiments" in result.stdout
    first_table = (repo / "metrics/sweep.md").read_text().split("\n### ")[1]
    rows = [line for line in first_table.splitlines() if line.startswith("| layers=")]
    assert [row.split(" | ")[0] for row in rows] == ["| layers=6", "| layers=8", "| layers=10"]
    assert (repo / "plots/sweep.png").read_bytes()[:4] == b"\x89PNG"
    sweep = read_sweep(dvc_json(repo, "exp", "show"))
    expected = next(e.headline for e in sweep.done if e.params["layers"] == 10)

    run(repo, "dvc", "remote", "add", "-d", "local", str(tmp_path / "remote"))
    shared = run(repo, sys.executable, "-m", "detox.share")
    assert "every run's outputs are on the remote" in shared.stdout
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    run(clone, "dvc", "remote", "add", "-d", "local", str(tmp_path / "remote"))
    restored = run(clone, "dvc", "exp", "run", "--pull", "--allow-missing", "-S", "layers=10",
                   *SHORT)
    assert "Running stage" not in restored.stdout, restored.stdout
    for stage in ("train", "evaluate"):
        assert f"Stage '{stage}' is cached - skipping run" in restored.stdout
    assert flatten(metrics(clone, "headline")) == expected
    assert ModelCard.load(clone / "data/models/detoxified/README.md").data.eval_results
    for path in ("metrics/report.md", "metrics/eval.json", "plots/toxicity.png"):
        assert (clone / path).is_file(), path
