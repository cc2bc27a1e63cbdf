"""``python -m detox.sweep``: the experiments of a sweep side by side.

After ``dvc exp run --queue -S 'layers=6,8,10'`` and ``dvc queue start``, this reads ``dvc exp
show --json`` and writes a markdown table (one row per experiment of the workspace's baseline,
or of ``--baseline REV``: the params that differ between them, per eval set mean toxicity
base → detoxified, the perplexity ratio and the KL to the base, diverged) and a plot of the
trade-off: per eval set, one labelled point per experiment at its perplexity ratio (a fluency
cost under a fluency LM, a drift under the base policy) and its detoxified toxicity, with the
base model marked.
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
    """The experiments of the baselines in ``dvc exp show --json`` (its first entry is the
    workspace, the next ones the baseline commits: one, or each ``--rev`` asked for), compared
    with the first baseline's params."""
    baselines = [entry for entry in exp_show if entry["rev"] != "workspace"]
    done, pending = [], []
    for entry in (experiment for baseline in baselines
                  for experiment in baseline.get("experiments") or []):
        experiment, state = _experiment(entry)
        if experiment.headline:
            done.append(experiment)
        else:
            pending.append(f"{experiment.name} ({state})")
    return Sweep(_params(baselines[0]["data"]), done, pending)


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
    kl = headline.get(f"{eval_set}.kl_to_base")
    return f"{base:.3f} → {detoxified:.3f} (×{ratio:.2f}" + (
        f", KL {kl:.3f})" if kl is not None else ")")


def markdown(sweep: Sweep, plot_link: str | None = None) -> str:
    """The sweep's table, one row per experiment in swept order, and a link to its plot."""
    varying, shared = swept(sweep)
    experiments = _sorted(sweep, varying)
    sets = _sets(experiments)
    rows = [[experiment.name, *(cell(experiment.params.get(key)) for key in varying),
             *(_set_cell(experiment.headline, eval_set) for eval_set in sets),
             cell(experiment.headline.get("diverged"))] for experiment in experiments]
    lines = ["## Sweep", "",
             "Per eval set: mean toxicity base → detoxified (detoxified / base perplexity, the "
             "detoxified policy's KL to the base in nats per token).", ""]
    if shared:
        lines += ["All experiments: " + ", ".join(f"`{key}={cell(value)}`"
                                                 for key, value in shared.items()) + ".", ""]
    lines.append(table(["experiment", *(f"`{key}`" for key in varying), *sets, "diverged"], rows)
                 if rows else "No experiment has headline metrics yet.")
    if sweep.pending:
        lines += ["", "Without results: " + ", ".join(sweep.pending) + "."]
    if plot_link and rows:
        lines += ["", f"![toxicity against perplexity ratio per eval set]({plot_link})"]
    return "\n".join(lines) + "\n"


@dataclass
class TradeOff:
    """What the plot draws: per eval set, the base model's toxicity and one point per
    experiment at (perplexity ratio, detoxified toxicity), with the experiment's label."""
    labels: list[str]
    base: dict[str, float | None]
    points: dict[str, list[tuple[float | None, float | None]]]


def _label(experiment: Experiment, varying: list[str]) -> str:
    """The swept value where one param varies; else the experiment's name (``dvc exp run -n``
    names it for what it tried), which stays readable beside a point."""
    if len(varying) == 1:
        return f"{varying[0]}={experiment.params.get(varying[0])}"
    return experiment.name


def trade_off(sweep: Sweep) -> TradeOff:
    """What ``plot`` draws, in the table's order."""
    varying, _ = swept(sweep)
    experiments = _sorted(sweep, varying)
    labels = [_label(experiment, varying) for experiment in experiments]
    if len(set(labels)) < len(labels):  # reruns of the same params: told apart by name
        labels = [f"{label} ({e.name})" for label, e in zip(labels, experiments)]
    sets = _sets(experiments)
    base = {eval_set: next((e.headline[f"{eval_set}.toxicity_base"] for e in experiments
                            if f"{eval_set}.toxicity_base" in e.headline), None)
            for eval_set in sets}
    points = {eval_set: [(e.headline.get(f"{eval_set}.perplexity_ratio"),
                          e.headline.get(f"{eval_set}.toxicity_detoxified"))
                         for e in experiments] for eval_set in sets}
    return TradeOff(labels, base, points)


def plot(data: TradeOff, path: Path) -> None:
    """Per eval set, detoxified toxicity against the perplexity ratio: one labelled point per
    experiment (lower left is better), the base model at ratio 1."""
    import matplotlib
    matplotlib.use("Agg")  # files only, also on machines without a display
    import matplotlib.pyplot as plt

    sets = list(data.points)
    figure, axes = plt.subplots(1, len(sets), figsize=(5 * len(sets), 4.5), squeeze=False,
                                constrained_layout=True)
    for axis, eval_set in zip(axes[0], sets):
        drawn = [(x, y, label) for (x, y), label in zip(data.points[eval_set], data.labels)
                 if x is not None and y is not None]
        axis.scatter([x for x, _, _ in drawn], [y for _, y, _ in drawn], s=20)
        for x, y, label in drawn:
            axis.annotate(label, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        if data.base[eval_set] is not None:
            axis.scatter([1.0], [data.base[eval_set]], marker="*", s=120, color="black",
                         label="base model")
            axis.legend(loc="upper right", fontsize=7)
        axis.set(title=eval_set, xlabel="perplexity, detoxified / base",
                 ylabel="detoxified mean toxicity")
        axis.set_ylim(bottom=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="detox-sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("metrics/sweep.md"),
                        help="markdown table (default: metrics/sweep.md)")
    parser.add_argument("--plot", type=Path, default=Path("plots/sweep.png"),
                        help="PNG plot (default: plots/sweep.png)")
    parser.add_argument("--baseline", metavar="REV", action="append", default=[],
                        help="a commit whose experiments to compare (default: HEAD); repeat it "
                             "for a sweep queued over several commits")
    args = parser.parse_args(argv)
    root = dvc_root(Path.cwd())
    revisions = [option for rev in args.baseline for option in ("--rev", rev)]
    sweep = read_sweep(dvc_json(root, "exp", "show", *revisions))
    out, plot_path = Path.cwd() / args.out, Path.cwd() / args.plot
    if sweep.done:
        plot(trade_off(sweep), plot_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    # the image link is relative to the markdown file, so it opens where the file is read
    out.write_text(markdown(sweep, os.path.relpath(plot_path, out.parent)))
    print(f"{len(sweep.done)} experiments -> {args.out}" + (f", {args.plot}" if sweep.done else ""))


def cli() -> None:
    """The ``detox-sweep`` console script."""
    run_stage(main)


if __name__ == "__main__":
    cli()
