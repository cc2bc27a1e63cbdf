"""``python -m detox.sweep``: the experiments of a sweep side by side.

After ``dvc exp run --queue -S 'layers=6,8,10'`` and ``dvc queue start``, this reads ``dvc exp
show --json`` and writes a markdown table (one row per experiment of the workspace's baseline:
the params that differ between them, per eval set mean toxicity base → detoxified and the
perplexity ratio, diverged) and a plot of detoxified toxicity and perplexity ratio per eval set
against the swept params.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detox.headline import PATH as HEADLINE, eval_sets, flatten
from detox.markdown import table
from detox.review import cell, dvc_json, dvc_root
from detox.stage import run_stage


@dataclass
class Experiment:
    name: str
    params: dict[str, Any]  # flattened, every params file together
    headline: dict[str, Any]  # flattened metrics/headline.json; empty if it has none


@dataclass
class Sweep:
    baseline: dict[str, Any]  # the baseline commit's params
    done: list[Experiment]
    pending: list[str]  # "name (state)" of experiments without results yet


def _params(data: dict) -> dict[str, Any]:
    return {key: value for params_file in (data.get("params") or {}).values()
            for key, value in flatten(params_file.get("data") or {}).items()}


def _experiment(entry: dict) -> tuple[Experiment, str]:
    """One experiment of ``dvc exp show --json`` and its executor's state."""
    rev = entry["revs"][0]  # DVC 3 keeps one commit per experiment
    data = rev.get("data") or {}
    headline = ((data.get("metrics") or {}).get(HEADLINE) or {}).get("data") or {}
    state = (entry.get("executor") or {}).get("state") or "no headline metrics"
    return Experiment(rev.get("name") or rev["rev"][:7], _params(data), flatten(headline)), state


def read_sweep(exp_show: list[dict]) -> Sweep:
    """The experiments of the baseline in ``dvc exp show --json`` (its first entry is the
    workspace, the next one the baseline commit)."""
    baseline = next(entry for entry in exp_show if entry["rev"] != "workspace")
    done, pending = [], []
    for entry in baseline.get("experiments") or []:
        experiment, state = _experiment(entry)
        if experiment.headline:
            done.append(experiment)
        else:
            pending.append(f"{experiment.name} ({state})")
    return Sweep(_params(baseline["data"]), done, pending)


def swept(sweep: Sweep) -> tuple[list[str], dict[str, Any]]:
    """Params that differ between the experiments, and those they share but the baseline
    does not (e.g. a shorter training for the whole sweep)."""
    keys = sorted({key for experiment in sweep.done for key in experiment.params})
    values = {key: [experiment.params.get(key) for experiment in sweep.done] for key in keys}
    varying = [key for key in keys if len({repr(value) for value in values[key]}) > 1]
    shared = {key: values[key][0] for key in keys
              if key not in varying and values[key][0] != sweep.baseline.get(key)}
    return varying, shared


def _order(value: Any) -> tuple:
    # numbers by value, then everything else by text: 6, 8, 10 rather than 10, 6, 8
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return (0, value, "") if number else (1, 0, str(value))


def _sorted(sweep: Sweep, varying: list[str]) -> list[Experiment]:
    return sorted(sweep.done, key=lambda e: [_order(e.params.get(key)) for key in varying])


def _sets(experiments: list[Experiment]) -> list[str]:
    return eval_sets(key for experiment in experiments for key in experiment.headline)


def _set_cell(headline: dict[str, Any], eval_set: str) -> str:
    values = [headline.get(f"{eval_set}.{key}") for key in
              ("toxicity_base", "toxicity_detoxified", "perplexity_ratio")]
    if None in values:
        return "—"
    base, detoxified, ratio = values
    return f"{base:.3f} → {detoxified:.3f} (×{ratio:.2f})"


