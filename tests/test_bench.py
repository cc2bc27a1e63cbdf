"""detox.bench.versus_trl on CPU at the tiny shape: one timed iteration of each loop, small
settings. Its figures are checked against what the test measures or sets itself: the wall
clock, the prompt and continuation lengths asked for, the batch size, the process's peak RSS."""

from __future__ import annotations

import json
import math
import resource
import time

from detox.bench import versus_trl
from project import ROOT

PHASES = ("generate_s", "score_s", "update_s")
BATCH, PROMPT, NEW = 4, (4, 6), (3, 5)


def test_benchmark_reports_the_breakdown_and_ratios_of_both_loops(tmp_path, capsys,
                                                                  monkeypatch):
    monkeypatch.chdir(ROOT)  # the shape's preset is composed from conf/
    out = tmp_path / "bench.json"
    started = time.perf_counter()
    versus_trl.main(["--shape", "tiny", "--device", "cpu", "--batch-size", str(BATCH),
                     "--mini-batch-size", "2", "--ppo-epochs", "1",
                     "--prompt-tokens", *map(str, PROMPT), "--new-tokens", *map(str, NEW),
                     "--iterations", "1", "--eval-batch-size", "4", "--eval-prompts", "8",
                     "--eval-new-tokens", "4", "--json", str(out), "--markdown"])
    wall = time.perf_counter() - started
    result = json.loads(out.read_text())

    assert result["device"] == "cpu" and result["shape"] == "tiny"
    expected = {"batch_size": BATCH, "mini_batch_size": 2, "ppo_epochs": 1,
                "prompt_tokens": list(PROMPT), "new_tokens": list(NEW), "eval_prompts": 8}
    assert {key: result["settings"][key] for key in expected} == expected
    ppo, evaluation = result["ppo"], result["eval"]
    timed = 0.0
    for loop in ("project", "baseline"):
        timing = ppo[loop]
        assert all(timing[phase] > 0 for phase in PHASES)
        # every iteration sampled the whole batch
        assert math.isclose(timing["samples_per_s"] * timing["iteration_s"], BATCH)
        # tokens/s counts query and response tokens: their lengths are the ones asked for
        tokens = timing["tokens_per_s"] / timing["samples_per_s"]
        response = timing["response_tokens_per_sample"]
        assert NEW[0] <= response <= NEW[1]
        assert PROMPT[0] <= tokens - response <= PROMPT[1]
        assert 0 < timing["peak_memory_mib"] <= resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss / 1024
        assert evaluation[loop]["prompts_per_s"] > 0
        timed += timing["iteration_s"] + evaluation[loop]["seconds"]
    assert timed < wall  # the timed parts are parts of this call, not more
    # On CPU the baseline, measured second, reports the peak of both: no memory ratio.
    assert ppo["baseline"]["peak_memory_mib"] >= ppo["project"]["peak_memory_mib"]
    assert ppo["ratio"]["peak_memory_mib"] is None
    # The project's rate over the baseline's: faster means the project takes less per iteration.
    assert (ppo["ratio"]["samples_per_s"] > 1) == (ppo["project"]["iteration_s"]
                                                   < ppo["baseline"]["iteration_s"])

    summary, *table = capsys.readouterr().out.strip().splitlines()
    assert summary.startswith("tiny cpu fp32: project ")
    assert f"{ppo['ratio']['samples_per_s']:.2f}x" in summary
    assert "| samples/s |" in "\n".join(table)
