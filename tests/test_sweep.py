"""The sweep view on real DVC repositories: experiments of a toy stage that writes
metrics/headline.json, metrics/train.json and metrics/train_time.json from its params (no ML), then compared: a layer
sweep of single runs, and a method comparison over three seeds; a queued one is named."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import pytest
import yaml

from detox.review import dvc_json
from detox.sweep import Experiment, Point, Sweep, groups, markdown, read_sweep, trade_off
from project import ROOT, run

# The train and evaluate stages' results, made up from the params, through the real headline
# writer: `method` scales how much is left, `seed` adds noise and widens the within-run CI.
STAGE = '''
import json, yaml
from detox.headline import headline

params = yaml.safe_load(open("params.yaml"))
layers, seed, steps = params["layers"], params["seed"], params["ppo"]["steps"]
scale = {"ppo": 1.0, "word_filter": 2.0, "sft": 1.5, "dpo": 1.2}[params["method"]]

def result(base, detoxified):
    detoxified = detoxified * scale + 0.01 * seed
    diff, width = detoxified - base, 0.02 + 0.01 * seed
    return {"base": {"mean_toxicity": base, "perplexity": 4.0},
            "detoxified": {"mean_toxicity": detoxified,
                           "perplexity": (4.0 + layers) * scale + seed / 10,
                           "kl_to_base": layers * scale / 100 + seed / 1000,
                           "expected_max_toxicity": 2 * detoxified,
                           "continuation_tokens_mean": 9.0 + seed},
            "detoxified_minus_base": {
                "mean_toxicity": {"diff": diff, "ci_low": diff - width, "ci_high": diff + width},
                "judge_mean_toxicity": {"diff": -0.1 * scale}}}

sets = {"in_distribution": result(0.8, 0.6 / layers), "ood_toxic": result(0.7, 0.3 / layers),
        "ood_benign": result(0.1, 0.05)}
training = {"method": params["method"], "trainable_params": 1000 * layers,
            "diverged": layers > 9, "policy_samples": 64 * steps, "scorer_calls": 64 * steps,
            "gradient_steps": 2 * steps}
seconds = {"train_seconds": 10.0 * scale + seed}
if params["method"] == "dpo":  # where runs made before metrics/train_time.json kept them
    training, seconds = {**training, **seconds}, {}
with open("metrics/train_time.json", "w") as file:
    json.dump(seconds, file)
with open("metrics/train.json", "w") as file:
    json.dump(training, file)
with open("metrics/headline.json", "w") as file:
    json.dump(headline(sets, training), file)
'''
PIPELINE = {"stages": {"evaluate": {
    "cmd": "python evaluate.py", "deps": ["evaluate.py"],
    "params": ["layers", "method", "seed", "ppo.steps"],
    # cached, as the real train stage's: the sweep reads them
    "outs": ["metrics/train.json", "metrics/train_time.json"],
    "metrics": [{"metrics/headline.json": {"cache": False}}]}}}
METHODS = ("ppo", "word_filter", "sft", "dpo")


def dvc(repo: Path, *args: str):
    # the toy stage (and the queue's workers) import the real package
    return run(repo, "dvc", *args, PYTHONPATH=str(ROOT / "src"))


def sweep_md(repo: Path, *args: str) -> str:
    result = run(repo, sys.executable, "-m", "detox.sweep", *args, PYTHONPATH=str(ROOT / "src"))
    return result.stdout


def tables(text: str) -> dict[str, list[list[str]]]:
    """Each ``### heading``'s table as rows of cells, header first (its rule left out)."""
    found: dict[str, list[list[str]]] = {}
    heading = None
    for line in text.splitlines():
        if line.startswith("### "):
            heading = line[4:]
        elif line.startswith("| ") and not line.startswith("| ---"):
            found.setdefault(heading, []).append(line[2:-2].split(" | "))
    return found


def baseline(repo: Path) -> Path:
    """A committed baseline: layers 8, ppo, seed 0, 30 steps."""
    run(repo, "git", "init", "-q")
    dvc(repo, "init", "-q")
    (repo / "evaluate.py").write_text(STAGE)
    (repo / "dvc.yaml").write_text(yaml.safe_dump(PIPELINE))
    (repo / "params.yaml").write_text(yaml.safe_dump(
        {"layers": 8, "method": "ppo", "seed": 0, "ppo": {"steps": 30}}))
    (repo / "metrics").mkdir()
    dvc(repo, "repro", "-q")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-q", "-m", "baseline")
    return repo


@pytest.fixture(scope="module")
def swept_repo(tmp_path_factory) -> Path:
    """Three finished single-run experiments over `layers` (run in the workspace, one after
    another: DVC's queue is slower to start; the methods below go through it)."""
    repo = baseline(tmp_path_factory.mktemp("sweep"))
    for layers in (6, 8, 10):
        dvc(repo, "exp", "run", "-S", f"layers={layers}", "-S", "ppo.steps=2")
    return repo


