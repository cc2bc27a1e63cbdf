"""The model card that travels with the detoxified weights (``data/models/detoxified/README.md``).

Written in two halves, by the stages that know them: ``train`` writes what the model is and how
it was trained (``detox.train.card.training_card``, into ``data/models/trained/README.md``);
``evaluate`` adds how it scores and the caveats (``with_evaluation``, here) when it publishes the
weights as ``data/models/detoxified``. The metadata is ``huggingface_hub``'s ``ModelCardData``, with the
eval results as the Hub's ``model-index``, so the folder can be pushed to the Hub as it is.
No dates, hostnames or wall-clock seconds (``metrics/train_time.json`` has those): a rerun with
the same seed writes the same card.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from huggingface_hub import EvalResult, ModelCard

from detox.markdown import table

LOCAL_PREFIXES = ("builtin:", "/", ".", "~")
# (metric key in metrics/eval.json, name on the card); lower is better for all five
CARD_METRICS = (("mean_toxicity", "mean toxicity (reward scorer)"),
                ("expected_max_toxicity", "expected maximum toxicity"),
                ("judge_mean_toxicity", "mean toxicity (independent judge)"),
                ("perplexity", "perplexity (fluency LM, else the base model)"),
                ("kl_to_base", "KL to the base model (nats per token)"))


def hub_id(source: str | None) -> str | None:
    """The Hub repository ``source`` names, if it names one (without ``?name=..&split=..``):
    the card's metadata may only name those."""
    repository = (source or "").split("?")[0]
    if not repository or repository.startswith(LOCAL_PREFIXES) or repository.count("/") != 1:
        return None
    return repository


def with_evaluation(card: ModelCard, metrics: Mapping[str, Any], sources: Mapping[str, str],
                    caveats: list[str], fluency: str = "the base policy") -> ModelCard:
    """``card`` with the detoxified model's results per eval set (``metrics/eval.json``) as
    ``model-index`` eval results and a table against the base model, and the report's caveats.
    ``sources`` names the dataset each eval set was drawn from, ``fluency`` the LM that
    perplexity is under."""
    results, rows = [], []
    for eval_set, by_model in metrics.items():
        base, detoxified = by_model["base"], by_model["detoxified"]
        for key, name in CARD_METRICS:
            results.append(EvalResult(  # the Hub's dataset type is a Hub id, or none
                task_type="text-generation", dataset_type=hub_id(sources[eval_set]) or eval_set,
                dataset_name=eval_set, metric_type=key, metric_name=name,
                metric_value=detoxified[key]))
        difference = by_model["detoxified_minus_base"]["mean_toxicity"]
        rows.append([
            eval_set, f"{base['mean_toxicity']:.4f} → {detoxified['mean_toxicity']:.4f}",
            f"{difference['diff']:+.3f} [{difference['ci_low']:+.3f}, "
            f"{difference['ci_high']:+.3f}]",
            f"{base['expected_max_toxicity']:.3f} → {detoxified['expected_max_toxicity']:.3f}",
            f"{base['judge_mean_toxicity']:.3f} → {detoxified['judge_mean_toxicity']:.3f}",
            f"{base['perplexity']:.1f} → {detoxified['perplexity']:.1f}",
            f"{detoxified['kl_to_base']:.3f}"])
    first = next(iter(metrics.values()))["base"]
    evaluation = [
        "## Evaluation",
        f"{first['prompts']} prompts per eval set (fewer where a set has fewer distinct "
        f"prompts), {first['samples_per_prompt']} continuations each, the same prompts and "
        "seeds for the base model and this one; the sets are drawn from "
        + ", ".join(f"`{source}` ({eval_set})" for eval_set, source in sources.items())
        + " (in_distribution: the held-out prompts of the training data). Base → detoxified; "
        "the difference is the mean per-prompt difference with its 95% paired bootstrap CI.",
        table(["eval set", "mean toxicity", "difference", "expected max toxicity", "judge",
               f"perplexity under {fluency}", "KL to base (nats/token)"], rows),
        "Toxicity is the reward scorer's, the classifier the training methods learn from: a "
        "drop the independent judge does not share is the scorer being gamed, not "
        "detoxification. "
        + ("Perplexity is under the base model itself, so it measures drift, not fluency: its "
           "log is the entropy plus the KL to the base, partly the intended move away from what "
           "the base says after a toxic prompt, partly lost fluency. "
           if fluency == "the base policy" else
           f"Perplexity is under {fluency}, an LM of its own: a rise is lost fluency. ")
        + "The KL is estimated on this model's own continuations.",
    ]
    if caveats:
        evaluation += ["### Caveats", "\n".join(f"- {text}" for text in caveats)]
    evaluated = ModelCard(card.content)  # a copy: ``card`` stays the training half
    evaluated.data.eval_results = results
    evaluated.text = f"{card.text.rstrip()}\n\n" + "\n\n".join(evaluation) + "\n"
    return evaluated
