"""The paper's bar chart (base vs detoxified per eval set) and DVC plot tables."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from detox.io import atomic_path  # noqa: E402


def toxicity_table(metrics: dict) -> pd.DataFrame:
    """One row per (eval set, model): the data behind the bar chart, for ``dvc plots diff``."""
    return pd.DataFrame([
        {"eval_set": eval_set, "model": model, "label": f"{eval_set}/{model}",
         "mean_toxicity": summary["mean_toxicity"], "std_toxicity": summary["std_toxicity"]}
        for eval_set, by_model in metrics.items() for model, summary in by_model.items()
    ])


def toxicity_bars(metrics: dict, path: str | Path, title: str) -> None:
    """Grouped bars of mean toxicity with std error bars (the paper's Figures 3 and 5)."""
    table = toxicity_table(metrics)
    means = table.pivot(index="eval_set", columns="model", values="mean_toxicity")
    stds = table.pivot(index="eval_set", columns="model", values="std_toxicity")
    order = list(metrics)
    fig, ax = plt.subplots(figsize=(7, 4))
    means.loc[order].plot.bar(ax=ax, yerr=stds.loc[order], capsize=4, rot=0,
                              color=["#c44e52", "#4c72b0"])
    ax.set_ylabel("toxicity of the continuation")
    ax.set_xlabel("")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