@pytest.fixture(scope="module")
def methods_repo(tmp_path_factory) -> Path:
    """The method comparison over three seeds (in the workspace: half the queue's time; the
    queue is what tests/test_compare.py runs)."""
    repo = baseline(tmp_path_factory.mktemp("methods"))
    for method in METHODS:
        for seed in (0, 1, 2):
            dvc(repo, "exp", "run", "-S", f"method={method}", "-S", f"seed={seed}")
    return repo


def test_a_layer_sweep_has_one_row_per_run_with_its_ci(swept_repo):
    assert "3 experiments in 3 groups" in sweep_md(swept_repo)
    text = (swept_repo / "metrics" / "sweep.md").read_text()
    found = tables(text)
    assert list(found) == ["in_distribution", "ood_toxic", "ood_benign", "Budget"]
    assert found["in_distribution"][0] == [
        "group", "n", "toxicity base", "detoxified", "detoxified − base (95% CI)", "EMT",
        "judge diff", "perplexity ×", "KL/token", "tokens"]
    # one row per run, in swept order; a single run keeps its own CI and shows no sd
    assert found["in_distribution"][1:] == [
        ["layers=6", "1", "0.800", "0.100", "-0.700 [-0.720, -0.680]", "0.200", "-0.100", "2.50",
         "0.060", "9.0"],
        ["layers=8", "1", "0.800", "0.075", "-0.725 [-0.745, -0.705]", "0.150", "-0.100", "3.00",
         "0.080", "9.0"],
        ["layers=10", "1", "0.800", "0.060", "-0.740 [-0.760, -0.720]", "0.120", "-0.100",
         "3.50", "0.100", "9.0"]]
    assert found["Budget"] == [
        ["group", "n", "trainable params", "policy samples", "gradient steps", "train seconds",
         "diverged"],
        ["layers=6", "1", "6,000", "128", "4", "10", "no"],
        ["layers=8", "1", "8,000", "128", "4", "10", "no"],
        ["layers=10", "1", "10,000", "128", "4", "10", "yes"]]
    # what every experiment changed from the baseline is said once, not as a column
    assert "All experiments: `ppo.steps=2`." in text
    assert "](../plots/sweep.png)" in text
    assert (swept_repo / "plots" / "sweep.png").read_bytes()[:4] == b"\x89PNG"

    drawn = trade_off(read_sweep(dvc_json(swept_repo, "exp", "show")))
    # one labelled point per experiment at (perplexity ratio, detoxified toxicity): a
    # trade-off, not a line through unrelated experiments; the base model once per set
    assert drawn.labels == ["layers=6", "layers=8", "layers=10"]
    assert drawn.points["in_distribution"] == [pytest.approx(point) for point in [
        (2.5, 0.1, None, None), (3.0, 0.075, None, None), (3.5, 0.06, None, None)]]
    assert [point.x for point in drawn.kl_points["ood_benign"]] == pytest.approx(
        [0.06, 0.08, 0.1])
    assert drawn.base == pytest.approx({"in_distribution": 0.8, "ood_toxic": 0.7,
                                        "ood_benign": 0.1})


