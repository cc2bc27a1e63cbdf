"""sample: k continuations of the base policy per training prompt, scored by the reward scorer
-> data/samples/train.parquet (one row per sample) and data/samples/summary.json (what was
drawn and what it cost). Drawn once for every method that reads them, so a change of one
method's params redoes neither the sampling nor the other methods. For a method
that reads no samples (data/method_inputs.json) nothing is drawn: the summary says so."""

import time

import pandas as pd

from detox.device import resolve_device, resolve_dtype, scorer_dtype
from detox.io import atomic_path, read_json, write_frame, write_json
from detox.models import load_causal_lm, load_tokenizer, require_context
from detox.params import load_params
from detox.sample.params import SampleParams
from detox.sample.samples import pick_prompts, scored_samples
from detox.scoring import load_scorer
from detox.stage import run_stage
from detox.toxicity import toxicity_reading


def main(params: SampleParams) -> None:
    if not read_json("data/method_inputs.json")["samples"]:
        with atomic_path("data/samples") as out:
            out.mkdir()
            write_json(out / "summary.json", {"prompts": 0, "per_prompt": 0, "policy_samples": 0,
                                              "scorer_calls": 0, "toxicity_mean": None,
                                              "seconds": 0.0})
        print("no samples drawn: the chosen method reads none")
        return
    started = time.perf_counter()
    device = resolve_device(params.model.device)
    dtype = resolve_dtype(params.model.precision, device)
    tokenizer = load_tokenizer("data/models/base")
    model = load_causal_lm("data/models/base", device)
    require_context(model.config, params.data.prompt_max_tokens,
                    params.generation.max_new_tokens_to)
    scorer = load_scorer("data/models/scorer", device, scorer_dtype(device))
    reading = toxicity_reading(scorer.id2label, scorer.multi_label, params.model.neutral_label,
                               params.model.toxic_labels)
    samples = params.samples
    prompts = pick_prompts(pd.read_parquet("data/prompts/train.parquet"),
                           samples.total // samples.per_prompt, params.seed)
    table = scored_samples(model, tokenizer, scorer, reading, prompts, samples.per_prompt,
                           params.generation, samples.batch_size, params.seed, dtype)
    summary = {"prompts": len(prompts), "per_prompt": samples.per_prompt,
               "policy_samples": len(table), "scorer_calls": len(table),
               "toxicity_mean": round(float(table["toxicity"].mean()), 6),
               "seconds": round(time.perf_counter() - started, 1)}
    with atomic_path("data/samples") as out:
        out.mkdir()
        write_frame(out / "train.parquet", table)
        write_json(out / "summary.json", summary)
    print(f"{len(table)} scored samples of {len(prompts)} prompts, mean toxicity "
          f"{summary['toxicity_mean']:.3f}")


if __name__ == "__main__":
    run_stage(lambda: main(load_params(SampleParams)))
