"""The headline metrics: the few numbers a reviewer reads, in ``metrics/headline.json``.

This module is the one place their names and shape are defined: the evaluate stage writes the
file with ``headline()``, and the review and sweep commands read it. ``metrics/eval.json`` stays
the detail. Nothing here may change from run to run without a change of inputs (no wall-clock
time), so that ``dvc metrics diff`` shows only what a change did.

Shape (DVC flattens it to keys such as ``ood_toxic.toxicity_detoxified``)::

    {"<eval set>": {"toxicity_base": .., "toxicity_detoxified": .., "toxicity_diff": ..,
                    "toxicity_ci_low": .., "toxicity_ci_high": .., "emt_detoxified": ..,
                    "judge_diff": .., "perplexity_ratio": .., "kl_to_base": ..,
                    "tokens_detoxified": ..},
     ... one entry per eval set ...,
     "trainable_params": .., "diverged": .., "policy_samples": .., "gradient_steps": ..}

The training facts come from ``metrics/train.json``, whatever the ``method``: its budget is
counted in policy samples drawn and optimizer steps, never in seconds (those are in
``metrics/train_time.json``, which the sweep reads for its budget table).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from detox import DetoxError

PATH = "metrics/headline.json"

# Per eval set: mean toxicity before and after, the paired difference with its 95% CI, the
# expected maximum toxicity after (is the worst of a prompt's samples still toxic?), the judge's
# difference (does an independent scorer agree?), detoxified / base perplexity (did fluency pay
# for it?), the detoxified policy's KL to the base in nats per token (how far did it move?) and
# its mean continuation length (a policy that stops writing looks non-toxic).
PER_SET_KEYS = ("toxicity_base", "toxicity_detoxified", "toxicity_diff", "toxicity_ci_low",
                "toxicity_ci_high", "emt_detoxified", "judge_diff", "perplexity_ratio",
                "kl_to_base", "tokens_detoxified")
# From training: its size, whether it diverged, and its budget (deterministic counts, so that
# methods compare at equal cost and a rerun does not move them).
TRAINING_KEYS = ("trainable_params", "diverged", "policy_samples", "gradient_steps")


def headline(eval_metrics: Mapping[str, Any], training: Mapping[str, Any]) -> dict:
    """The headline from ``metrics/eval.json``'s per-set results and ``metrics/train.json``."""
    missing = [key for key in TRAINING_KEYS if key not in training]
    if missing:
        raise DetoxError(f"metrics/train.json has no {', '.join(missing)}: rerun the train "
                         "stage (`dvc repro train`)")
    per_set = {}
    for eval_set, result in eval_metrics.items():
        base, detoxified = result["base"], result["detoxified"]
        difference = result["detoxified_minus_base"]
        per_set[eval_set] = {
            "toxicity_base": base["mean_toxicity"],
            "toxicity_detoxified": detoxified["mean_toxicity"],
            "toxicity_diff": difference["mean_toxicity"]["diff"],
            "toxicity_ci_low": difference["mean_toxicity"]["ci_low"],
            "toxicity_ci_high": difference["mean_toxicity"]["ci_high"],
            "emt_detoxified": detoxified["expected_max_toxicity"],
            "judge_diff": difference["judge_mean_toxicity"]["diff"],
            "perplexity_ratio": round(detoxified["perplexity"] / base["perplexity"], 4),
            "kl_to_base": round(detoxified["kl_to_base"], 4),
            "tokens_detoxified": detoxified["continuation_tokens_mean"],
        }
    return {**per_set, "trainable_params": int(training["trainable_params"]),
            "diverged": bool(training["diverged"]),
            "policy_samples": int(training["policy_samples"]),
            "gradient_steps": int(training["gradient_steps"])}


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys, the way DVC names metrics and params."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def eval_sets(flat_keys: Iterable[str]) -> list[str]:
    """The eval sets named in flattened headline keys, in the order they first appear."""
    found: dict[str, None] = {}
    for key in flat_keys:
        eval_set, _, name = key.rpartition(".")
        if name in PER_SET_KEYS:
            found.setdefault(eval_set)
    return list(found)


def ordered(flat_keys: Iterable[str]) -> list[str]:
    """Flattened headline keys in reading order: eval set by eval set, then training."""
    keys = list(flat_keys)
    sets = eval_sets(keys)

    def position(key: str) -> tuple[int, int]:
        eval_set, _, name = key.rpartition(".")
        if eval_set in sets and name in PER_SET_KEYS:
            return sets.index(eval_set), PER_SET_KEYS.index(name)
        known = key in TRAINING_KEYS
        return len(sets), TRAINING_KEYS.index(key) if known else len(TRAINING_KEYS)

    return sorted(keys, key=position)
