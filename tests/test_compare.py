"""The method comparison command: the dvc command lines it builds, its one-line errors, and
(on the toy stage of tests/test_sweep.py, no ML) a small comparison queued, run and tabulated."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from detox import DetoxError
from detox.compare import COMPARED, queue_commands
from detox.review import DVC
from project import ROOT, error_lines, run
from test_sweep import baseline, tables


def compare(repo: Path, *args: str, check: bool = True):
    return run(repo, sys.executable, "-m", "detox.compare", *args, check=check,
               PYTHONPATH=str(ROOT / "src"))


def test_one_named_experiment_per_method_and_seed():
    commands = queue_commands(COMPARED, [0, 1, 2], ["preset=paper-rtp"])
    assert all(command[:len(DVC)] == list(DVC) for command in commands)
    shown = [" ".join(command[len(DVC):]) for command in commands]
    assert len(shown) == 3 * len(COMPARED) and "given" not in COMPARED  # given is on demand
    assert shown[0] == ("exp run --queue -S method=ppo -S seed=0 -S preset=paper-rtp -n ppo-s0")
    assert shown[-1] == ("exp run --queue -S method=online_dpo -S seed=2 -S preset=paper-rtp "
                         "-n online_dpo-s2")
    assert [command[-1] for command in commands[3:6]] == [
        "word_filter-s0", "word_filter-s1", "word_filter-s2"]
    # a method or seed given twice is queued once (DVC would refuse the second name)
    assert len(queue_commands(["sft", "sft"], [1, 1])) == 1


def test_the_dry_run_prints_the_commands_and_runs_nothing(tmp_path):
    printed = compare(tmp_path, "--dry-run", "--methods", "ppo", "word_filter", "--seeds", "7",
                      "-S", "ppo.steps=2", "-j", "2").stdout.splitlines()
    assert printed == [
        "dvc exp run --queue -S method=ppo -S seed=7 -S ppo.steps=2 -n ppo-s7",
        "dvc exp run --queue -S method=word_filter -S seed=7 -S ppo.steps=2 -n word_filter-s7",
        "dvc exp run --run-all --jobs 2"]


@pytest.mark.parametrize("args, error", [
    (["--methods", "ppo", "rlhf"],
     "error: unknown method 'rlhf': the methods are ppo, word_filter, sft, dpo, online_dpo, "
     "given"),
    (["-S", "seed=4"], "error: -S seed=4: choose methods and seeds with --methods and --seeds"),
    (["-S", "params.yaml:method=sft"], "error: -S params.yaml:method=sft: choose methods and "
                                       "seeds with --methods and --seeds"),
    (["-S", "layers"], "error: -S 'layers' is not key=value"),
])
def test_bad_arguments_are_one_line(tmp_path, args, error):
    result = compare(tmp_path, "--dry-run", *args, check=False)
    assert result.returncode == 2 and error_lines(result) == [error]
    assert "Traceback" not in result.stderr
    with pytest.raises(DetoxError):
        queue_commands(["ppo"], [0], ["layers"])


@pytest.mark.slow  # half a minute of DVC's queue, though no ML
def test_a_small_comparison_is_queued_run_and_tabulated(tmp_path):
    """Two methods, two seeds, through DVC's queue on the toy stage: named experiments, one row
    per method; asked again on the same commit, it refuses before queueing anything; an
    experiment that fails is an error, not a row quietly missing."""
    repo = baseline(tmp_path)
    result = compare(repo, "--methods", "ppo", "dpo", "--seeds", "0", "1", "-S", "ppo.steps=2")
    assert "4 experiments in 2 groups" in result.stdout
    names = run(repo, "dvc", "exp", "list", "--name-only").stdout.split()
    assert sorted(names) == ["dpo-s0", "dpo-s1", "ppo-s0", "ppo-s1"]
    text = (repo / "metrics" / "sweep.md").read_text()
    assert "All experiments: `ppo.steps=2`." in text
    assert [(row[0], row[1]) for row in tables(text)["ood_toxic"][1:]] == [
        ("method=dpo", "2"), ("method=ppo", "2")]
    assert (repo / "plots" / "sweep.png").exists()

    again = compare(repo, "--methods", "ppo", "sft", "--seeds", "1", check=False)
    assert error_lines(again) == ["error: this commit has experiments ppo-s1 already: remove "
                                  "them (`dvc exp remove ppo-s1`) or commit first"]
    assert "Queued" not in run(repo, "dvc", "queue", "status").stdout

    failed = compare(repo, "--methods", "sft", "--seeds", "5", "-S", "layers=oops", check=False)
    assert error_lines(failed) == ["error: no results for sft-s5 (`dvc queue logs <name>` says "
                                   "why); no table was written"]
    # not the earlier comparison's runs on the same commit passed off as this one's
    assert (repo / "metrics" / "sweep.md").read_text() == text
