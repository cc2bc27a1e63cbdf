"""download_lm: one causal LM source (model.policy, model.fluency_lm, model.given) -> a
snapshot folder; with a method's name after the folder, only when that is params.yaml's
`method` (else the record that there is none), so the source is fetched only for that method
and a change of it reruns nothing of the others.

    python stages/download_lm.py model.policy data/models/base
    python stages/download_lm.py model.given data/models/given given
"""

import sys

from detox.download.lms import snapshot_lm
from detox.io import atomic_path
from detox.params import load_param
from detox.stage import run_stage

# null: evaluate measures perplexity under the base policy; no model given to evaluate
OPTIONAL = ("model.fluency_lm", "model.given")


def main(param: str, out: str, only_for_method: str | None = None) -> None:
    wanted = only_for_method is None or load_param("method", str) == only_for_method
    source = load_param(param, str | None if param in OPTIONAL else str) if wanted else None
    with atomic_path(out) as folder:
        snapshot_lm(source, folder, param)


if __name__ == "__main__":
    run_stage(main, *sys.argv[1:])
