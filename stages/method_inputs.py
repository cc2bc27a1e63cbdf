"""method_inputs: what the chosen `method` reads besides the prompts, the base model and the
shared params, as two files:

- data/method_inputs.json, the inputs of other stages it reads, without the method's name:
  the sample stage depends on it rather than on `method`, so a run of a method that reads no
  samples draws none, and switching between methods that read the same inputs leaves the
  samples as they were;
- data/method_params.json, the method and its own params sections: train depends on it rather
  than on every method's sections, so a change of another method's params reruns nothing.

Every method's params are checked here, whichever is chosen."""

from dataclasses import asdict

from detox.io import atomic_paths, write_json
from detox.params import load_params
from detox.stage import run_stage
from detox.train.params import METHOD_PARAMS, MethodParams

INPUTS = "data/method_inputs.json"


def main(params: MethodParams) -> None:
    with atomic_paths(INPUTS, METHOD_PARAMS) as (inputs, chosen):
        write_json(inputs, asdict(params.inputs()))
        write_json(chosen, params.chosen())


if __name__ == "__main__":
    run_stage(lambda: main(load_params(MethodParams)))
