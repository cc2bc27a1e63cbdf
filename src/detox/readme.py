"""``python -m detox.readme``: the README's results tables, rendered from the committed outputs.

Each table sits between ``<!-- results: NAME -->`` and ``<!-- /results -->`` in README.md and
is rendered from a file in git: ``offline-default`` from ``metrics/headline.json`` (what
``dvc repro`` writes), the method tables from runs saved by ``python -m detox.sweep
--save-runs`` (``docs/results/*-runs.json``: each experiment's params, headline and training
seconds). A method table has one row per method over the runs named ``<method>-s<seed>`` (as
``python -m detox.compare`` names them), mean ± sd across seeds, each row with its own base
(a seed also draws the eval prompts); other runs in the file (a beta probe, a smoke test) are
left to the pages that discuss them.

``--check`` changes nothing and exits 1 where the README differs from what the files render
(the default tests run it); without it the README's tables are rewritten in place.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections.abc import Callable
from pathlib import Path

from detox import DetoxError
from detox.markdown import table
from detox.stage import run_stage
from detox.sweep import Experiment, load_runs
from detox.train.methods import METHODS

README = Path("README.md")
SETS = ("in_distribution", "ood_toxic", "ood_benign")
BLOCK = re.compile(r"(<!-- results: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results -->)",
                   re.DOTALL)
RUN_NAME = re.compile(r"^(?P<method>\w+)-s(?P<seed>\d+)$")


def _mean_sd(values: list[float], digits: str) -> str:
    if not values:
        return "—"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:{digits}}"
    return f"{mean:{digits}} ± {statistics.stdev(values):{digits}}"


def method_table(runs_file: Path) -> str:
    """One row per method of the file's ``<method>-s<seed>`` runs, in the registry's order:
    per eval set its own base's mean toxicity (the seed draws the eval prompts) and the
    detoxified model's, mean ± sd across seeds."""
    by_method: dict[str, list[Experiment]] = {}
    for experiment in load_runs(runs_file).done:
        named = RUN_NAME.match(experiment.name)
        if named:
            by_method.setdefault(named["method"], []).append(experiment)
    if not by_method:
        raise DetoxError(f"{runs_file}: no run named <method>-s<seed>")

    def values(runs: list[Experiment], key: str) -> list[float]:
        return [run.headline[key] for run in runs if run.headline.get(key) is not None]

    rows = []
    for method in sorted(by_method, key=lambda name: (name not in METHODS,
                                                      METHODS.index(name)
                                                      if name in METHODS else 0, name)):
        runs = sorted(by_method[method], key=lambda run: run.params.get("seed", 0))
        seconds = [run.train_seconds for run in runs if run.train_seconds is not None]
        budget = [_mean_sd(values(runs, key), ",.0f")
                  for key in ("policy_samples", "gradient_steps")]
        rows.append([
            f"`{method}`", ", ".join(str(run.params.get("seed")) for run in runs),
            *(f"{_mean_sd(values(runs, f'{name}.toxicity_base'), '.3f')} → "
              f"{_mean_sd(values(runs, f'{name}.toxicity_detoxified'), '.3f')}"
              for name in SETS),
            " / ".join(_mean_sd(values(runs, f"{name}.judge_diff"), ".3f")
                       for name in SETS[:2]),
            " / ".join(_mean_sd(values(runs, f"{name}.perplexity_ratio"), ".2f")
                       for name in SETS),
            _mean_sd(values(runs, "in_distribution.kl_to_base"), ".3f"),
            ", ".join(budget + [_mean_sd(seconds, ",.0f")])])
    return table(["method", "seeds", *(f"{name}: base → detoxified" for name in SETS),
                  "judge diff (in / ood)", "perplexity × (in / ood / benign)",
                  "KL/token (in)", "policy samples, gradient steps, train seconds"], rows)


def default_table(headline_file: Path) -> str:
    """The committed default's headline, one row per eval set."""
    headline = json.loads(headline_file.read_text())
    rows = []
    for name in SETS:
        result = headline[name]
        rows.append([
            name, f"{result['toxicity_base']:.3f} → {result['toxicity_detoxified']:.3f}",
            f"{result['toxicity_diff']:+.3f} [{result['toxicity_ci_low']:+.3f}, "
            f"{result['toxicity_ci_high']:+.3f}]",
            f"{result['emt_detoxified']:.3f}", f"{result['judge_diff']:+.3f}",
            f"{result['perplexity_ratio']:.2f}", f"{result['kl_to_base']:.3f}",
            f"{result['tokens_detoxified']:.1f}"])
    return table(["eval set", "mean toxicity, base → detoxified",
                  "detoxified − base (95% CI)", "EMT (detoxified)", "judge diff",
                  "perplexity ×", "KL/token", "tokens (detoxified)"], rows)


TABLES: dict[str, Callable[[], str]] = {
    "offline-default": lambda: default_table(Path("metrics/headline.json")),
    "smollm2-methods": lambda: method_table(Path("docs/results/smollm2-runs.json")),
    "offline-online-dpo": lambda: method_table(Path("docs/results/online-dpo-offline-runs.json")),
}


def rendered(text: str) -> str:
    """``text`` with every results block rendered again."""
    def render(block: re.Match) -> str:
        name = block["name"]
        if name not in TABLES:
            raise DetoxError(f"README.md: unknown results block {name!r} (known: "
                             f"{', '.join(TABLES)})")
        try:
            return f"{block[1]}{TABLES[name]()}\n{block[4]}"
        except FileNotFoundError as error:
            raise DetoxError(f"README.md's {name} table: {error.filename} is missing (run "
                             "`dvc repro`, or check out the committed file)") from None

    return BLOCK.sub(render, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m detox.readme", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Overwrites README.md's results blocks (nothing else; seconds). Run it when "
               "the outputs or saved runs change, and commit them together.")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if the README's tables are not the outputs'")
    args = parser.parse_args(argv)
    text = README.read_text()
    new = rendered(text)
    if args.check:
        if new != text:
            raise DetoxError("README.md's results tables differ from what the committed outputs "
                             "render: run `python -m detox.readme` and commit")
        print("README.md's results tables are the committed outputs'")
        return 0
    README.write_text(new)
    print(f"README.md: {len(BLOCK.findall(new))} results tables rendered")
    return 0


if __name__ == "__main__":
    run_stage(main)
