"""The markdown report: the paper's tables plus the extra metrics, CIs and example rollouts."""

from __future__ import annotations

import math

import pandas as pd

from detox.markdown import table

COLUMNS = [  # (metrics key, header, decimals)
    ("mean_toxicity", "Mean Toxicity", 4), ("std_toxicity", "Std Toxicity", 4),
    ("expected_max_toxicity", "Exp. Max Toxicity", 4),
    ("toxicity_probability", "Toxicity Prob.", 3),
    ("judge_mean_toxicity", "Judge Mean Tox.", 4), ("perplexity", "Perplexity", 2),
    ("kl_to_base", "KL/token", 3),
    ("distinct_1", "Dist-1", 3), ("distinct_2", "Dist-2", 3), ("distinct_3", "Dist-3", 3),
    ("distinct_2_per_prompt", "Dist-2/prompt", 3),
    ("continuation_tokens_mean", "Tokens", 1), ("empty_share", "Empty", 3),
]
DIFFERENCES = [("mean_toxicity", "Mean Toxicity"), ("expected_max_toxicity", "Exp. Max Toxicity"),
               ("judge_mean_toxicity", "Judge Mean Tox.")]


# When the detoxified model's fluency or length moves this far from the base model's, lower
# toxicity may come from writing worse or less rather than from writing less toxically.
PERPLEXITY_RATIO = 2.0
LENGTH_RATIO = 0.75
EMPTY_SHARE_RISE = 0.1


def caveats(metrics: dict, training: dict | None = None,
            fluency: str = "the base policy") -> list[str]:
    """Plain-words warnings: a diverged training run, and where the detoxified model writes
    markedly worse, shorter or less than the base model. ``fluency`` names the perplexity's
    LM."""
    found = []
    if training and training.get("diverged"):
        found.append(f"the training run diverged at step {training['diverged_at_step']} "
                     f"({training['divergence']}); the detoxified model evaluated here is its "
                     f"last good checkpoint, from step {training['model_step']}.")
    for eval_set, by_model in metrics.items():
        base, detox = by_model["base"], by_model["detoxified"]
        if detox["perplexity"] >= PERPLEXITY_RATIO * base["perplexity"]:
            found.append(f"{eval_set}: perplexity under {fluency} rose "
                         f"{detox['perplexity'] / base['perplexity']:.1f}x "
                         f"({base['perplexity']:.2f} -> {detox['perplexity']:.2f}; KL to the base "
                         f"{detox['kl_to_base']:.2f} nats per token): part of the drop in "
                         "toxicity may be lost fluency.")
        if (base["continuation_tokens_mean"] > 0
                and detox["continuation_tokens_mean"] <= LENGTH_RATIO * base["continuation_tokens_mean"]):
            found.append(f"{eval_set}: continuations are markedly shorter "
                         f"({base['continuation_tokens_mean']:.1f} -> "
                         f"{detox['continuation_tokens_mean']:.1f} tokens on average): a model "
                         "that writes less looks less toxic.")
        if detox["empty_share"] - base["empty_share"] >= EMPTY_SHARE_RISE:
            found.append(f"{eval_set}: {detox['empty_share']:.0%} of continuations are empty "
                         f"(base: {base['empty_share']:.0%}); an empty continuation scores as "
                         "non-toxic, so the toxicity numbers flatter this model.")
    return found


def _example(row) -> str:
    """A continuation with its toxicity and its own perplexity under the fluency LM."""
    perplexity = math.exp(row.nll / row.tokens) if row.tokens else float("nan")
    return f"{_cell(row.continuation)} ({row.toxicity:.2f}, {perplexity:.0f})"


def _cell(text: str, limit: int = 90) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render(metrics: dict, rollouts: dict[str, dict[str, pd.DataFrame]], title: str,
           training: dict | None = None, fluency: str = "the base policy",
           examples: int = 3) -> str:
    first = next(iter(metrics.values()))["base"]
    drift = (" (so it measures how far a model moved from the base, not fluency: its log is "
             "the entropy plus the KL to the base)" if fluency == "the base policy" else "")
    parts = [
        f"# Detoxification report: {title}",
        f"{first['prompts']} prompts per eval set, {first['samples_per_prompt']} continuations "
        "per prompt, the same prompts and seeds for both models. Toxicity is the reward "
        f"scorer's; the judge is an independent classifier; perplexity is under {fluency}"
        f"{drift}; KL/token is the policy's KL to the base policy in nats per token, estimated "
        "on its own continuations; Dist-n is distinct n-grams / all n-grams over all "
        "continuations of a set, Dist-2/prompt the same among each prompt's continuations, "
        "averaged over prompts; Tokens is the mean continuation length in the policy's tokens "
        "and Empty the share of continuations that ended before their first token.",
    ]
    warnings = caveats(metrics, training, fluency)
    if warnings:
        parts += ["## Warnings", "\n".join(f"- **Warning.** {text}" for text in warnings)]
    for model, heading in (("base", "Base model performance"),
                           ("detoxified", "Fine-tuned model performance")):
        rows = [[eval_set] + [f"{by_model[model][key]:.{digits}f}" for key, _, digits in COLUMNS]
                for eval_set, by_model in metrics.items()]
        parts += [f"## {heading}", table(["Dataset id"] + [h for _, h, _ in COLUMNS], rows)]
    rows = [[eval_set] + [f"{d[key]['diff']:+.4f} [{d[key]['ci_low']:+.4f}, {d[key]['ci_high']:+.4f}]"
                          for key, _ in DIFFERENCES]
            for eval_set, by_model in metrics.items()
            for d in [by_model["detoxified_minus_base"]]]
    parts += ["## Detoxified minus base (95% bootstrap CI, paired by prompt)",
              table(["Dataset id"] + [h for _, h in DIFFERENCES], rows)]
    parts.append("## Examples (first continuation of the first prompts; toxicity, perplexity)")
    for eval_set, by_model in rollouts.items():
        base, detoxified = (by_model[m][by_model[m]["sample"] == 0].head(examples)
                            for m in ("base", "detoxified"))
        rows = [[_cell(b.prompt), _example(b), _example(d)]
                for b, d in zip(base.itertuples(), detoxified.itertuples())]
        parts += [f"### {eval_set}", table(["prompt", "base", "detoxified"], rows)]
    return "\n\n".join(parts) + "\n"
