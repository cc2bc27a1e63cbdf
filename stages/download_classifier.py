"""download_classifier: one toxicity classifier source (model.scorer, model.judge) -> a snapshot.

    python stages/download_classifier.py model.scorer data/models/scorer
"""

import sys

from detox.download.classifiers import snapshot_classifier
from detox.io import atomic_path
from detox.params import load_param
from detox.stage import run_stage


def main(param: str, out: str) -> None:
    with atomic_path(out) as folder:
        snapshot_classifier(load_param(param, str), folder, param)


if __name__ == "__main__":
    run_stage(main, *sys.argv[1:])
