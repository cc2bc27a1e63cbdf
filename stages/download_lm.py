"""download_lm: one causal LM source (model.policy, model.fluency_lm, model.given) -> a
snapshot folder.

    python stages/download_lm.py model.policy data/models/base
"""

import sys

from detox.download.lms import snapshot_lm
from detox.io import atomic_path
from detox.params import load_param
from detox.stage import run_stage

# null: evaluate measures perplexity under the base policy; no model given to evaluate
OPTIONAL = ("model.fluency_lm", "model.given")


def main(param: str, out: str) -> None:
    source = load_param(param, str | None if param in OPTIONAL else str)
    with atomic_path(out) as folder:
        snapshot_lm(source, folder, param)


if __name__ == "__main__":
    run_stage(main, *sys.argv[1:])
