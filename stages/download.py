"""download: every external input -> data/raw (prompt tables), data/models/{base,scorer}."""

from detox.io import atomic_path, write_frame, write_json
from detox.params import Params
from detox.policy import snapshot_policy
from detox.scorers import snapshot_scorer
from detox.sources import load_prompts
from detox.stage import run_stage

DATASETS = ("train", "ood_toxic", "ood_benign")


def main(params: Params) -> None:
    # All three outputs appear together or not at all.
    with (atomic_path("data/raw") as raw, atomic_path("data/models/base") as policy_dir,
          atomic_path("data/models/scorer") as scorer_dir):
        raw.mkdir()
        datasets = {}
        for name in DATASETS:
            source = getattr(params.data, name)
            table, datasets[name] = load_prompts(source, f"data.{name}", params.seed)
            write_frame(raw / f"{name}.parquet", table)
        manifest = {
            "datasets": datasets,
            "scorer": snapshot_scorer(params.model.scorer, scorer_dir),
            "policy": snapshot_policy(params.model.policy, policy_dir, params.seed),
        }
        write_json(raw / "manifest.json", manifest)


if __name__ == "__main__":
    run_stage(main)
