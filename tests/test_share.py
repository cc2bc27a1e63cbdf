"""``python -m detox.share`` on a real git + DVC repository with a toy stage (no ML): a run that
is neither the workspace's nor committed, with a cached output and a ``cache: false`` metric,
is restored in a fresh clone from a local remote without running, where a plain
``dvc push --run-cache`` leaves the clone to run it again."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from project import ROOT, error_lines, run

STAGE = '''
import json, os, yaml
p = yaml.safe_load(open("params.yaml"))["p"]
os.makedirs("data", exist_ok=True)
os.makedirs("metrics", exist_ok=True)
open("data/out.txt", "w").write(f"output of p={p}\\n")
json.dump({"m": p * 10}, open("metrics/m.json", "w"))
'''
PIPELINE = {"stages": {"s": {
    "cmd": "python stage.py", "deps": ["stage.py"], "params": ["p"], "outs": ["data/out.txt"],
    "metrics": [{"metrics/m.json": {"cache": False}}]}}}


def share(repo: Path, check: bool = True):
    return run(repo, sys.executable, "-m", "detox.share", check=check,
               PYTHONPATH=str(ROOT / "src"))


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """Runs p=1, then p=2 (committed), with a local default remote."""
    repo = tmp_path / "origin"
    repo.mkdir()
    run(repo, "git", "init", "-q")
    run(repo, "dvc", "init", "-q")
    (repo / "stage.py").write_text(STAGE)
    (repo / "dvc.yaml").write_text(yaml.safe_dump(PIPELINE))
    for p in (1, 2):
        (repo / "params.yaml").write_text(f"p: {p}\n")
        run(repo, "dvc", "repro", "-q")
    run(repo, "dvc", "remote", "add", "-d", "local", str(tmp_path / "remote"))
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "p=2")
    return repo


def rerun_p1_in_a_clone(origin: Path) -> tuple[str, Path]:
    clone = origin.parent / "clone"
    run(origin.parent, "git", "clone", "-q", str(origin), str(clone))
    (clone / "params.yaml").write_text("p: 1\n")
    return run(clone, "dvc", "repro", "--pull").stdout, clone


def test_a_run_pushed_with_share_is_restored_not_run(origin):
    result = share(origin)
    assert "2 runs in the run-cache" in result.stdout
    output, clone = rerun_p1_in_a_clone(origin)
    assert "Stage 's' is cached - skipping run" in output and "Running stage" not in output
    assert (clone / "data/out.txt").read_text() == "output of p=1\n"
    assert json.loads((clone / "metrics/m.json").read_text()) == {"m": 10}


def test_dvc_push_run_cache_alone_leaves_the_clone_to_run_it(origin):
    # why the command exists: if DVC ever uploads runs' outputs itself, this fails and
    # detox.share can go
    run(origin, "dvc", "push", "--run-cache")
    output, _ = rerun_p1_in_a_clone(origin)
    assert "Running stage 's'" in output


def test_no_remote_is_one_line(origin):
    run(origin, "dvc", "remote", "remove", "local")
    result = share(origin, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = error_lines(result)
    assert line.startswith("error: dvc push: ") and "remote" in line


def test_a_run_whose_outputs_gc_removed_is_a_warning_not_a_failure(origin):
    # p=1's output is no longer in the local cache (as after `dvc gc -w` at p=2)
    entry = next(path for path in (origin / ".dvc/cache/files/md5").rglob("*")
                 if path.is_file() and path.read_bytes() == b"output of p=1\n")
    entry.unlink()
    result = share(origin)  # exits 0: the other run is shared
    assert "Missing cache files:\nname: data/out.txt" in result.stderr
    assert "2 runs in the run-cache" in result.stdout
