"""prepare: toxicity filter, prompt tokenization, a held-out split of distinct prompts, eval
prompt sets -> data/prompts (with counts.json: what was kept and dropped, and why)."""

import pandas as pd

from detox.models import load_tokenizer
from detox.io import atomic_path, write_frame, write_json
from detox.params import load_params
from detox.prepare.params import PrepareParams
from detox.prepare.prompt_sets import (clean_prompts, drop_duplicates, filter_toxic,
                                       query_texts, sample, split, tokenize_prompts)
from detox.stage import run_stage

# wiki_toxic's label is 0/1; a score source (builtin) counts as toxic from 0.5 up.
OOD_TOXIC_THRESHOLD = 0.5


def main(params: PrepareParams) -> None:
    data, seed = params.data, params.seed
    tokenizer = load_tokenizer("data/models/base")
    counts: dict[str, dict[str, int]] = {}

    def prompts(name: str) -> pd.DataFrame:
        """The source's prompts, filtered and cut to queries, each distinct query once."""
        where = f"data.{name}={getattr(data, name)!r}"
        table = clean_prompts(pd.read_parquet(f"data/raw/{name}.parquet"), where)
        counts[name] = {"rows": len(table)}
        if name == "train":
            table = filter_toxic(table, data.toxicity_threshold, where,
                                 "lower data.toxicity_threshold")
            counts[name]["toxic_rows"] = len(table)
            table = sample(table, data.train_prompts or len(table), seed)
        elif name == "ood_toxic":
            table = filter_toxic(table, OOD_TOXIC_THRESHOLD, where,
                                 "point data.ood_toxic at toxic prompts")
            counts[name]["toxic_rows"] = len(table)
        query = data.train_query if name == "train" else "prompt"
        # One query per source text: copies of a text cut to different lengths would otherwise
        # be different prompts, free to land on both sides of the split.
        table, counts[name]["repeated_texts_dropped"], _ = drop_duplicates(
            table, query_texts(table, query, where))
        table = tokenize_prompts(table, tokenizer, data.prompt_min_tokens,
                                 data.prompt_max_tokens, seed, where, query)
        # Different texts can still be cut to the same query.
        table, counts[name]["repeated_queries_dropped"], _ = drop_duplicates(table)
        return table

    ood = {name: sample(prompts(name), data.eval_prompts, seed)
           for name in ("ood_toxic", "ood_benign")}
    # Held out means held out: no training prompt is also a test or out-of-distribution prompt.
    train_pool, _, counts["train"]["ood_overlap_dropped"] = drop_duplicates(
        prompts("train"), exclude=pd.concat([table["prompt"] for table in ood.values()]))
    train, test = split(train_pool, data.test_fraction, seed)
    counts["train"]["held_out"] = len(test)
    sets = {"train": train, "in_distribution": sample(test, data.eval_prompts, seed), **ood}
    with atomic_path("data/prompts") as out:
        out.mkdir()
        for name, table in sets.items():
            write_frame(out / f"{name}.parquet", table)
            counts.setdefault(name, {})["prompts"] = len(table)
        write_json(out / "counts.json", counts)
    for name, numbers in counts.items():
        print(f"{name}: " + ", ".join(f"{key.replace('_', ' ')} {value}"
                                      for key, value in numbers.items()))


if __name__ == "__main__":
    run_stage(lambda: main(load_params(PrepareParams)))
