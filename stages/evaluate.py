"""evaluate: k continuations per prompt from the base and detoxified policies on each eval set,
scored by the reward scorer, an independent judge and a fluency LM -> metrics, plots, report,
and the trained weights published as data/models/detoxified with their completed model card."""

import pandas as pd
from huggingface_hub import ModelCard

from detox.models import load_causal_lm, load_tokenizer, require_context
from detox.device import resolve_device, resolve_dtype, scorer_dtype
from detox.evaluate.fluency import continuation_nll, retokenized
from detox.evaluate.metrics import eval_metrics
from detox.evaluate.params import EvaluateParams
from detox.evaluate.plots import (fluency_vs_toxicity, toxicity_bars, toxicity_histograms,
                                  toxicity_table)
from detox.evaluate.report import caveats, render
from detox.evaluate.rollouts import rollout_table
from detox.headline import headline
from detox.io import atomic_paths, link_files, read_json, write_frame, write_json
from detox.model_card import with_evaluation
from detox.params import load_params
from detox.scoring import load_scorer
from detox.toxicity import toxicity_reading
from detox.stage import run_stage

EVAL_SETS = ("in_distribution", "ood_toxic", "ood_benign")
MODELS = {"base": "data/models/base", "detoxified": "data/models/trained"}
OUTPUTS = ("data/models/detoxified", "data/rollouts", "metrics/eval.json", "metrics/headline.json",
           "plots/eval_toxicity.csv", "plots/toxicity.png", "plots/toxicity_histograms.png",
           "plots/fluency_vs_toxicity.png", "metrics/report.md")


def main(params: EvaluateParams) -> None:
    model_params, eval_params = params.model, params.eval
    device = resolve_device(model_params.device)
    dtype = resolve_dtype(model_params.precision, device)
    tokenizer = load_tokenizer("data/models/base")
    prompts = {name: pd.read_parquet(f"data/prompts/{name}.parquet") for name in EVAL_SETS}

    rollouts: dict[str, dict[str, pd.DataFrame]] = {name: {} for name in EVAL_SETS}
    for model_name, path in MODELS.items():
        model = load_causal_lm(path, device)
        require_context(model.config, params.data.prompt_max_tokens, eval_params.max_new_tokens,
                        "eval.max_new_tokens")
        for name, table in prompts.items():
            # Same prompts and seed for both models: the comparison is paired.
            rollouts[name][model_name] = rollout_table(
                model, tokenizer, table, eval_params.samples_per_prompt, eval_params,
                eval_params.batch_size, params.seed, dtype, desc=f"{model_name} on {name}")
        del model

    # Scored all at once: one pass of each scorer over every continuation.
    everything = pd.concat([frame.assign(eval_set=name, model=model_name)
                            for name, by_model in rollouts.items()
                            for model_name, frame in by_model.items()], ignore_index=True)
    texts = everything["continuation"].tolist()
    for column, folder, neutral_label, toxic_labels, prefix in (
            ("toxicity", "scorer", model_params.neutral_label, model_params.toxic_labels,
             "model."),
            ("judge_toxicity", "judge", model_params.judge_neutral_label,
             model_params.judge_toxic_labels, "model.judge_")):
        scorer = load_scorer(f"data/models/{folder}", device, scorer_dtype(device),
                             eval_params.batch_size)
        reading = toxicity_reading(scorer.id2label, scorer.multi_label, neutral_label,
                                   toxic_labels, prefix)
        everything[column] = reading.toxicity(scorer.logits(texts)).round(6)
        del scorer
    # The drift from the base, per token: every continuation's sampled ids under the base
    # policy and under the policy that wrote them (the base's own rows need no second pass).
    def nll(path: str, rows: pd.DataFrame, desc: str):
        return continuation_nll(load_causal_lm(path, device), tokenizer.pad_token_id,
                                rows["prompt_ids"].tolist(), rows["continuation_ids"].tolist(),
                                eval_params.batch_size, desc)

    everything["nll_base"], everything["policy_tokens"] = nll(
        "data/models/base", everything, "under the base")
    trained = (everything["model"] == "detoxified").to_numpy()
    everything["nll_policy"] = everything["nll_base"]
    everything.loc[trained, "nll_policy"] = nll(
        "data/models/trained", everything[trained], "under the detoxified")[0]
    # Without a fluency LM of its own, perplexity is under the base policy: then it is a
    # measure of drift (its log is entropy + KL to the base), not of fluency.
    if model_params.fluency_lm is None:
        everything["nll"], everything["tokens"] = everything["nll_base"], everything["policy_tokens"]
    else:
        fluency_tokenizer = load_tokenizer("data/models/fluency")
        everything["nll"], everything["tokens"] = continuation_nll(
            load_causal_lm("data/models/fluency", device), fluency_tokenizer.pad_token_id,
            *retokenized(fluency_tokenizer, everything["prompt"].tolist(), texts,
                         everything["ended_with_eos"].tolist()),
            eval_params.batch_size)
    rollouts = {name: {model_name: everything[(everything["eval_set"] == name)
                                              & (everything["model"] == model_name)]
                       .drop(columns=["eval_set", "model"]).reset_index(drop=True)
                       for model_name in MODELS} for name in EVAL_SETS}

    metrics = eval_metrics(rollouts, params.seed, eval_params.bootstrap_resamples)
    training = read_json("metrics/train.json")
    title = training["title"]  # what train made, in its own words
    sources = {"in_distribution": params.data.train, "ood_toxic": params.data.ood_toxic,
               "ood_benign": params.data.ood_benign}
    fluency_lm = ("the base policy" if model_params.fluency_lm is None
                  else f"`{model_params.fluency_lm}`")
    card = with_evaluation(ModelCard.load("data/models/trained/README.md"), metrics, sources,
                           caveats(metrics, training, fluency_lm), fluency_lm)
    with atomic_paths(*OUTPUTS) as (detoxified, rollouts_dir, eval_json, headline_json, table,
                                    bars, histograms, fluency, report):
        link_files("data/models/trained", detoxified, skip=("README.md",))
        card.save(detoxified / "README.md")
        rollouts_dir.mkdir()
        for name, by_model in rollouts.items():
            write_frame(rollouts_dir / f"{name}.parquet",
                        pd.concat(by_model, names=["model"]).reset_index(level=0))
        write_json(eval_json, metrics)
        write_json(headline_json, headline(metrics, training))
        write_frame(table, toxicity_table(metrics))
        toxicity_bars(metrics, bars, title)
        toxicity_histograms(rollouts, histograms)
        fluency_vs_toxicity(metrics, fluency)
        report.write_text(render(metrics, rollouts, title, training, fluency_lm))


if __name__ == "__main__":
    run_stage(lambda: main(load_params(EvaluateParams)))