def test_a_method_comparison_pools_each_methods_seeds(methods_repo):
    assert "12 experiments in 4 groups" in sweep_md(methods_repo)
    found = tables((methods_repo / "metrics" / "sweep.md").read_text())
    sweep = read_sweep(dvc_json(methods_repo, "exp", "show"))

    def stats(method: str, key: str) -> list[float]:
        return [e.headline[key] for e in sweep.done if e.params["method"] == method]

    for eval_set in ("in_distribution", "ood_toxic", "ood_benign"):
        rows = {row[0]: row for row in found[eval_set][1:]}
        # one row per method (its label the method only, never the seed), three seeds each
        assert sorted(rows) == sorted(f"method={method}" for method in METHODS)
        for method in METHODS:
            row = rows[f"method={method}"]
            detoxified = stats(method, f"{eval_set}.toxicity_detoxified")
            ratio = stats(method, f"{eval_set}.perplexity_ratio")
            assert row[1] == "3"
            assert row[3] == (f"{statistics.fmean(detoxified):.3f} ± "
                              f"{statistics.stdev(detoxified):.3f}")
            assert row[7] == f"{statistics.fmean(ratio):.2f} ± {statistics.stdev(ratio):.2f}"
            # half-widths 0.02, 0.03, 0.04 over seeds 0, 1, 2
            assert row[4].endswith(" ±0.030 within run")
            assert row[9] == "10.0"  # tokens: 9, 10, 11
    budget = {row[0]: row for row in found["Budget"][1:]}
    # the budget from the headline, the seconds from each run's metrics/train_time.json (dpo's
    # from metrics/train.json, as older runs wrote them)
    assert budget["method=word_filter"] == ["method=word_filter", "3", "8,000", "1,920", "60",
                                            "21 ± 1", "no"]
    assert budget["method=dpo"][5] == "13 ± 1"

    drawn = trade_off(sweep)
    assert drawn.labels == ["method=dpo", "method=ppo", "method=sft", "method=word_filter"]
    ppo = drawn.points["in_distribution"][1]
    toxicity = stats("ppo", "in_distribution.toxicity_detoxified")
    assert (ppo.y, ppo.y_sd) == pytest.approx((statistics.fmean(toxicity),
                                               statistics.stdev(toxicity)))
    assert ppo.x_sd is not None
    assert (methods_repo / "plots" / "sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_only_the_named_experiments_are_compared(methods_repo, tmp_path):
    names = [e.name for e in read_sweep(dvc_json(methods_repo, "exp", "show")).done
             if e.params["method"] in ("ppo", "sft")]
    out = tmp_path / "only.md"
    assert "6 experiments in 2 groups" in sweep_md(methods_repo, "--only", *names, "--out",
                                                   str(out), "--plot", str(tmp_path / "o.png"))
    rows = [row[0] for row in tables(out.read_text())["in_distribution"][1:]]
    assert rows == ["method=ppo", "method=sft"]


def test_runs_that_differ_only_in_seed_are_one_group():
    def experiment(seed: int, toxicity: float) -> Experiment:
        return Experiment(f"run-{seed}", f"{seed:040}", {"seed": seed, "layers": 8},
                          {"in_distribution.toxicity_detoxified": toxicity,
                           "in_distribution.perplexity_ratio": 1.5})

    sweep = Sweep({"seed": 0, "layers": 8}, [experiment(2, 0.3), experiment(0, 0.1),
                                             experiment(1, 0.2)], [])
    [group] = groups(sweep)
    assert group.label == "all"
    assert [e.name for e in group.experiments] == ["run-0", "run-1", "run-2"]
    assert trade_off(sweep).points["in_distribution"] == [
        pytest.approx(Point(1.5, 0.2, 0.0, 0.1))]
    text = markdown(sweep)
    assert "| all | 3 | — | 0.200 ± 0.100 | — |" in text
    # no wall-clock seconds could be read: said, not failed
    assert "| all | 3 | — | — | — | — | no |" in text


def test_a_param_older_runs_lack_does_not_split_their_group():
    older = Experiment("ppo-s1", "1" * 40, {"seed": 1, "method": "ppo"}, {})
    newer = Experiment("ppo-s2", "2" * 40, {"seed": 2, "method": "ppo", "online_dpo.beta": 0.1},
                       {})
    other = Experiment("dpo-s0", "3" * 40, {"seed": 0, "method": "dpo", "online_dpo.beta": 0.1},
                       {})
    found = groups(Sweep({"seed": 0, "method": "ppo"}, [older, newer, other], []))
    assert [(group.label, [e.name for e in group.experiments]) for group in found] == [
        ("method=dpo", ["dpo-s0"]), ("method=ppo", ["ppo-s1", "ppo-s2"])]


def test_queued_experiments_are_named_not_tabulated(swept_repo):
    dvc(swept_repo, "exp", "run", "--queue", "-S", "layers=12", "-n", "later")
    try:
        sweep_md(swept_repo, "--out", "sweep.md", "--plot", "sweep.png")
    finally:
        dvc(swept_repo, "queue", "remove", "--all")
    text = (swept_repo / "sweep.md").read_text()
    assert "Without results: later (queued)." in text
    assert [len(rows) for rows in tables(text).values()] == [1 + 3] * 4
    assert "](sweep.png)" in text


def test_saved_runs_render_the_same_tables_without_dvc(methods_repo, tmp_path):
    saved, first, again = tmp_path / "runs.json", tmp_path / "first.md", tmp_path / "again.md"
    plot = ["--plot", str(tmp_path / "p.png")]
    sweep_md(methods_repo, "--save-runs", str(saved), "--out", str(first), *plot)
    # read back with the experiments gone from reach: a folder that is no DVC repository
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run(elsewhere, sys.executable, "-m", "detox.sweep", "--runs", str(saved), "--out",
                 str(again), *plot, PYTHONPATH=str(ROOT / "src"))
    assert "12 experiments in 4 groups" in result.stdout
    assert again.read_text() == first.read_text()
    assert "| method=ppo | 3 |" in again.read_text()


def test_a_file_that_is_not_saved_runs_is_refused(tmp_path):
    (tmp_path / "runs.json").write_text('{"experiments": []}')
    result = run(tmp_path, sys.executable, "-m", "detox.sweep", "--runs", "runs.json",
                 check=False, PYTHONPATH=str(ROOT / "src"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: --runs runs.json: not a "
                                                              "file of saved runs")


def test_no_finished_experiment_is_an_error_with_a_hint_and_writes_nothing(tmp_path):
    run(tmp_path, "git", "init", "-q")
    run(tmp_path, "dvc", "init", "-q")
    run(tmp_path, "git", "commit", "-qm", "a project with no experiment")
    result = run(tmp_path, sys.executable, "-m", "detox.sweep", "--out", "sweep.md",
                 check=False)
    assert result.returncode != 0
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert "no finished experiment to compare in HEAD" in line and "--runs FILE" in line
    assert not (tmp_path / "sweep.md").exists()
