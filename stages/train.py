"""train: builds data/models/trained (weights and the training half of the model card) by the
chosen `method`, with metrics/train.json (what it cost and how it went) and the training log
as dvclive series in plots/train/ (written as the run goes: `dvc plots show` while it trains).

- ppo: PPO on the training prompts. Checkpoints go to data/checkpoints/<run key>/ (see
  detox.train.resume): rerunning the stage with the same params and inputs resumes there; a
  diverged run keeps its last good checkpoint.
- word_filter: the base weights, with the bad-word ban in their generation config.
- sft, dpo: fine-tuned on the scored base samples of the sample stage (data/samples).
"""

import os
import time

import pandas as pd
from accelerate import PartialState

from detox import DetoxError
from detox.device import is_main_process, resolve_device, resolve_dtype, scorer_dtype
from detox.io import atomic_paths, read_json, write_json
from detox.models import load_causal_lm, load_tokenizer, require_context
from detox.params import load_params
from detox.scoring import load_scorer
from detox.stage import run_stage
from detox.toxicity import toxicity_reading
from detox.train.card import title, training_card
from detox.train.dpo import dpo_pairs, train_dpo
from detox.train.finetune import trainable_lm
from detox.train.log import LiveSeries
from detox.train.params import TrainParams
from detox.train.policy import count_parameters, load_trainable, merged, model_to_save
from detox.train.ppo import gradient_steps, train, train_summary
from detox.train.resume import checkpoint_root, remove_checkpoints, run_key
from detox.train.sft import sft_targets, train_sft
from detox.train.word_filter import add_word_filter

INPUTS = ("data/prompts/train.parquet", "data/models/base", "data/models/scorer", __file__)
TRAINING_LOG = "plots/train"  # dvclive's folder: plots/metrics/<stat>.tsv and metrics.json
SAMPLES = "data/samples"


def ppo(params: TrainParams, device, dtype, tokenizer):
    # Before TRL makes one without the cpu flag: under torchrun on CPU this is what gives the
    # processes their gloo group (else each would train alone, unaware of the others).
    PartialState(cpu=device.type == "cpu")
    policy, reference = load_trainable("data/models/base", params.layers, device,
                                       params.seed, params.adapter)
    require_context(policy.pretrained_model.config, params.data.prompt_max_tokens,
                    params.generation.max_new_tokens_to)
    parameters = count_parameters(policy)
    scorer = load_scorer("data/models/scorer", device, scorer_dtype(device))
    reading = toxicity_reading(scorer.id2label, scorer.multi_label, params.model.neutral_label,
                               params.model.toxic_labels)
    prompts = pd.read_parquet("data/prompts/train.parquet")["input_ids"].map(list).tolist()
    processes = int(os.environ.get("WORLD_SIZE", 1))
    if len(prompts) < params.ppo.batch_size * processes:
        raise DetoxError(f"params.yaml: ppo.batch_size={params.ppo.batch_size} x {processes} "
                         f"process(es) is more than the {len(prompts)} training prompts: lower "
                         "it or raise data.train_prompts")
    checkpoints = checkpoint_root() / run_key(params, INPUTS, processes)
    outcome = train(policy, reference, tokenizer, scorer, reading, prompts, params, device,
                    checkpoints, dtype, log_dir=TRAINING_LOG)
    if outcome.cause:
        print(f"warning: the run diverged at step {outcome.diverged_at} ({outcome.cause}); "
              f"kept the model of step {outcome.model_step}")
    summary = train_summary(outcome, parameters)
    summary |= {"prompts": len(prompts), "scorer_calls": summary["policy_samples"],
                "gradient_steps": gradient_steps(params.ppo, len(outcome.log))}
    return model_to_save(policy), summary, lambda: remove_checkpoints(checkpoints)


def word_filter(params: TrainParams, device, dtype, tokenizer):
    model = load_causal_lm("data/models/base", device)
    filtered = add_word_filter(model, tokenizer, params.word_filter.words)
    LiveSeries(TRAINING_LOG, [])  # nothing trains: an empty log
    return model, {**count_parameters(model), "trainable_params": 0, "trainable_fraction": 0.0,
                   "policy_samples": 0, "scorer_calls": 0, "gradient_steps": 0, **filtered,
                   "diverged": False}, None


def fine_tune(params: TrainParams, device, dtype, tokenizer):
    """sft or dpo, on the sample stage's scored samples (their cost is this method's too)."""
    samples, drawn = (pd.read_parquet(f"{SAMPLES}/train.parquet"),
                      read_json(f"{SAMPLES}/summary.json"))
    model, reference = trainable_lm("data/models/base", params.layers, device, params.seed,
                                    params.adapter)
    parameters = count_parameters(model)
    if params.method == "sft":
        examples = sft_targets(samples, params.sft.max_toxicity)
        steps, log = train_sft(model, tokenizer, examples, params.sft, params.seed, device,
                               params.model.precision, TRAINING_LOG)
        found = {"targets": len(examples),
                 "target_toxicity_mean": round(float(examples["best_toxicity"].mean()), 6)}
    else:
        examples = dpo_pairs(samples, params.dpo.min_margin)
        steps, log = train_dpo(model, reference, tokenizer, examples, params.dpo, params.seed,
                               device, params.model.precision, TRAINING_LOG)
        found = {"pairs": len(examples),
                 "chosen_toxicity_mean": round(float(examples["chosen_toxicity"].mean()), 6),
                 "rejected_toxicity_mean": round(float(examples["rejected_toxicity"].mean()), 6)}
    losses = [row["loss"] for row in log if "loss" in row]
    window = min(5, len(losses))
    return merged(model), {
        **parameters, "sampled_prompts": drawn["prompts"], **found,
        "policy_samples": drawn["policy_samples"], "scorer_calls": drawn["scorer_calls"],
        "gradient_steps": steps,
        "loss_start": round(sum(losses[:window]) / window, 6),
        "loss_end": round(sum(losses[-window:]) / window, 6),
        "sampling_seconds": drawn["seconds"], "diverged": False}, None


BUILDERS = {"ppo": ppo, "word_filter": word_filter, "sft": fine_tune, "dpo": fine_tune}


def main(params: TrainParams) -> None:
    started = time.perf_counter()
    device = resolve_device(params.model.device)
    dtype = resolve_dtype(params.model.precision, device)
    tokenizer = load_tokenizer("data/models/base")
    model, summary, cleanup = BUILDERS[params.method](params, device, dtype, tokenizer)
    if is_main_process():
        base = read_json("data/models/base/source.json")
        summary = {"method": params.method, "title": title(params, base["source"]), **summary,
                   "train_seconds": round(time.perf_counter() - started
                                          + summary.get("sampling_seconds", 0.0), 1)}
        card = training_card(base, read_json("data/models/scorer/source.json"), params, summary,
                             len(pd.read_parquet("data/prompts/train.parquet")))
        with atomic_paths("data/models/trained", "metrics/train.json") as (model_dir,
                                                                          summary_json):
            model.save_pretrained(model_dir)  # a LoRA adapter merged in
            tokenizer.save_pretrained(model_dir)
            card.save(model_dir / "README.md")
            write_json(summary_json, summary)
        print(f"trained ({params.method}) in {summary['train_seconds']:.0f} s")
    if cleanup is not None:
        cleanup()  # the run is done: its outputs are DVC's now


if __name__ == "__main__":
    run_stage(lambda: main(load_params(TrainParams)))
