"""download_data: one dataset source (a data.* param) -> data/raw/<name>.parquet + <name>.json.

    python stages/download_data.py data.train data/raw/train
"""

import sys

from detox.download.prompts import load_prompts
from detox.io import atomic_paths, write_frame, write_json
from detox.params import load_param
from detox.stage import run_stage


def main(param: str, out: str) -> None:
    table, manifest = load_prompts(load_param(param, str), param)
    with atomic_paths(f"{out}.parquet", f"{out}.json") as (table_path, manifest_path):
        write_frame(table_path, table)
        write_json(manifest_path, manifest)


if __name__ == "__main__":
    run_stage(main, *sys.argv[1:])