def markdown(sweep: Sweep, plot_link: str | None = None) -> str:
    """The sweep's table, one row per experiment in swept order, and a link to its plot."""
    varying, shared = swept(sweep)
    experiments = _sorted(sweep, varying)
    sets = _sets(experiments)
    rows = [[experiment.name, *(cell(experiment.params.get(key)) for key in varying),
             *(_set_cell(experiment.headline, eval_set) for eval_set in sets),
             cell(experiment.headline.get("diverged"))] for experiment in experiments]
    lines = ["## Sweep", "",
             "Per eval set: mean toxicity base → detoxified (detoxified / base perplexity).", ""]
    if shared:
        lines += ["All experiments: " + ", ".join(f"`{key}={cell(value)}`"
                                                 for key, value in shared.items()) + ".", ""]
    lines.append(table(["experiment", *(f"`{key}`" for key in varying), *sets, "diverged"], rows)
                 if rows else "No experiment has headline metrics yet.")
    if sweep.pending:
        lines += ["", "Without results: " + ", ".join(sweep.pending) + "."]
    if plot_link and rows:
        lines += ["", f"![detoxified toxicity and perplexity ratio per eval set]({plot_link})"]
    return "\n".join(lines) + "\n"


@dataclass
class Series:
    """What the plot draws: one x label per experiment, and per plotted headline key one line
    of values per eval set."""
    labels: list[str]
    xlabel: str
    lines: dict[str, dict[str, list[float]]]


PLOTTED = {"toxicity_detoxified": "detoxified mean toxicity",
           "perplexity_ratio": "perplexity, detoxified / base"}


def _label(experiment: Experiment, varying: list[str]) -> str:
    """The swept values (named when several params vary; the axis names a single one)."""
    if len(varying) == 1:
        return str(experiment.params.get(varying[0]))
    return ", ".join(f"{key}={experiment.params.get(key)}" for key in varying) or experiment.name


def series(sweep: Sweep) -> Series:
    """What ``plot`` draws, in the table's order."""
    varying, _ = swept(sweep)
    experiments = _sorted(sweep, varying)
    labels = [_label(experiment, varying) for experiment in experiments]
    if len(set(labels)) < len(labels):  # reruns of the same params: one point each, not one x
        labels = [f"{label} ({e.name})" for label, e in zip(labels, experiments)]
    lines = {key: {eval_set: [e.headline.get(f"{eval_set}.{key}") for e in experiments]
                   for eval_set in _sets(experiments)} for key in PLOTTED}
    return Series(labels, ", ".join(varying) or "experiment", lines)


def plot(data: Series, path: Path) -> None:
    """Detoxified mean toxicity and perplexity ratio per eval set against the swept params."""
    import matplotlib
    matplotlib.use("Agg")  # files only, also on machines without a display
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(PLOTTED), figsize=(10, 4), constrained_layout=True)
    for axis, (key, title) in zip(axes, PLOTTED.items()):
        for eval_set, values in data.lines[key].items():
            axis.plot(data.labels, values, marker="o", label=eval_set)
        axis.set_title(title)
        axis.set_xlabel(data.xlabel)
    axes[0].set_ylim(bottom=0)
    axes[1].axhline(1.0, color="grey", linewidth=0.8, linestyle="--")  # fluency unchanged
    axes[0].legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="detox-sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("metrics/sweep.md"),
                        help="markdown table (default: metrics/sweep.md)")
    parser.add_argument("--plot", type=Path, default=Path("plots/sweep.png"),
                        help="PNG plot (default: plots/sweep.png)")
    args = parser.parse_args(argv)
    root = dvc_root(Path.cwd())
    sweep = read_sweep(dvc_json(root, "exp", "show"))
    out, plot_path = Path.cwd() / args.out, Path.cwd() / args.plot
    if sweep.done:
        plot(series(sweep), plot_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    # the image link is relative to the markdown file, so it opens where the file is read
    out.write_text(markdown(sweep, os.path.relpath(plot_path, out.parent)))
    print(f"{len(sweep.done)} experiments -> {args.out}" + (f", {args.plot}" if sweep.done else ""))


def cli() -> None:
    """The ``detox-sweep`` console script."""
    run_stage(main)


if __name__ == "__main__":
    cli()
