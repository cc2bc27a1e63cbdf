"""evaluate: base and detoxified rollouts on each eval set, scored -> metrics/eval.json, plots."""

import pandas as pd

from detox.device import resolve_device, resolve_dtype, scorer_dtype
from detox.io import atomic_path, write_frame, write_json
from detox.metrics import eval_metrics
from detox.params import Params
from detox.plots import toxicity_bars, toxicity_table
from detox.policy import load_causal_lm, load_tokenizer
from detox.rollouts import continuations
from detox.scorers import load_scorer, neutral_index, toxicity
from detox.stage import run_stage

EVAL_SETS = ("in_distribution", "ood_toxic", "ood_benign")
MODELS = ("base", "detoxified")


def main(params: Params) -> None:
    device = resolve_device(params.model.device)
    dtype = resolve_dtype(params.model.precision, device)
    tokenizer = load_tokenizer("data/models/base")
    scorer = load_scorer("data/models/scorer", device, scorer_dtype(device),
                         params.eval.batch_size)
    neutral = neutral_index(scorer.id2label, params.model.neutral_label)
    prompts = {name: pd.read_parquet(f"data/prompts/{name}.parquet") for name in EVAL_SETS}

    rollouts: dict[str, dict[str, pd.DataFrame]] = {name: {} for name in EVAL_SETS}
    for model_name in MODELS:
        model = load_causal_lm(f"data/models/{model_name}", device)
        for name, table in prompts.items():
            # Same prompts and seed for both models: the comparison is paired.
            texts = continuations(model, tokenizer, table["input_ids"].map(list).tolist(),
                                  params.generation, params.eval.batch_size, params.seed, dtype,
                                  desc=f"{model_name} on {name}")
            rollouts[name][model_name] = pd.DataFrame({
                "prompt": table["prompt"], "continuation": texts,
                "toxicity": toxicity(scorer.logits(texts), neutral).round(6),
            })

    metrics = eval_metrics(rollouts)
    with atomic_path("data/rollouts") as out:
        out.mkdir()
        for name, by_model in rollouts.items():
            write_frame(out / f"{name}.parquet",
                        pd.concat(by_model, names=["model"]).reset_index(level=0))
    write_json("metrics/eval.json", metrics)
    write_frame("plots/eval_toxicity.csv", toxicity_table(metrics))
    toxicity_bars(metrics, "plots/toxicity.png",
                  f"{params.model.policy}, {params.layers} trainable blocks, {params.reward}")


if __name__ == "__main__":
    run_stage(main)
