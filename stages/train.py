"""train: PPO on the training prompts -> data/models/detoxified, metrics/train.json, curve."""

import time

import pandas as pd

from detox import DetoxError
from detox.models import load_tokenizer, require_context
from detox.device import is_main_process, resolve_device, resolve_dtype, scorer_dtype
from detox.io import atomic_paths, write_frame, write_json
from detox.params import load_params
from detox.scoring import load_scorer, neutral_index
from detox.stage import run_stage
from detox.train.params import TrainParams
from detox.train.policy import count_parameters, load_trainable
from detox.train.ppo import train, train_summary


def main(params: TrainParams) -> None:
    started = time.perf_counter()
    device = resolve_device(params.model.device)
    dtype = resolve_dtype(params.model.precision, device)
    tokenizer = load_tokenizer("data/models/base")
    policy, reference = load_trainable("data/models/base", params.layers, device,
                                       params.seed)
    require_context(policy.pretrained_model.config, params.data.prompt_max_tokens,
                    params.generation.max_new_tokens)
    parameters = count_parameters(policy)
    scorer = load_scorer("data/models/scorer", device, scorer_dtype(device))
    neutral = neutral_index(scorer.id2label, params.model.neutral_label)
    prompts = pd.read_parquet("data/prompts/train.parquet")["input_ids"].map(list).tolist()
    if len(prompts) < params.ppo.batch_size:
        raise DetoxError(f"params.yaml: ppo.batch_size={params.ppo.batch_size} is more than the "
                         f"{len(prompts)} training prompts: lower it or raise data.train_prompts")

    log = train(policy, reference, tokenizer, scorer, neutral, prompts, params, device, dtype)
    if not is_main_process():
        return

    with atomic_paths("data/models/detoxified", "plots/train_curve.csv",
                      "metrics/train.json") as (model_dir, curve, summary):
        policy.pretrained_model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        write_frame(curve, pd.DataFrame(log).drop(columns="seconds"))
        write_json(summary, train_summary(log, parameters, time.perf_counter() - started))


if __name__ == "__main__":
    run_stage(lambda: main(load_params(TrainParams)))
