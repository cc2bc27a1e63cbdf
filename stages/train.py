"""train: PPO on the training prompts -> data/models/detoxified, metrics/train.json, curve."""

import time

import pandas as pd

from detox.device import is_main_process, resolve_device, resolve_dtype, scorer_dtype
from detox.io import atomic_path, write_frame, write_json
from detox.metrics import train_summary
from detox.params import Params
from detox.policy import count_parameters, load_tokenizer, load_trainable
from detox.ppo import train
from detox.scorers import load_scorer, neutral_index
from detox.stage import run_stage


def main(params: Params) -> None:
    started = time.perf_counter()
    device = resolve_device(params.model.device)
    dtype = resolve_dtype(params.model.precision, device)
    tokenizer = load_tokenizer("data/models/base")
    policy, reference = load_trainable("data/models/base", params.layers, device,
                                       params.seed)
    parameters = count_parameters(policy)
    scorer = load_scorer("data/models/scorer", device, scorer_dtype(device))
    neutral = neutral_index(scorer.id2label, params.model.neutral_label)
    prompts = pd.read_parquet("data/prompts/train.parquet")["input_ids"].map(list).tolist()

    log = train(policy, reference, tokenizer, scorer, neutral, prompts, params, device, dtype)
    if not is_main_process():
        return

    with atomic_path("data/models/detoxified") as out:
        policy.pretrained_model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    write_frame("plots/train_curve.csv", pd.DataFrame(log).drop(columns="seconds"))
    write_json("metrics/train.json",
               train_summary(log, parameters, time.perf_counter() - started))


if __name__ == "__main__":
    run_stage(main)
