"""The train stage's summary, ``metrics/train.json``: what every method reports (its size, its
budget, whether it diverged) and, flat beside those, the numbers only that method has.

The card reads it as a ``TrainSummary``; the headline, the report and the sweep read the keys
they need from the file (evaluate and the sweep import no training code);
``tests/test_methods.py`` holds every method's summary to all four.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

WINDOW = 5  # steps averaged for a trend's start and end (and the guard's score levels)


def window_means(values: Sequence[float], window: int = WINDOW) -> tuple[float | None,
                                                                         float | None]:
    """The mean of the first and of the last ``window`` values (None for no values)."""
    if not values:
        return None, None
    size = min(window, len(values))
    return (round(float(sum(values[:size]) / size), 6),
            round(float(sum(values[-size:]) / size), 6))


@dataclass
class TrainSummary:
    """What a method built: parameter counts, the budget it spent (policy samples drawn, scorer
    calls, optimizer steps) and how it ended; ``details`` are the method's own. No wall-clock
    seconds: a rerun must write the same summary, or everything downstream reruns too (they
    are in ``metrics/train_time.json``)."""

    total_params: int
    trainable_params: int
    trainable_fraction: float
    policy_samples: int
    scorer_calls: int
    gradient_steps: int
    details: dict[str, Any] = field(default_factory=dict)
    diverged: bool = False
    diverged_at_step: int | None = None  # where a divergence was detected,
    divergence: str | None = None  # why,
    model_step: int | None = None  # and the step whose weights were kept
    # set by the train stage once the method is done
    method: str = ""
    title: str = ""

    def to_json(self) -> dict[str, Any]:
        """Flat, as ``metrics/train.json`` holds it (``dvc metrics show`` reads it so); the
        divergence and sampling keys only where they apply."""
        common = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "details"}
        optional = ("diverged_at_step", "divergence", "model_step")
        flat = {key: value for key, value in common.items()
                if not (key in optional and value is None)}
        clash = set(self.details) & set(flat)
        if clash:
            raise ValueError(f"a method's details may not reuse the summary's keys: {clash}")
        return {"method": self.method, "title": self.title, **flat, **self.details}

    @classmethod
    def of(cls, counts: Mapping[str, Any], policy_samples: int, scorer_calls: int,
           gradient_steps: int, **details: Any) -> TrainSummary:
        """A summary from ``count_parameters``' counts (its other keys, such as LoRA's target
        modules, go to the details with ``details``)."""
        counts = dict(counts)
        return cls(total_params=counts.pop("total_params"),
                   trainable_params=counts.pop("trainable_params"),
                   trainable_fraction=counts.pop("trainable_fraction"),
                   policy_samples=policy_samples, scorer_calls=scorer_calls,
                   gradient_steps=gradient_steps, details={**counts, **details})

    @classmethod
    def untrained(cls, total_params: int, **details: Any) -> TrainSummary:
        """The summary of a method that trains nothing and draws no sample."""
        return cls(total_params=total_params, trainable_params=0, trainable_fraction=0.0,
                   policy_samples=0, scorer_calls=0, gradient_steps=0, details=details)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainSummary:
        names = {f.name for f in fields(cls)} - {"details"}
        return cls(**{key: value for key, value in data.items() if key in names},
                   details={key: value for key, value in data.items() if key not in names})
