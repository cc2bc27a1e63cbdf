"""Speed-up candidates for the project's loop: does one change what the loop learns, and does it
pay? (the findings: docs/profile.md)

    python -m detox.bench.candidates adam --threads 1 --ppo-epochs 4 --iterations 3 [versus_trl's options]
    python -m detox.bench.candidates gelu --threads 1 --ppo-epochs 4 --iterations 3

adam  PPOTrainer's own Adam (torch's default implementation: a loop over the parameters on CPU)
      against torch's foreach and fused implementations handed to it (``versus_trl --adam``).
gelu  the checkpoint's ``gelu_new`` (GPT-Neo's tanh GELU, written as seven elementwise ops)
      against ``gelu_pytorch_tanh`` (the same formula as one fused op): the same weights, only
      ``activation_function`` changed in a copy of the checkpoint's config.

Each variant runs the project's loop from the same models, prompts and seeds for the warm-up and
``--iterations`` PPO steps. Printed per variant: the largest difference of TRL's losses and KL
from the first variant's over all steps, the update time of each step after the warm-up, and the
best time of the changed operation alone (``optimizer.step()`` over the trainable parameters, or
one forward + backward of a mini-batch), which a busy machine disturbs less than whole steps.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from detox.bench.versus_trl import Bench, ProjectLoop, bench_parser, checked, prepare
from detox.device import scorer_dtype
from detox.scoring import load_scorer
from detox.train.policy import load_trainable

STATS = ("ppo/loss/total", "ppo/loss/policy", "ppo/loss/value", "objective/kl")


def adam_variants(bench: Bench, folder: Path) -> dict[str, Bench]:
    return {name: dataclasses.replace(bench, adam=name) for name in ("trl", "foreach", "fused")}


def gelu_variants(bench: Bench, folder: Path) -> dict[str, Bench]:
    fused = folder / "base-gelu-fused"
    shutil.copytree(bench.policy_dir, fused)
    config = json.loads((fused / "config.json").read_text())
    config["activation_function"] = "gelu_pytorch_tanh"
    (fused / "config.json").write_text(json.dumps(config))
    return {"gelu_new": bench, "gelu_pytorch_tanh": dataclasses.replace(bench, policy_dir=fused)}


def best_of(repeats: int, bench: Bench, work: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = bench.now()
        work()
        best = min(best, bench.now() - start)
    return best


def optimizer_step_seconds(bench: Bench) -> float:
    """One ``optimizer.step()`` over the policy's trainable parameters, random gradients."""
    policy, _ = load_trainable(bench.policy_dir, bench.params.layers, bench.device, 0)
    trainable = [p for p in policy.parameters() if p.requires_grad]
    options = {} if bench.adam == "trl" else {bench.adam: True}  # TRL's: Adam(params, lr)
    optimizer = torch.optim.Adam(trainable, lr=bench.params.ppo.learning_rate, **options)
    for p in trainable:
        p.grad = torch.randn_like(p)
    return best_of(50, bench, optimizer.step)


def forward_backward_seconds(bench: Bench) -> float:
    """Forward + backward of the policy on a mini-batch of the longest query + response."""
    policy, _ = load_trainable(bench.policy_dir, bench.params.layers, bench.device, 0)
    width = bench.prompt_tokens[1] + bench.params.generation.max_new_tokens_to
    shape = (bench.params.ppo.mini_batch_size, width)
    input_ids = torch.randint(1, policy.pretrained_model.config.vocab_size, shape,
                              generator=torch.Generator().manual_seed(0)).to(bench.device)

    def work() -> None:
        policy.zero_grad()
        logits, _, values = policy(input_ids=input_ids)
        (logits.log_softmax(-1).mean() + values.mean()).backward()

    return best_of(20, bench, work)


CANDIDATES = {"adam": (adam_variants, optimizer_step_seconds),
              "gelu": (gelu_variants, forward_backward_seconds)}


def steps(bench: Bench) -> tuple[np.ndarray, list[float]]:
    """TRL's ``STATS`` of every step (rows) and each step's update seconds."""
    scorer = load_scorer(bench.scorer_dir, bench.device, scorer_dtype(bench.device))
    loop = ProjectLoop(bench, scorer)
    rows, seconds = [], []
    for step, batch in enumerate(bench.batches):
        seconds.append(loop.iteration(batch, step).update_s)
        rows.append([float(loop.stats[key]) for key in STATS])
    return np.array(rows), seconds


def main(argv: list[str]) -> None:
    parser = bench_parser(
        "python -m detox.bench.candidates", __doc__, outputs=False,
        epilog="Prints one row per variant; writes nothing. Runs in a scratch folder on "
               "random-weight models of the shape: seconds per variant at --shape tiny and "
               "--iterations 3 on 2 CPU cores (about 2.3 s a step), minutes at the 135m shapes.")
    parser.add_argument("candidate", choices=CANDIDATES, help="the change to measure")
    parser.add_argument("--iterations", type=int, default=3, help="steps after the warm-up")
    args = checked(parser, argv)
    variants, isolated = CANDIDATES[args.candidate]
    with tempfile.TemporaryDirectory(prefix="ppo-candidates-") as folder:
        benches = variants(prepare(args, Path(folder)), Path(folder))
        results = {name: (*steps(bench), isolated(bench)) for name, bench in benches.items()}
    reference = next(iter(results.values()))[0]
    print(f"{'variant':<18} {'max |diff| of losses, KL':>24}  {'update s per step':<24} alone")
    for name, (stats, seconds, alone) in results.items():
        print(f"{name:<18} {np.abs(stats - reference).max():>24.3g}  "
              f"{' '.join(f'{s:.3f}' for s in seconds[1:]):<24} {1000 * alone:.2f} ms")
    print(f"TRL's {', '.join(STATS)} per step (first variant):\n"
          f"{np.array2string(reference, precision=6)}")


if __name__ == "__main__":
    main(sys.argv[1:])
