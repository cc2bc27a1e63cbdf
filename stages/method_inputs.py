"""method_inputs: what the chosen `method` reads besides the prompts and the base model ->
data/method_inputs.json. The sample stage depends on this file rather than on `method`: a run
of a method that reads no samples draws none, and switching between methods that read the
same inputs leaves the file, and so the samples, as they were."""

from dataclasses import asdict

from detox.io import atomic_path, write_json
from detox.params import load_params
from detox.stage import run_stage
from detox.train.methods import MethodParams

PATH = "data/method_inputs.json"


def main(params: MethodParams) -> None:
    with atomic_path(PATH) as out:
        write_json(out, asdict(params.inputs()))


if __name__ == "__main__":
    run_stage(lambda: main(load_params(MethodParams)))
