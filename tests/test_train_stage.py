"""The train stage as users run it (`dvc repro`, `python stages/train.py`, `torchrun`) on a copy of
the project: resume after SIGKILL and SIGTERM, no resume of another run's checkpoint, divergence
as a recorded outcome, and two processes on CPU."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from project import copy_project, run, set_params

pytestmark = pytest.mark.slow  # minutes: `pytest -m slow` (CI runs it)

SMALL = {"ppo.steps": 12, "ppo.save_every": 2, "ppo.batch_size": 16, "ppo.mini_batch_size": 8,
         "ppo.ppo_epochs": 2, "data.eval_prompts": 16, "eval.samples_per_prompt": 2}


def env(repo: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(repo / "src"), "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """The offline default with a short PPO run, prepared up to training (never trained)."""
    repo = copy_project(tmp_path_factory.mktemp("train-stage"))
    set_params(repo, **SMALL)
    run(repo, "dvc", "repro", "prepare", "download_classifier@scorer", "method_inputs")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "prepared")
    return repo


def outputs(repo: Path) -> tuple[dict, dict, dict]:
    """metrics/train.json, the trained weights and the dvclive series, file by file."""
    summary = json.loads((repo / "metrics/train.json").read_text())
    series = {path.name: path.read_text()
              for path in sorted((repo / "plots/train/plots/metrics").glob("*.tsv"))}
    return summary, load_file(repo / "data/models/trained/model.safetensors"), series


@pytest.fixture(scope="module")
def uninterrupted(repo, tmp_path_factory) -> tuple[dict, dict, dict]:
    """What the same run gives without a break (trained in a copy of the repository)."""
    twin = tmp_path_factory.mktemp("twin") / "repo"
    shutil.copytree(repo, twin)
    run(twin, "dvc", "repro", "train")
    return outputs(twin)


def same_outputs(repo: Path, expected: tuple[dict, dict, dict]) -> None:
    summary, weights, series = outputs(repo)
    assert summary == expected[0]  # the wall clock is metrics/train_time.json's
    assert weights.keys() == expected[1].keys()
    assert all((weights[name] == expected[1][name]).all() for name in weights)
    # every step once, as if never interrupted: none lost, none written twice
    assert len(series) >= 8 and series == expected[2]


def latest_step(repo: Path) -> int:
    """The step of the newest complete checkpoint of any run in the repository (-1: none)."""
    pointers = list((repo / "data/checkpoints").glob("*/LATEST"))
    return max((int(p.read_text().removeprefix("step-")) for p in pointers), default=-1)


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (torchrun starts its workers in sessions of their own,
    so a process group does not reach them)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process has gone
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo += children.get(found[-1], [])
    return found


def start_and_stop(repo: Path, command: list[str], at_step: int,
                   sig: int) -> subprocess.Popen:
    """Start ``command`` and, once a checkpoint of ``at_step`` or later is written, send ``sig``
    to it and every process it started (SIGKILL: as a preemption would)."""
    process = subprocess.Popen(command, cwd=repo, env=env(repo),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while latest_step(repo) < at_step and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, f"finished before step {at_step}: {process.stderr.read()}"
    for pid in descendants(process.pid) if sig == signal.SIGKILL else [process.pid]:
        os.kill(pid, sig)
    process.wait(timeout=300)
    process.stderr_text = process.stderr.read()
    return process


def test_sigkill_after_a_checkpoint_resumes_on_the_next_repro(repo, uninterrupted):
    killed = start_and_stop(repo, ["dvc", "repro", "train"], at_step=4, sig=signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    step = latest_step(repo)
    assert 4 <= step < SMALL["ppo.steps"]
    assert not (repo / "data/models/trained").exists()  # DVC removed the outputs

    result = run(repo, "dvc", "repro", "train")
    assert f"resuming from the checkpoint of step {step}" in result.stdout
    same_outputs(repo, uninterrupted)
    assert latest_step(repo) == -1  # a finished run leaves no checkpoint behind
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "trained")


def test_sigterm_saves_a_checkpoint_before_it_exits(repo, uninterrupted):
    stopped = start_and_stop(repo, [sys.executable, "stages/train.py"], at_step=2,
                             sig=signal.SIGTERM)
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr_text
    assert "SIGTERM: saving a checkpoint after this step" in stopped.stderr_text
    step = latest_step(repo)
    assert step >= 3  # the step it was in when the signal came, not the previous checkpoint

    resumed = subprocess.run([sys.executable, "stages/train.py"], cwd=repo, env=env(repo),
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from the checkpoint of step {step}" in resumed.stdout
    same_outputs(repo, uninterrupted)


def test_a_run_with_other_params_does_not_resume_an_old_checkpoint(repo, uninterrupted):
    stopped = start_and_stop(repo, [sys.executable, "stages/train.py"], at_step=2,
                             sig=signal.SIGTERM)
    assert stopped.returncode == 128 + signal.SIGTERM
    old = {p.parent.name for p in (repo / "data/checkpoints").glob("*/LATEST")}
    set_params(repo, **{"ppo.learning_rate": 5e-5})
    run(repo, "dvc", "repro", "method_inputs")  # what train checks its params against
    try:
        fresh = subprocess.run([sys.executable, "stages/train.py"], cwd=repo, env=env(repo),
                               capture_output=True, text=True)
    finally:
        run(repo, "git", "checkout", "-q", "--", "params.yaml")
    assert fresh.returncode == 0, fresh.stderr
    assert "resuming" not in fresh.stdout
    # the other run's checkpoint is left alone for its own rerun
    assert {p.parent.name for p in (repo / "data/checkpoints").glob("*/LATEST")} == old
    run(repo, "dvc", "repro", "train")  # back to the committed params (method_inputs first)
    same_outputs(repo, uninterrupted)


def test_divergence_is_recorded_and_the_last_good_model_evaluated(repo):
    set_params(repo, **{"ppo.learning_rate": 1e4})
    try:
        result = run(repo, "dvc", "repro")  # exits 0: divergence is an outcome, not a crash
        summary = json.loads((repo / "metrics/train.json").read_text())
        report = (repo / "metrics/report.md").read_text()
        detoxified = load_file(repo / "data/models/detoxified/model.safetensors")
        base = load_file(repo / "data/models/base/model.safetensors")
    finally:
        run(repo, "git", "checkout", "-q", "--", ".")
        # the committed outputs back (evaluate's are never committed in this repository)
        run(repo, "dvc", "checkout", "-q", "--force", "method_inputs", "train")
    assert "diverged at step" in result.stdout
    assert summary["diverged"] is True and summary["diverged_at_step"] >= 1
    assert summary["model_step"] < summary["diverged_at_step"]
    assert summary["model_step"] % SMALL["ppo.save_every"] == 0
    assert summary["steps"] == summary["diverged_at_step"] - 1
    assert "the training run diverged at step" in report
    if summary["model_step"] == 0:  # the last good model is the base policy itself
        assert all((detoxified[name] == base[name]).all() for name in base)


def torchrun(repo: Path) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
            "stages/train.py"]


def test_two_processes_train_one_model_and_resume_after_a_kill(repo):
    whole = subprocess.run(torchrun(repo), cwd=repo, env=env(repo), capture_output=True,
                           text=True)
    assert whole.returncode == 0, whole.stderr[-3000:]
    summary, weights, _ = expected = outputs(repo)
    assert summary["steps"] == SMALL["ppo.steps"]
    # both processes' samples: each draws its own batch at every step
    assert summary["policy_samples"] == 2 * SMALL["ppo.steps"] * SMALL["ppo.batch_size"]
    assert "v_head.summary.weight" not in weights  # one causal LM, saved once, loadable as such

    killed = start_and_stop(repo, torchrun(repo), at_step=4, sig=signal.SIGKILL)
    assert killed.returncode != 0
    step = latest_step(repo)
    resumed = subprocess.run(torchrun(repo), cwd=repo, env=env(repo), capture_output=True,
                             text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from the checkpoint of step {step}" in resumed.stdout
    same_outputs(repo, expected)
    run(repo, "dvc", "checkout", "-q", "--force", "train")
