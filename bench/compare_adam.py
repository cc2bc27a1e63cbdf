"""Does handing torch's foreach or fused Adam to PPOTrainer change what the project's loop learns,
and does it pay? (bench/PROFILE.md)

    python bench/compare_adam.py --threads 1 --iterations 3 [the options of ppo_bench.py]

Runs the project's loop from the same models, prompts and seeds once per Adam implementation
(``PPOTrainer``'s own, foreach, fused), for the warm-up and ``--iterations`` PPO steps, and
prints per step TRL's losses and KL, their largest difference from PPOTrainer's own Adam, and
the time of TRL's ``optimize_step`` (the epochs of mini-batch forward, backward and Adam); then
times ``optimizer.step()`` alone on the policy's trainable parameters (best of 50), which a busy
machine disturbs less than whole steps.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ppo_bench import ProjectLoop, parse_args, prepare  # noqa: E402

from detox.device import scorer_dtype  # noqa: E402
from detox.scoring import load_scorer  # noqa: E402
from detox.train.policy import load_trainable  # noqa: E402

STATS = ("ppo/loss/total", "ppo/loss/policy", "ppo/loss/value", "objective/kl")
VARIANTS = ("trl", "foreach", "fused")


def run(bench, variant: str) -> tuple[np.ndarray, list[float]]:
    """TRL's ``STATS`` of every step (rows) and each step's optimize_step seconds."""
    scorer = load_scorer(bench.scorer_dir, bench.device, scorer_dtype(bench.device))
    loop = ProjectLoop(dataclasses.replace(bench, adam=variant), scorer)
    rows, seconds = [], []
    for step, batch in enumerate(bench.batches):
        loop.iteration(batch, step)
        rows.append([float(loop.stats[key]) for key in STATS])
        seconds.append(float(loop.stats["time/ppo/optimize_step"]))
    return np.array(rows), seconds


def step_seconds(bench, variant: str, repeats: int = 50) -> float:
    """Best time of one ``optimizer.step()`` over the trainable parameters, random gradients."""
    policy, _ = load_trainable(bench.policy_dir, bench.params.layers, bench.device, 0)
    trainable = [p for p in policy.parameters() if p.requires_grad]
    options = {} if variant == "trl" else {variant: True}  # TRL's: Adam(params, lr)
    optimizer = torch.optim.Adam(trainable, lr=bench.params.ppo.learning_rate, **options)
    for p in trainable:
        p.grad = torch.randn_like(p)
    best = float("inf")
    for _ in range(repeats):
        start = bench.now()
        optimizer.step()
        best = min(best, bench.now() - start)
    return best


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ppo-adam-") as folder:
        bench = prepare(args, Path(folder))
        results = {variant: run(bench, variant) for variant in VARIANTS}
        alone = {variant: step_seconds(bench, variant) for variant in VARIANTS}
    reference = results["trl"][0]
    print(f"{'adam':<8} {'max |diff| of ' + ', '.join(STATS) + ' vs trl':<72} optimize_step s "
          "(steps after the warm-up)")
    for variant, (stats, seconds) in results.items():
        print(f"{variant:<8} {np.abs(stats - reference).max():<72.3g} "
              f"{' '.join(f'{s:.3f}' for s in seconds[1:])}")
    print("per step (trl):", np.array2string(reference, precision=6))
    print("optimizer.step() alone, best of 50:",
          ", ".join(f"{variant} {1000 * seconds:.2f} ms" for variant, seconds in alone.items()))

if __name__ == "__main__":
    main()
