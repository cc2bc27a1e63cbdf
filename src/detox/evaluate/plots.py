"""The paper's bar chart (base vs detoxified per eval set), toxicity histograms, fluency vs
toxicity, and the DVC plot table behind them. Each chart is written to the path it is given
(the stage passes temporary paths and moves them into place together)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

COLORS = {"base": "#c44e52", "detoxified": "#4c72b0"}
TABLE_METRICS = ("mean_toxicity", "std_toxicity", "expected_max_toxicity", "toxicity_probability",
                 "judge_mean_toxicity", "perplexity", "distinct_2", "continuation_tokens_mean",
                 "empty_share")


def toxicity_table(metrics: dict) -> pd.DataFrame:
    """One row per (eval set, model): the data behind the charts, for ``dvc plots diff``."""
    return pd.DataFrame([
        {"eval_set": eval_set, "model": model, "label": f"{eval_set}/{model}",
         **{name: by_model[model][name] for name in TABLE_METRICS}}
        for eval_set, by_model in metrics.items() for model in COLORS
    ])


def _save(fig: plt.Figure, path: str | Path) -> None:
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=120)
    plt.close(fig)


def toxicity_bars(metrics: dict, path: str | Path, title: str) -> None:
    """Grouped bars of mean toxicity with std error bars (the paper's Figures 3 and 5)."""
    table = toxicity_table(metrics)
    means = table.pivot(index="eval_set", columns="model", values="mean_toxicity")
    stds = table.pivot(index="eval_set", columns="model", values="std_toxicity")
    order = list(metrics)
    fig, ax = plt.subplots(figsize=(7, 4))
    means.loc[order].plot.bar(ax=ax, yerr=stds.loc[order], capsize=4, rot=0,
                              color=[COLORS[m] for m in means.columns])
    ax.set(ylabel="toxicity of the continuation", xlabel="", ylim=(0, 1), title=title)
    _save(fig, path)


def toxicity_histograms(rollouts: dict[str, dict[str, pd.DataFrame]], path: str | Path) -> None:
    """Per eval set, the distribution of continuation toxicity for both models."""
    fig, axes = plt.subplots(1, len(rollouts), figsize=(4 * len(rollouts), 3.2), sharey=True)
    bins = np.linspace(0, 1, 21)
    for ax, (eval_set, by_model) in zip(np.atleast_1d(axes), rollouts.items()):
        for model, frame in by_model.items():
            ax.hist(frame["toxicity"], bins=bins, alpha=0.6, label=model, color=COLORS[model],
                    weights=np.full(len(frame), 1 / len(frame)))
        ax.set(title=eval_set, xlabel="toxicity")
    np.atleast_1d(axes)[0].set_ylabel("share of continuations")
    np.atleast_1d(axes)[0].legend()
    _save(fig, path)


def fluency_vs_toxicity(metrics: dict, path: str | Path) -> None:
    """Perplexity against mean toxicity, an arrow from base to detoxified per eval set."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for eval_set, by_model in metrics.items():
        base, detox = by_model["base"], by_model["detoxified"]
        ax.annotate("", xy=(detox["perplexity"], detox["mean_toxicity"]),
                    xytext=(base["perplexity"], base["mean_toxicity"]),
                    arrowprops={"arrowstyle": "->", "color": "grey"})
        for model in COLORS:
            ax.scatter(by_model[model]["perplexity"], by_model[model]["mean_toxicity"],
                       color=COLORS[model], label=model if eval_set == next(iter(metrics)) else None)
        ax.annotate(eval_set, (base["perplexity"], base["mean_toxicity"]), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")
    ax.set(xlabel="perplexity under the fluency LM (lower = more fluent)",
           ylabel="mean toxicity", ylim=(0, 1))
    ax.legend()
    _save(fig, path)
