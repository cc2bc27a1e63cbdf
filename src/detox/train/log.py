"""The per-step training log: one row per PPO step of TRL's stats under names that say what
they are, written as dvclive series (``dvc plots show``, ``dvc plots diff``), and any
method's log drawn as that method's panels.

TRL 0.11.4 calls the classifier's number the *score* (``ppo/mean_scores``) and the number PPO
maximises the *reward*: the score minus beta times the KL to the reference, per continuation.
Both are logged; so is everything that shows how an update went (entropy, losses, clip
fractions, the policy's KL between before and after its update, the value head's fit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from dvclive import Live
from scmrepo.exceptions import SCMError

from detox import DetoxError

# Row name -> TRL 0.11.4 stat. KL and entropy are nats per continuation, summed over its tokens.
TRL_STATS = {
    "score_mean": "ppo/mean_scores",
    "score_std": "ppo/std_scores",
    "kl": "objective/kl",
    "kl_coef": "objective/kl_coef",  # beta used for this step's rewards
    "entropy": "objective/entropy",
    "loss_policy": "ppo/loss/policy",
    "loss_value": "ppo/loss/value",
    "clipfrac_policy": "ppo/policy/clipfrac",
    "clipfrac_value": "ppo/val/clipfrac",
    "approx_kl_update": "ppo/policy/approxkl",  # old vs updated policy within the step
    "value_explained_variance": "ppo/val/var_explained",
    "return_mean": "ppo/returns/mean",
}
# What the loop adds: samples, the KL-penalised reward, the share of toxic continuations'
# probability, their lengths, and the upper bound on new tokens drawn for the batch.
COLUMNS = ("step", "samples", *TRL_STATS, "reward_mean", "toxicity_mean", "response_tokens",
           "max_new_tokens")


def log_row(step: int, stats: Mapping[str, object], **measured: float) -> dict[str, float]:
    """One step's row from TRL's ``stats`` and what the loop measured itself."""
    row = {"step": step, **{name: float(stats[trl]) for name, trl in TRL_STATS.items()},
           **{name: float(value) for name, value in measured.items()}}
    row["reward_mean"] = row["score_mean"] - row["kl_coef"] * row["kl"]
    row["samples"] = int(row["samples"])
    return {name: row[name] for name in COLUMNS}


class LiveSeries:
    """The log as dvclive series in ``folder``; the rows given first (a resumed run's) are
    written again, so each step appears once whatever happened to an earlier attempt."""

    def __init__(self, folder: str | Path, rows: list[dict[str, float]]) -> None:
        try:
            self.live = Live(str(folder), resume=False, report=None, save_dvc_exp=False,
                             dvcyaml=None)
        except SCMError as error:  # dvclive reads the revision of HEAD, even when unused
            raise DetoxError(f"the training log (dvclive) needs a git repository with a commit "
                             f"({error}): commit the project first (git add -A && git commit)"
                             ) from None
        for row in rows:
            self.add(row)
        if not rows:  # a run that kept no step still leaves its (empty) log behind
            (Path(folder) / "plots" / "metrics").mkdir(parents=True, exist_ok=True)
            self.live.make_summary()

    def add(self, row: Mapping[str, float]) -> None:
        self.live.step = int(row["step"])
        for name, value in row.items():
            if name != "step":
                self.live.log_metric(name, value)
        self.live.next_step()


def draw_panels(log: list[dict[str, float]], panels: Mapping[str, Sequence[str]], title: str,
                path: str | Path) -> None:
    """The method's panels of its training log as one figure (a panel per title, its series
    against the step); a method that trains nothing gets a figure that says so."""
    import matplotlib

    matplotlib.use("Agg")  # files only, also on machines without a display
    import matplotlib.pyplot as plt

    drawn = [(name, [s for s in series if any(s in row for row in log)])
             for name, series in panels.items()]
    drawn = [(name, series) for name, series in drawn if series]
    figure, axes = plt.subplots(max(len(drawn), 1), 1, squeeze=False,
                                figsize=(7, 2.6 * max(len(drawn), 1)))
    if not drawn:
        axes[0][0].text(0.5, 0.5, "no training log: this method trains nothing",
                        ha="center", va="center")
        axes[0][0].set_axis_off()
    for (name, series), (axis,) in zip(drawn, axes):
        for stat in series:
            points = [(row["step"], row[stat]) for row in log if stat in row]
            axis.plot(*zip(*points), label=stat, marker="." if len(points) < 30 else None)
        axis.set_title(name, fontsize=10)
        axis.set_xlabel("step")
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    figure.suptitle(f"training: {title}", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
