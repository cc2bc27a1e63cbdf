"""prepare: toxicity filter, prompt tokenization, 80/20 split, eval prompt sets -> data/prompts."""

import pandas as pd

from detox.data import clean_prompts, filter_toxic, sample, split, tokenize_prompts
from detox.io import atomic_path, write_frame
from detox.params import Params
from detox.policy import load_tokenizer
from detox.stage import run_stage

# wiki_toxic's label is 0/1; a score source (builtin) counts as toxic from 0.5 up.
OOD_TOXIC_THRESHOLD = 0.5


def main(params: Params) -> None:
    data, seed = params.data, params.seed
    tokenizer = load_tokenizer("data/models/base")

    def prompts(name: str) -> pd.DataFrame:
        where = f"data.{name}={getattr(data, name)!r}"
        table = clean_prompts(pd.read_parquet(f"data/raw/{name}.parquet"), where)
        if name == "train":
            table = filter_toxic(table, data.toxicity_threshold, where,
                                 "lower data.toxicity_threshold")
            table = sample(table, data.train_prompts or len(table), seed)
        elif name == "ood_toxic":
            table = filter_toxic(table, OOD_TOXIC_THRESHOLD, where,
                                 "point data.ood_toxic at toxic prompts")
        return tokenize_prompts(table, tokenizer, data.prompt_min_tokens, data.prompt_max_tokens,
                                seed, where)

    train, test = split(prompts("train"), data.test_fraction, seed)
    sets = {
        "train": train,
        "in_distribution": sample(test, data.eval_prompts, seed),
        "ood_toxic": sample(prompts("ood_toxic"), data.eval_prompts, seed),
        "ood_benign": sample(prompts("ood_benign"), data.eval_prompts, seed),
    }
    with atomic_path("data/prompts") as out:
        out.mkdir()
        for name, table in sets.items():
            write_frame(out / f"{name}.parquet", table)
            print(f"{name}: {len(table)} prompts")


if __name__ == "__main__":
    run_stage(main)
