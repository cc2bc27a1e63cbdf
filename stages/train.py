"""train: builds data/models/trained (weights and the training half of the model card) by the
chosen `method` (detox.train.methods names them; each is a module of detox.train), with
metrics/train.json (what it cost and how it went; the same on a rerun),
metrics/train_time.json (the wall-clock seconds, which evaluate does not read), the training
log as dvclive series in plots/train/ (written as the run goes: `dvc plots show` while it
trains) and the method's panels of that log in plots/train/panels.png."""

import time
from dataclasses import replace

import pandas as pd

from detox.device import is_main_process, resolve_device, resolve_dtype
from detox.io import atomic_paths, read_json, write_json
from detox.models import load_tokenizer
from detox.params import load_params
from detox.stage import run_stage
from detox.train.card import training_card
from detox.train.log import draw_panels
from detox.train.method import BASE, SCORER, TRAIN_PROMPTS
from detox.train.methods import load_method
from detox.train.params import METHOD_PARAMS, TrainParams

OUTPUTS = ("data/models/trained", "metrics/train.json", "metrics/train_time.json",
           "plots/train/panels.png")


def wall_clock(training: float, sampling: float | None) -> dict[str, float]:
    """metrics/train_time.json: ``train_seconds`` counts the samples' drawing (the sample
    stage's ``sampling_seconds``) for the methods that learn from them."""
    seconds = {"train_seconds": round(training + (sampling or 0.0), 1)}
    return seconds if sampling is None else {**seconds, "sampling_seconds": round(sampling, 1)}


def main(params: TrainParams) -> None:
    started = time.perf_counter()
    params.check_chosen(read_json(METHOD_PARAMS))
    method = load_method(params.method)
    device = resolve_device(params.model.device)
    tokenizer = load_tokenizer(BASE)
    built = method.build(params, device, resolve_dtype(params.model.precision, device),
                         tokenizer)
    if is_main_process():
        base = read_json(f"{BASE}/source.json")
        summary = replace(built.summary, method=method.name,
                          title=f"{base['source']}, {method.title(params, built.summary)}")
        seconds = wall_clock(time.perf_counter() - started, built.sampling_seconds)
        card = training_card(method, base, read_json(f"{SCORER}/source.json"), params, summary,
                             len(pd.read_parquet(TRAIN_PROMPTS)))
        with atomic_paths(*OUTPUTS) as (model_dir, summary_json, time_json, panels):
            built.model.save_pretrained(model_dir)  # a LoRA adapter merged in
            tokenizer.save_pretrained(model_dir)
            card.save(model_dir / "README.md")
            write_json(summary_json, summary.to_json())
            write_json(time_json, seconds)
            draw_panels(built.log, method.panels, summary.title, panels)
        print(f"trained ({method.name}) in {seconds['train_seconds']:.0f} s")
    if built.cleanup is not None:
        built.cleanup()  # the run is done: its outputs are DVC's now


if __name__ == "__main__":
    run_stage(lambda: main(load_params(TrainParams)))
