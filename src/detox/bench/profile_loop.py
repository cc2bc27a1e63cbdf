"""Where one PPO iteration of the project's loop spends its time (the notes: docs/profile.md).

    python -m detox.bench.profile_loop --threads 1 [the options of detox.bench.versus_trl]

Builds the benchmark's models and prompts (``versus_trl.prepare``), runs the project's loop for
one warm-up iteration, then profiles one iteration with cProfile (the call tree: generation,
scoring, and inside TRL's ``step`` its no-grad forward passes, the mini-batch forward, backward
and optimizer) and one with ``torch.profiler`` (the operators).
"""

from __future__ import annotations

import cProfile
import pstats
import re
import tempfile
from pathlib import Path

from torch.profiler import ProfilerActivity, profile

from detox.bench.versus_trl import ProjectLoop, bench_parser, checked, prepare
from detox.device import scorer_dtype
from detox.scoring import load_scorer

# (label, pstats function-name pattern): the calls whose cumulative time splits an iteration.
CALLS = [
    ("iteration", r"versus_trl.py.*\(iteration\)"),
    ("  generation (detox.generation.generate)", r"generation.py.*\(generate\)"),
    ("  scoring: scorer", r"toxicity.py.*\(logits\)"),
    ("  update: PPOTrainer.step", r"ppo_trainer.py.*\(step\)"),
    # all of them: the no-grad ones of policy and reference, and the mini-batches' with grad
    ("    batched_forward_pass", r"ppo_trainer.py.*\(batched_forward_pass\)"),
    ("    compute_rewards + compute_advantages",
     r"ppo_trainer.py.*\(compute_(rewards|advantages)\)"),
    ("    train_minibatch (epochs x mini-batches)", r"ppo_trainer.py.*\(train_minibatch\)"),
    ("      loss (PPO loss from logprobs, values)", r"ppo_trainer.py.*\(loss\)"),
    ("      backward", r"accelerator.py.*\(backward\)"),
    ("      optimizer step (Adam)", r"adam.py.*\(step\)"),
    ("    record_step_stats", r"ppo_trainer.py.*\(record_step_stats\)"),
]


def cumulative(stats: pstats.Stats, pattern: str) -> float:
    """Cumulative seconds of the outermost calls of the functions matching ``pattern``."""
    total = 0.0
    for (file, line, name), (_, _, _, cum, callers) in stats.stats.items():
        key = f"{file}:{line}({name})"
        if re.search(pattern, key):
            # Recursion or nested matches would count twice: count only calls from outside.
            outer = [c for c in callers if not re.search(pattern, f"{c[0]}:{c[1]}({c[2]})")]
            total += cum if outer or not callers else 0.0
    return total


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(
        "python -m detox.bench.profile_loop", __doc__, outputs=False,
        epilog="Prints the profiles; writes nothing. Runs in a scratch folder on random-weight "
               "models of the shape; four iterations of the project's loop (a warm-up, one "
               "timed, two profiled): under a minute at --shape tiny on 2 CPU cores, several minutes "
               "at smollm2-135m.")
    args = checked(parser, argv)
    with tempfile.TemporaryDirectory(prefix="ppo-profile-") as folder:
        bench = prepare(args, Path(folder))
        scorer = load_scorer(bench.scorer_dir, bench.device, scorer_dtype(bench.device))
        loop = ProjectLoop(bench, scorer)
        loop.iteration(bench.batches[0], 0)  # warm-up

        timing = loop.iteration(bench.batches[1], 1)
        print(f"one iteration: {timing}")
        print("TRL's own split of that step:", ", ".join(
            f"{key.removeprefix('time/ppo/')} {value:.3f} s"
            for key, value in loop.stats.items() if key.startswith("time/ppo/")))

        profiler = cProfile.Profile()
        profiler.enable()
        loop.iteration(bench.batches[1], 1)
        profiler.disable()
        stats = pstats.Stats(profiler)
        total = cumulative(stats, CALLS[0][1])
        print("\ncProfile (its overhead included), cumulative seconds of one iteration:")
        for label, pattern in CALLS:
            seconds = cumulative(stats, pattern)
            print(f"{label:<52} {seconds:8.3f} s  {100 * seconds / total:5.1f}%")
        print(f"TRL's split under cProfile: forward_pass {loop.stats['time/ppo/forward_pass']:.3f}"
              f" s, optimize_step {loop.stats['time/ppo/optimize_step']:.3f} s")

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA]
                                               if bench.device.type == "cuda" else [])
        with profile(activities=activities) as ops:
            loop.iteration(bench.batches[-1], 2)
        sort = "self_cuda_time_total" if bench.device.type == "cuda" else "self_cpu_time_total"
        print("\ntorch.profiler, operators of one iteration by self time:")
        print(ops.key_averages().table(sort_by=sort, row_limit=25))


if __name__ == "__main__":
    main()
