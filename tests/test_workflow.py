"""The pull-request review workflow: valid GitHub Actions YAML (checked offline against the
schema check-jsonschema vendors), calling the project's review command, with DVC flags that
the pinned DVC has."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from project import ROOT, run

WORKFLOW = ROOT / ".github" / "workflows" / "review.yml"
TEXT = WORKFLOW.read_text()
# PyYAML reads the key `on` as the boolean True (YAML 1.1); GitHub reads it as "on".
STEPS = yaml.safe_load(TEXT)["jobs"]["review"]["steps"]


def step_runs() -> list[str]:
    return [step["run"] for step in STEPS if "run" in step]


def test_the_workflow_is_valid_github_actions_yaml():
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                             "vendor.github-workflows", str(WORKFLOW)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert yaml.safe_load(TEXT)[True] == {"pull_request": None}


def test_it_checks_out_full_history_and_posts_the_review_command_s_markdown():
    checkout = next(step for step in STEPS if step.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0  # shallow clones have no base revision
    review = [run for run in step_runs() if "python -m detox.review" in run]
    assert len(review) == 1 and '--base "$BASE"' in review[0] and "--out review.md" in review[0]
    comment = next(run for run in step_runs() if "gh pr comment" in run)
    assert "--body-file review.md" in comment and "--edit-last" in comment


def test_it_installs_cpu_torch_before_the_project():
    install = next(run for run in step_runs() if "pip install -e ." in run)
    assert install.index("torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu") \
        < install.index("pip install -e .")


@pytest.mark.parametrize("command", ["repro", "plots diff", "remote add"])
def test_its_dvc_flags_exist_in_the_pinned_dvc(command, tmp_path):
    arguments = [line.split(f"dvc {command} ", 1)[1].split("|")[0]  # up to a pipe into grep
                 for line in TEXT.splitlines() if f"dvc {command} " in line]
    used = {flag for line in arguments for flag in re.findall(r"(?<= )--?[a-z-]+", f" {line}")}
    assert used, command
    documented = run(tmp_path, "dvc", *command.split(), "--help").stdout
    assert {flag for flag in used if flag not in documented} == set()
