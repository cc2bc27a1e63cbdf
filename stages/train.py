"""train: PPO on the training prompts -> data/models/trained (weights and the training half of
the model card), metrics/train.json, and every step's stats as dvclive series in plots/train/
(written as the run goes: `dvc plots show` while it trains).

Checkpoints go to data/checkpoints/<run key>/ (see detox.train.resume): rerunning the stage
with the same params and inputs resumes there; a diverged run keeps its last good checkpoint.
"""

import os
import time

import pandas as pd
from accelerate import PartialState

from detox import DetoxError
from detox.device import is_main_process, resolve_device, resolve_dtype, scorer_dtype
from detox.io import atomic_paths, read_json, write_json
from detox.model_card import training_card
from detox.models import load_tokenizer, require_context
from detox.params import load_params
from detox.scoring import load_scorer
from detox.toxicity import neutral_index
from detox.stage import run_stage
from detox.train.params import TrainParams
from detox.train.policy import count_parameters, load_trainable, model_to_save
from detox.train.ppo import train, train_summary
from detox.train.resume import checkpoint_root, remove_checkpoints, run_key

INPUTS = ("data/prompts/train.parquet", "data/models/base", "data/models/scorer", __file__)
TRAINING_LOG = "plots/train"  # dvclive's folder: plots/metrics/<stat>.tsv and metrics.json


def main(params: TrainParams) -> None:
    started = time.perf_counter()
    device = resolve_device(params.model.device)
    dtype = resolve_dtype(params.model.precision, device)
    # Before TRL makes one without the cpu flag: under torchrun on CPU this is what gives the
    # processes their gloo group (else each would train alone, unaware of the others).
    PartialState(cpu=device.type == "cpu")
    tokenizer = load_tokenizer("data/models/base")
    policy, reference = load_trainable("data/models/base", params.layers, device,
                                       params.seed, params.adapter)
    require_context(policy.pretrained_model.config, params.data.prompt_max_tokens,
                    params.generation.max_new_tokens_to)
    parameters = count_parameters(policy)
    scorer = load_scorer("data/models/scorer", device, scorer_dtype(device))
    neutral = neutral_index(scorer.id2label, params.model.neutral_label)
    prompts = pd.read_parquet("data/prompts/train.parquet")["input_ids"].map(list).tolist()
    processes = int(os.environ.get("WORLD_SIZE", 1))
    if len(prompts) < params.ppo.batch_size * processes:
        raise DetoxError(f"params.yaml: ppo.batch_size={params.ppo.batch_size} x {processes} "
                         f"process(es) is more than the {len(prompts)} training prompts: lower "
                         "it or raise data.train_prompts")

    checkpoints = checkpoint_root() / run_key(params, INPUTS, processes)
    outcome = train(policy, reference, tokenizer, scorer, neutral, prompts, params, device,
                    checkpoints, dtype, log_dir=TRAINING_LOG)
    if outcome.cause:
        print(f"warning: the run diverged at step {outcome.diverged_at} ({outcome.cause}); "
              f"kept the model of step {outcome.model_step}")
    if is_main_process():
        summary = train_summary(outcome, parameters)
        card = training_card(read_json("data/models/base/source.json"),
                             read_json("data/models/scorer/source.json"), params, summary,
                             len(prompts))
        with atomic_paths("data/models/trained", "metrics/train.json") as (model_dir,
                                                                          summary_json):
            model_to_save(policy).save_pretrained(model_dir)  # a LoRA adapter merged in
            tokenizer.save_pretrained(model_dir)
            card.save(model_dir / "README.md")
            write_json(summary_json, summary)
        print(f"trained in {time.perf_counter() - started:.0f} s")
    remove_checkpoints(checkpoints)  # the run is done: its outputs are DVC's now


if __name__ == "__main__":
    run_stage(lambda: main(load_params(TrainParams)))
