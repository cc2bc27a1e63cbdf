"""``python -m detox.sweep``: the experiments of a sweep side by side.

After ``dvc exp run --queue -S 'layers=6,8,10'`` and ``dvc queue start`` (or ``python -m
detox.compare``, which queues ``method`` × ``seed``), this reads ``dvc exp show --json`` for the
experiments of the workspace's baseline (or of ``--baseline REV``) and groups those whose params
differ only in ``seed``: one row per group, its n seeds pooled as mean ± sd across them. It writes
a markdown file with one table per eval set (toxicity base and detoxified, detoxified − base with
its within-run 95% CI, EMT, the judge's difference, the perplexity ratio, the KL to the base,
the continuation length) and a budget table (policy samples, gradient steps, wall-clock training
seconds, divergence), and a plot of the trade-off: per eval set, one point per group (a legend
names them) at its perplexity ratio (a fluency cost under a fluency LM, a drift under the base
policy) and its detoxified toxicity, error bars the sd across seeds, the base model marked; a
second row the same against the KL to the base.

DVC keeps experiments in the repository that ran them only; ``--save-runs FILE`` writes the
compared experiments (params, headline, training seconds) to a JSON file that can be
committed, and ``--runs FILE`` compares such a file's experiments again, alone or beside new
ones: results that outlive the clone they ran in.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import textwrap
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from detox import DetoxError
from detox.headline import PATH as HEADLINE, eval_sets, flatten
from detox.markdown import table
from detox.review import cell, dvc_json, dvc_root
from detox.stage import run_stage

SEED = "seed"  # the param whose runs are pooled: repeats of one setting, not settings
# Where the wall-clock seconds are (the headline never has them); runs made before they had a
# file of their own kept them in metrics/train.json
TIMES = ("metrics/train_time.json", "metrics/train.json")


@dataclass
class Experiment:
    name: str
    rev: str  # its commit, where dvc.api reads its other files
    params: dict[str, Any]  # flattened, every params file together
    headline: dict[str, Any]  # flattened metrics/headline.json; empty if it has none
    train_seconds: float | None = None  # from TIMES, where it could be read


@dataclass
class Sweep:
    baseline: dict[str, Any]  # the baseline commit's params
    done: list[Experiment]
    pending: list[str]  # "name (state)" of experiments without results yet


@dataclass
class Group:
    """Experiments whose params differ only in ``seed`` (or not at all): one setting, n runs."""
    label: str
    experiments: list[Experiment] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.experiments)

    def values(self, key: str) -> list[float]:
        return [e.headline[key] for e in self.experiments if e.headline.get(key) is not None]


def _params(data: dict) -> dict[str, Any]:
    return {key: value for params_file in (data.get("params") or {}).values()
            for key, value in flatten(params_file.get("data") or {}).items()}


def _experiment(entry: dict) -> tuple[Experiment, str | None]:
    """One experiment of ``dvc exp show --json``, its headline emptied unless it has results of
    its own, and why not (its executor's state)."""
    rev = entry["revs"][0]  # DVC 3 keeps one commit per experiment
    data = rev.get("data") or {}
    headline = ((data.get("metrics") or {}).get(HEADLINE) or {}).get("data") or {}
    state = (entry.get("executor") or {}).get("state")  # none for one run in the workspace
    if state not in (None, "success") or rev.get("error"):
        headline = {}  # a failed one shows its baseline's metrics: not its results
    experiment = Experiment(rev.get("name") or rev["rev"][:7], rev["rev"], _params(data),
                            flatten(headline))
    return experiment, None if headline else state or "no headline metrics"


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


def read_train_seconds(root: Path, experiments: list[Experiment]) -> None:
    """Each experiment's ``train_seconds`` from the first of ``TIMES`` that has it, left None
    where none can be read (an output DVC cached elsewhere, an older run without it)."""
    import dvc.api  # only here: the rest of the sweep runs dvc's command line

    for experiment in experiments:
        for path in TIMES:
            try:
                seconds = json.loads(dvc.api.read(path, rev=experiment.rev, repo=str(root)))
                seconds = seconds.get("train_seconds")
            except Exception:  # whatever DVC or the file raises, the table shows — and goes on
                continue
            if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
                experiment.train_seconds = float(seconds)
                break


def save_runs(sweep: Sweep, path: Path) -> None:
    """The experiments with results and the baseline's params, as ``load_runs`` reads them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"baseline": sweep.baseline,
                                "experiments": [asdict(e) for e in sweep.done]},
                               indent=1) + "\n")


def load_runs(path: Path) -> Sweep:
    """A file of ``save_runs``."""
    try:
        saved = json.loads(path.read_text())
        return Sweep(saved["baseline"], [Experiment(**e) for e in saved["experiments"]], [])
    except KeyError as error:
        raise DetoxError(f"--runs {path}: not a file of saved runs (no {error})") from None
    except (OSError, ValueError, TypeError) as error:
        raise DetoxError(f"--runs {path}: not a file of saved runs ({error})") from None


def merged(sweeps: list[Sweep]) -> Sweep:
    """One sweep of several, compared with the first one's baseline; an experiment (a commit)
    found twice counts once."""
    done = list({e.rev: e for each in sweeps for e in each.done}.values())
    return Sweep(sweeps[0].baseline, done, [p for each in sweeps for p in each.pending])


def swept(sweep: Sweep) -> tuple[list[str], dict[str, Any]]:
    """Params that differ between the experiments, and those they share but the baseline
    does not (e.g. a shorter training for the whole sweep). A param some experiments lack
    (made before it existed, e.g. a new method's section) differs only where they have it."""
    keys = sorted({key for experiment in sweep.done for key in experiment.params})
    values = {key: [experiment.params[key] for experiment in sweep.done
                    if key in experiment.params] for key in keys}
    varying = [key for key in keys if len({repr(value) for value in values[key]}) > 1]
    shared = {key: values[key][0] for key in keys
              if key not in varying and len(values[key]) == len(sweep.done)
              and values[key][0] != sweep.baseline.get(key)}
    return varying, shared


def _order(value: Any) -> tuple:
    # numbers by value, then everything else by text: 6, 8, 10 rather than 10, 6, 8
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return (0, value, "") if number else (1, 0, str(value))


def groups(sweep: Sweep) -> list[Group]:
    """The experiments grouped by every varying param but ``seed``, in swept order, each
    labelled with those params (``method=dpo``); runs within a group in seed order."""
    varying, _ = swept(sweep)
    keys = [key for key in varying if key != SEED]
    found: dict[tuple, Group] = {}
    for experiment in sorted(sweep.done, key=lambda e: [_order(e.params.get(key))
                                                        for key in [*keys, SEED]]):
        label = ", ".join(f"{key}={cell(experiment.params.get(key))}" for key in keys)
        if not keys:  # nothing but the seed varies: one group, a lone run by its name
            label = experiment.name if len(sweep.done) == 1 else "all"
        values = tuple(repr(experiment.params.get(key)) for key in keys)
        found.setdefault(values, Group(label)).experiments.append(experiment)
    return list(found.values())


def mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample sd across runs (None without runs; sd None with one)."""
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def _stat(values: list[float], digits: str, spread: bool = True) -> str:
    mean, sd = mean_sd(values)
    if mean is None:
        return "—"
    shown = spread and sd is not None and float(f"{sd:{digits}}".replace(",", "")) > 0
    return f"{mean:{digits}}" + (f" ± {sd:{digits}}" if shown else "")  # no "± 0.000"


def _ci(group: Group, eval_set: str) -> str:
    """detoxified − base and its within-run 95% CI: a single run's bounds; for several, the mean
    of their half-widths, to set beside the sd across seeds."""
    key = f"{eval_set}.toxicity_"
    names = ("diff", "ci_low", "ci_high")
    runs = [e.headline for e in group.experiments
            if all(e.headline.get(key + name) is not None for name in names)]
    if not runs:
        return "—"
    diff = statistics.fmean(run[key + "diff"] for run in runs)
    if len(runs) == 1:
        return f"{diff:.3f} [{runs[0][key + 'ci_low']:.3f}, {runs[0][key + 'ci_high']:.3f}]"
    half = statistics.fmean((run[key + "ci_high"] - run[key + "ci_low"]) / 2 for run in runs)
    return f"{diff:.3f} ±{half:.3f} within run"


SET_HEADER = ["group", "n", "toxicity base", "detoxified", "detoxified − base (95% CI)",
              "EMT", "judge diff", "perplexity ×", "KL/token", "tokens"]


def set_rows(sweep_groups: list[Group], eval_set: str) -> list[list[str]]:
    """One eval set's table, one row per group (columns: ``SET_HEADER``)."""
    def stat(group: Group, name: str, digits: str, spread: bool = True) -> str:
        return _stat(group.values(f"{eval_set}.{name}"), digits, spread)

    return [[group.label, str(group.n), stat(group, "toxicity_base", ".3f"),
             stat(group, "toxicity_detoxified", ".3f"), _ci(group, eval_set),
             stat(group, "emt_detoxified", ".3f"), stat(group, "judge_diff", ".3f"),
             stat(group, "perplexity_ratio", ".2f"), stat(group, "kl_to_base", ".3f"),
             stat(group, "tokens_detoxified", ".1f", spread=False)] for group in sweep_groups]


BUDGET_HEADER = ["group", "n", "trainable params", "policy samples", "gradient steps",
                 "train seconds", "diverged"]


def _count(values: list[float]) -> str:
    # a budget is the same for every seed: one number, unless it is not
    if values and len(set(values)) == 1:
        return cell(int(values[0]))
    return _stat(values, ",.0f")


def budget_rows(sweep_groups: list[Group]) -> list[list[str]]:
    """The budget table, one row per group (columns: ``BUDGET_HEADER``)."""
    rows = []
    for group in sweep_groups:
        seconds = [e.train_seconds for e in group.experiments if e.train_seconds is not None]
        read = "" if len(seconds) in (0, group.n) else f" ({len(seconds)} of {group.n})"
        diverged = sum(bool(e.headline.get("diverged")) for e in group.experiments)
        times = f"{diverged} of {group.n}" if diverged and group.n > 1 else cell(diverged > 0)
        rows.append([group.label, str(group.n),
                     *(_count(group.values(key))
                       for key in ("trainable_params", "policy_samples", "gradient_steps")),
                     _stat(seconds, ",.0f") + read, times])
    return rows


def markdown(sweep: Sweep, plot_link: str | None = None) -> str:
    """The sweep's tables (one per eval set, then the budget) and a link to its plot."""
    _, shared = swept(sweep)
    sweep_groups = groups(sweep)
    sets = eval_sets(key for experiment in sweep.done for key in experiment.headline)
    lines = ["## Sweep", "",
             "One row per setting of the swept params; the runs of a setting that differ only "
             "in `seed` are pooled (n of them): mean ± sd across seeds. Toxicity is the reward "
             "scorer's mean; detoxified − base has its 95% paired bootstrap CI within the run "
             "(for several seeds the mean of the runs' half-widths: set it beside the sd across "
             "seeds); EMT (expected maximum toxicity) and tokens (mean continuation length) "
             "are the detoxified model's; judge diff is the independent judge's detoxified − "
             "base; perplexity × is detoxified / base; KL/token is the detoxified policy's KL "
             "to the base in nats per token.", ""]
    if shared:
        lines += ["All experiments: " + ", ".join(f"`{key}={cell(value)}`"
                                                 for key, value in shared.items()) + ".", ""]
    if not sweep_groups:
        lines.append("No experiment has headline metrics yet.")
    for eval_set in sets:
        lines += [f"### {eval_set}", "", table(SET_HEADER, set_rows(sweep_groups, eval_set)), ""]
    if sweep_groups:
        lines += ["### Budget", "",
                  "Policy samples drawn and optimizer steps (the headline's), and training's "
                  f"wall-clock seconds, sampling included (`{TIMES[0]}`, on the machine that ran "
                  "it; — where it could not be read).", "",
                  table(BUDGET_HEADER, budget_rows(sweep_groups))]
    if sweep.pending:
        lines += ["", "Without results: " + ", ".join(sweep.pending) + "."]
    if plot_link and sweep_groups:
        lines += ["", f"![toxicity against perplexity ratio and KL per eval set]({plot_link})"]
    return "\n".join(lines).rstrip("\n") + "\n"


class Point(NamedTuple):
    """A group's mean (x, y) and its sd across seeds on each axis (None for one run)."""
    x: float | None
    y: float | None
    x_sd: float | None = None
    y_sd: float | None = None


@dataclass
class TradeOff:
    """What the plot draws: per eval set, the base model's toxicity and one point per group at
    (perplexity ratio, detoxified toxicity) and at (KL to base, detoxified toxicity)."""
    labels: list[str]
    base: dict[str, float | None]
    points: dict[str, list[Point]]
    kl_points: dict[str, list[Point]]


def _point(group: Group, x_key: str, y_key: str) -> Point:
    (x, x_sd), (y, y_sd) = mean_sd(group.values(x_key)), mean_sd(group.values(y_key))
    return Point(x, y, x_sd, y_sd)


def trade_off(sweep: Sweep) -> TradeOff:
    """What ``plot`` draws, in the table's order."""
    sweep_groups = groups(sweep)
    sets = eval_sets(key for experiment in sweep.done for key in experiment.headline)
    base = {eval_set: mean_sd([e.headline[f"{eval_set}.toxicity_base"] for e in sweep.done
                               if e.headline.get(f"{eval_set}.toxicity_base") is not None])[0]
            for eval_set in sets}

    def points(x_name: str) -> dict[str, list[Point]]:
        return {eval_set: [_point(group, f"{eval_set}.{x_name}",
                                  f"{eval_set}.toxicity_detoxified") for group in sweep_groups]
                for eval_set in sets}

    return TradeOff([group.label for group in sweep_groups], base, points("perplexity_ratio"),
                    points("kl_to_base"))


def plot(data: TradeOff, path: Path) -> None:
    """Per eval set, detoxified toxicity against the perplexity ratio (top) and against the KL
    to the base (bottom): one point per group with its sd across seeds as error bars (lower left
    is better), the base model at ratio 1 and KL 0; one legend names the groups."""
    import matplotlib
    matplotlib.use("Agg")  # files only, also on machines without a display
    import matplotlib.pyplot as plt

    sets = list(data.points)
    colors = plt.get_cmap("tab10" if len(data.labels) <= 10 else "tab20").colors
    # a legend rather than text beside each point: close points (often) keep their names apart
    styles = [{"color": colors[i % len(colors)], "marker": "os^Dv<>PX"[i // len(colors) % 9]}
              for i in range(len(data.labels))]
    figure, axes = plt.subplots(2, len(sets), figsize=(4.5 * len(sets) + 2, 8.5),
                                squeeze=False, constrained_layout=True)
    for row, (points, base_x, xlabel) in enumerate((
            (data.points, 1.0, "perplexity, detoxified / base"),
            (data.kl_points, 0.0, "KL to base, nats per token"))):
        for axis, eval_set in zip(axes[row], sets):
            for point, label, style in zip(points[eval_set], data.labels, styles):
                if point.x is not None and point.y is not None:
                    axis.errorbar([point.x], [point.y], xerr=point.x_sd, yerr=point.y_sd,
                                  ms=6, capsize=2, linestyle="none", label=label, **style)
            if data.base[eval_set] is not None:
                axis.scatter([base_x], [data.base[eval_set]], marker="*", s=140, color="black",
                             label="base model", zorder=3)
            axis.set(title=eval_set, xlabel=xlabel, ylabel="detoxified mean toxicity")
            axis.set_ylim(bottom=0)
    handles = {label: handle for axis in axes.flat
               for handle, label in zip(*axis.get_legend_handles_labels())}
    figure.legend(handles.values(), handles.keys(), loc="outside right upper", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> Sweep:
    """Write the table and plot; the sweep they show is returned (for ``detox.compare``)."""
    parser = argparse.ArgumentParser(
        prog="python -m detox.sweep", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=textwrap.fill(
            "Overwrites --out (metrics/sweep.md) and --plot (plots/sweep.png), and --save-runs "
            "if given; runs nothing, reads DVC's experiments: seconds. With no finished "
            "experiment it stops with a hint and writes nothing.", 88))
    parser.add_argument("--out", type=Path, default=Path("metrics/sweep.md"),
                        help="markdown tables (default: metrics/sweep.md)")
    parser.add_argument("--plot", type=Path, default=Path("plots/sweep.png"),
                        help="PNG plot (default: plots/sweep.png)")
    parser.add_argument("--baseline", metavar="REV", action="append", default=[],
                        help="a commit whose experiments to compare (default: HEAD); repeat it "
                             "for a sweep queued over several commits")
    parser.add_argument("--only", nargs="+", metavar="NAME", default=None,
                        help="compare these experiments only (default: all of the commit's)")
    parser.add_argument("--runs", type=Path, action="append", default=[], metavar="FILE",
                        help="also compare the experiments saved in FILE (repeatable); with "
                             "--runs and no --baseline, only the saved ones (no DVC needed)")
    parser.add_argument("--save-runs", type=Path, metavar="FILE",
                        help="write the compared experiments (those --only keeps) to FILE "
                             "(JSON; overwritten)")
    args = parser.parse_args(argv)
    sweeps = [load_runs(path) for path in args.runs]
    if args.baseline or not args.runs:
        root = dvc_root(Path.cwd())
        revisions = [option for rev in args.baseline for option in ("--rev", rev)]
        found = read_sweep(dvc_json(root, "exp", "show", *revisions))
        read_train_seconds(root, found.done)
        sweeps.insert(0, found)
    sweep = merged(sweeps)
    if args.only is not None:
        sweep.done = [e for e in sweep.done if e.name in args.only]
        sweep.pending = [p for p in sweep.pending if p.split(" (")[0] in args.only]
    if not sweep.done:
        of = ", ".join(args.baseline) or ("the files given" if args.runs else "HEAD")
        waiting = f" ({len(sweep.pending)} not finished: `dvc queue status`)" if sweep.pending \
            else ""
        raise DetoxError(
            f"no finished experiment to compare in {of}{waiting}"
            + (f" named {' '.join(args.only)}" if args.only else "")
            + ": run some (`dvc exp run --queue -S layers=6,8,10 && dvc queue start`, or "
            "`python -m detox.compare`), name the commit they ran on (--baseline REV; `dvc exp "
            "show -A` lists them) or compare saved ones (--runs FILE); nothing was written")
    out, plot_path = Path.cwd() / args.out, Path.cwd() / args.plot
    plot(trade_off(sweep), plot_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    # the image link is relative to the markdown file, so it opens where the file is read
    out.write_text(markdown(sweep, os.path.relpath(plot_path, out.parent)))
    if args.save_runs is not None:
        save_runs(sweep, Path.cwd() / args.save_runs)
    print(f"{len(sweep.done)} experiments in {len(groups(sweep))} groups -> {args.out}, "
          f"{args.plot}"
          + (f", {args.save_runs}" if args.save_runs is not None else ""))
    return sweep


def cli() -> None:
    """The ``detox-sweep`` console script."""
    run_stage(main)


if __name__ == "__main__":
    cli()
