"""Helpers for tests that run the pipeline's real stages and DVC on a copy of the project."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]


def copy_project(dest: Path) -> Path:
    """The pipeline's files (no outputs) in ``dest``, as a fresh git + DVC repository with
    them committed (dvclive, the training log, needs a commit to read the revision from)."""
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, dest / name)
    for name in ("stages", "src", "conf"):
        shutil.copytree(ROOT / name, dest / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    run(dest, "git", "init", "-q")
    run(dest, "dvc", "init", "-q")
    shutil.copy(ROOT / ".dvc" / "config", dest / ".dvc" / "config")
    run(dest, "git", "add", "-A")
    run(dest, "git", "commit", "-qm", "the project")
    return dest


def run(repo: Path, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    """Run a command in ``repo`` with its own ``src`` first on the path, offline."""
    env = {**os.environ, "PYTHONPATH": str(repo / "src"), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1",
           "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
           "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com", **env}
    result = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def set_params(repo: Path, **overrides) -> None:
    """Override dotted params in ``repo/params.yaml`` (``set_params(repo, **{"ppo.steps": 2})``)."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for dotted, value in overrides.items():
        *sections, name = dotted.split(".")
        node = params
        for section in sections:
            node = node[section]
        node[name] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines()
            if line.startswith("error: ")]


def composed(*overrides: str) -> dict:
    """The params Hydra composes from ``conf/`` (what ``dvc exp run -S ...`` writes)."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        return OmegaConf.to_container(compose(config_name="config", overrides=list(overrides)))
