"""``python -m detox.compare``: did PPO beat a word list? Every method over seeds, one table.

Queues one experiment per method and seed, named ``<method>-s<seed>`` (``dvc exp run --queue -S
method=<m> -S seed=<s> -n <m>-s<s>``, with every ``-S key=value`` given, e.g. ``-S
preset=paper-rtp``), runs the queue in the foreground (``dvc exp run --run-all``: it returns when
the queue is empty) and writes the sweep's tables and plot as ``python -m detox.sweep`` does:
one row per method, its seeds pooled. ``--dry-run`` prints the dvc commands instead.
"""

from __future__ import annotations

import argparse
import shlex
import textwrap
import subprocess
from collections.abc import Iterable
from pathlib import Path

from detox import DetoxError
from detox import sweep
from detox.review import DVC, dvc_root
from detox.stage import run_stage
from detox.train.methods import METHODS, REGISTRY

SEEDS = (0, 1, 2)
COMPARED = tuple(name for name, entry in REGISTRY.items() if entry.compared)


def name(method: str, seed: int) -> str:
    return f"{method}-s{seed}"


def _key(override: str) -> str:
    # `-S` takes DVC's `[<file>:]<key>=<value>` and Hydra's `+key=` / `~key`
    key, equals, _ = override.partition("=")
    if not equals:
        raise DetoxError(f"-S {override!r} is not key=value")
    return key.rpartition(":")[2].lstrip("+~")


def queue_commands(methods: Iterable[str], seeds: Iterable[int],
                   overrides: Iterable[str] = ()) -> list[list[str]]:
    """One ``dvc exp run --queue`` command line per method and seed, in that order."""
    methods, seeds = list(dict.fromkeys(methods)), list(dict.fromkeys(seeds))  # once each
    unknown = [method for method in methods if method not in METHODS]
    if unknown:
        raise DetoxError(f"unknown method {', '.join(map(repr, unknown))}: the methods are "
                         f"{', '.join(METHODS)}")
    for override in overrides:
        if _key(override) in ("method", "seed"):
            raise DetoxError(f"-S {override}: choose methods and seeds with --methods and --seeds")
    extra = [option for override in overrides for option in ("-S", override)]
    return [[*DVC, "exp", "run", "--queue", "-S", f"method={method}", "-S", f"seed={seed}",
             *extra, "-n", name(method, seed)] for method in methods for seed in seeds]


def _shown(command: list[str]) -> str:
    return shlex.join(["dvc", *command[len(DVC):]])


def _existing(root: Path) -> set[str]:
    """Names of the experiments of this commit (a queued name must be new, or DVC refuses)."""
    result = subprocess.run([*DVC, "exp", "list", "--name-only"], cwd=root, capture_output=True,
                            text=True)
    return set(result.stdout.split()) if result.returncode == 0 else set()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m detox.compare", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=textwrap.fill(
               f"By default {len(COMPARED)} methods x {len(SEEDS)} seeds = "
               f"{len(COMPARED) * len(SEEDS)} experiments, queued and run one after another "
               "(the whole pipeline each, restored from DVC's run-cache where it can): about 15 "
               "minutes on the offline default on 2 idle CPU cores (estimated: the first four "
               "methods' 12 took 8 minutes on 2026-12-05); at the SmolLM2 preset 30 to 90 "
               "minutes each on 2 shared cores (README); at paper scale each needs a GPU. Overwrites --out "
               "(metrics/sweep.md) and --plot (plots/sweep.png); the experiments stay in DVC "
               "(`dvc exp show`).", 88))
    parser.add_argument("--methods", nargs="+", default=list(COMPARED), metavar="METHOD",
                        help=f"methods to train (default: {' '.join(COMPARED)}; also: "
                             f"{' '.join(m for m in METHODS if m not in COMPARED)})")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS), metavar="SEED",
                        help=f"seeds of each (default: {' '.join(map(str, SEEDS))})")
    parser.add_argument("-S", "--set-param", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="a param for every experiment (repeatable), "
                                                  "as dvc exp run -S takes it")
    parser.add_argument("-j", "--jobs", type=int, default=1,
                        help="experiments run at once (default: 1)")
    parser.add_argument("--out", type=Path, default=Path("metrics/sweep.md"),
                        help="markdown tables (default: metrics/sweep.md)")
    parser.add_argument("--plot", type=Path, default=Path("plots/sweep.png"),
                        help="PNG plot (default: plots/sweep.png)")
    parser.add_argument("--dry-run", action="store_true", help="print the dvc commands only")
    args = parser.parse_args(argv)
    commands = queue_commands(args.methods, args.seeds, args.overrides)
    run_all = [*DVC, "exp", "run", "--run-all", "--jobs", str(args.jobs)]
    if args.dry_run:
        print("\n".join(_shown(command) for command in [*commands, run_all]))
        return
    root = dvc_root(Path.cwd())
    taken = sorted({command[-1] for command in commands} & _existing(root))
    if taken:
        raise DetoxError(f"this commit has experiments {', '.join(taken)} already: remove them "
                         f"(`dvc exp remove {' '.join(taken)}`) or commit first")
    for command in commands:
        result = subprocess.run(command, cwd=root, capture_output=True, text=True)
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines() or ["no output"]
            error = next((line for line in lines if line.startswith("ERROR")), lines[-1])
            raise DetoxError(f"`{_shown(command)}` failed: {error}")
        print(f"queued {command[-1]}")
    status = subprocess.run(run_all, cwd=root).returncode  # its log streams through
    # only these runs: other experiments of the commit (a layer sweep) are not this comparison
    names = [command[-1] for command in commands]
    try:
        done = {e.name for e in sweep.main(["--out", str(args.out), "--plot", str(args.plot),
                                            "--only", *names]).done}
    except DetoxError:  # none of them finished: nothing to tabulate, said below
        done = set()
    # DVC's --run-all exits 0 even where an experiment failed: a method missing from the table
    # must not pass for a comparison
    missing = [name for name in names if name not in done]
    if status != 0 or missing:
        compared = f"{args.out} compares the others" if done else "no table was written"
        raise DetoxError(f"no results for {', '.join(missing) or 'some experiments'} (`dvc queue "
                         f"logs <name>` says why); {compared}")


def cli() -> None:
    """The ``detox-compare`` console script."""
    run_stage(main)


if __name__ == "__main__":
    cli()
