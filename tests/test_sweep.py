"""The sweep view on a real DVC repository: three experiments of a toy stage that writes
metrics/headline.json from its params (no ML), then compared; a queued one is named."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from detox.review import dvc_json
from detox.sweep import read_sweep, trade_off
from project import ROOT, run

# The evaluate stage's results, made up from `layers`, through the real headline writer.
STAGE = '''
import json, yaml
from detox.headline import headline

params = yaml.safe_load(open("params.yaml"))
layers = params["layers"]

def result(base, detoxified):
    return {"base": {"mean_toxicity": base, "perplexity": 4.0},
            "detoxified": {"mean_toxicity": detoxified, "perplexity": 4.0 + layers,
                           "kl_to_base": layers / 100},
            "detoxified_minus_base": {
                "mean_toxicity": {"diff": detoxified - base, "ci_low": -1.0, "ci_high": 0.0},
                "judge_mean_toxicity": {"diff": -0.1}}}

sets = {"in_distribution": result(0.8, 0.6 / layers), "ood_toxic": result(0.7, 0.3 / layers),
        "ood_benign": result(0.1, 0.05)}
with open("metrics/headline.json", "w") as file:
    json.dump(headline(sets, 1000 * layers, diverged=layers > 9), file)
'''
PIPELINE = {"stages": {"evaluate": {
    "cmd": "python evaluate.py", "deps": ["evaluate.py"], "params": ["layers", "ppo.steps"],
    "metrics": [{"metrics/headline.json": {"cache": False}}]}}}


def dvc(repo: Path, *args: str):
    # the toy stage (and the queue's workers) import the real package
    return run(repo, "dvc", *args, PYTHONPATH=str(ROOT / "src"))


@pytest.fixture(scope="module")
def swept_repo(tmp_path_factory) -> Path:
    """A committed baseline (layers 8, 30 steps) and three finished experiments (run in the
    workspace, one after another: DVC's queue is slower to start, and the real sweep test in
    tests/test_pipeline.py runs the queue)."""
    repo = tmp_path_factory.mktemp("sweep")
    run(repo, "git", "init", "-q")
    dvc(repo, "init", "-q")
    (repo / "evaluate.py").write_text(STAGE)
    (repo / "dvc.yaml").write_text(yaml.safe_dump(PIPELINE))
    (repo / "params.yaml").write_text(yaml.safe_dump({"layers": 8, "ppo": {"steps": 30}}))
    (repo / "metrics").mkdir()
    dvc(repo, "repro", "-q")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-q", "-m", "baseline")
    for layers in (6, 8, 10):
        dvc(repo, "exp", "run", "-S", f"layers={layers}", "-S", "ppo.steps=2")
    return repo


def test_the_sweep_table_and_plot_hold_every_experiment(swept_repo):
    result = run(swept_repo, sys.executable, "-m", "detox.sweep", PYTHONPATH=str(ROOT / "src"))
    assert "3 experiments" in result.stdout
    text = (swept_repo / "metrics" / "sweep.md").read_text()
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert table[0] == "| experiment | `layers` | in_distribution | ood_toxic | ood_benign | diverged |"
    # one row per experiment, in swept order: base → detoxified (perplexity ratio), diverged
    assert [row.split(" | ")[1:] for row in table[2:]] == [
        ["6", "0.800 → 0.100 (×2.50, KL 0.060)", "0.700 → 0.050 (×2.50, KL 0.060)",
         "0.100 → 0.050 (×2.50, KL 0.060)", "no |"],
        ["8", "0.800 → 0.075 (×3.00, KL 0.080)", "0.700 → 0.037 (×3.00, KL 0.080)",
         "0.100 → 0.050 (×3.00, KL 0.080)", "no |"],
        ["10", "0.800 → 0.060 (×3.50, KL 0.100)", "0.700 → 0.030 (×3.50, KL 0.100)",
         "0.100 → 0.050 (×3.50, KL 0.100)", "yes |"]]
    # what every experiment changed from the baseline is said once, not as a column
    assert "All experiments: `ppo.steps=2`." in text
    assert "![toxicity against perplexity ratio per eval set](../plots/sweep.png)" in text
    assert (swept_repo / "plots" / "sweep.png").read_bytes()[:4] == b"\x89PNG"

    drawn = trade_off(read_sweep(dvc_json(swept_repo, "exp", "show")))
    # one labelled point per experiment at (perplexity ratio, detoxified toxicity): a
    # trade-off, not a line through unrelated experiments; the base model once per set
    assert drawn.labels == ["layers=6", "layers=8", "layers=10"]
    assert drawn.points["in_distribution"] == [pytest.approx(point) for point in
                                               [(2.5, 0.1), (3.0, 0.075), (3.5, 0.06)]]
    assert drawn.points["ood_benign"] == [pytest.approx(point) for point in
                                          [(2.5, 0.05), (3.0, 0.05), (3.5, 0.05)]]
    assert drawn.base == {"in_distribution": 0.8, "ood_toxic": 0.7, "ood_benign": 0.1}


def test_queued_experiments_are_named_not_tabulated(swept_repo):
    dvc(swept_repo, "exp", "run", "--queue", "-S", "layers=12", "-n", "later")
    try:
        run(swept_repo, sys.executable, "-m", "detox.sweep", "--out", "sweep.md",
            "--plot", "sweep.png", PYTHONPATH=str(ROOT / "src"))
    finally:
        dvc(swept_repo, "queue", "remove", "--all")
    text = (swept_repo / "sweep.md").read_text()
    assert "Without results: later (queued)." in text
    assert len([line for line in text.splitlines() if line.startswith("| ")]) == 2 + 3
    assert "](sweep.png)" in text
