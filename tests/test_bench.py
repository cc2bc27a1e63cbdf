"""bench/ppo_bench.py on CPU at the tiny shape: one timed iteration of each loop, small settings."""

from __future__ import annotations

import importlib.util
import json
import math
import sys

import pytest

from project import ROOT

PHASES = ("generate_s", "score_s", "update_s")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("ppo_bench", ROOT / "bench" / "ppo_bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_benchmark_reports_the_breakdown_and_ratios_of_both_loops(bench, tmp_path, capsys):
    out = tmp_path / "bench.json"
    bench.main(["--shape", "tiny", "--device", "cpu", "--batch-size", "4",
                "--mini-batch-size", "2", "--ppo-epochs", "1", "--prompt-tokens", "4", "6",
                "--new-tokens", "3", "5", "--iterations", "1", "--eval-batch-size", "4",
                "--eval-prompts", "8", "--eval-new-tokens", "4", "--json", str(out),
                "--markdown"])
    result = json.loads(out.read_text())

    assert result["device"] == "cpu" and result["shape"] == "tiny"
    expected = {"batch_size": 4, "mini_batch_size": 2, "ppo_epochs": 1, "prompt_tokens": [4, 6],
                "new_tokens": [3, 5], "eval_prompts": 8}
    assert {key: result["settings"][key] for key in expected} == expected
    ppo, evaluation = result["ppo"], result["eval"]
    for loop in ("project", "baseline"):
        timing = ppo[loop]
        assert all(timing[phase] > 0 for phase in PHASES)
        assert math.isclose(sum(timing[phase] for phase in PHASES), timing["iteration_s"],
                            rel_tol=1e-9)
        assert math.isclose(timing["samples_per_s"], 4 / timing["iteration_s"], rel_tol=1e-9)
        assert timing["tokens_per_s"] > timing["samples_per_s"] > 0
        assert 3 <= timing["response_tokens_per_sample"] <= 5
        assert timing["peak_memory_mib"] > 0
        assert evaluation[loop]["prompts_per_s"] > 0
        assert math.isclose(evaluation[loop]["prompts_per_s"] * evaluation[loop]["seconds"], 8)
    # Every ratio is the project's own measurement over the baseline's, from this run.
    for key in ("samples_per_s", "tokens_per_s", *PHASES, "iteration_s"):
        assert math.isclose(ppo["ratio"][key], ppo["project"][key] / ppo["baseline"][key])
    assert ppo["ratio"]["peak_memory_mib"] is None  # one process's RSS on CPU
    assert math.isclose(evaluation["ratio"]["prompts_per_s"],
                        evaluation["project"]["prompts_per_s"]
                        / evaluation["baseline"]["prompts_per_s"])

    summary, *table = capsys.readouterr().out.strip().splitlines()
    assert summary.startswith("tiny cpu fp32: project ")
    assert f"{ppo['ratio']['samples_per_s']:.2f}x" in summary
    assert "| samples/s |" in "\n".join(table)
