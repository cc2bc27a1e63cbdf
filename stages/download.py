"""download: every external input -> data/raw (prompt tables + manifest), data/models/*."""

from detox.io import atomic_paths, write_frame, write_json
from detox.params import Params
from detox.policy import FOLLOWS_POLICY, snapshot_policy
from detox.scorers import snapshot_scorer
from detox.sources import load_prompts
from detox.stage import run_stage

DATASETS = ("train", "ood_toxic", "ood_benign")


def main(params: Params) -> None:
    model = params.model
    # All outputs appear together or not at all.
    with atomic_paths("data/raw", "data/models/base", "data/models/scorer", "data/models/judge",
                      "data/models/fluency") as (raw, policy_dir, scorer_dir, judge_dir,
                                                 fluency_dir):
        raw.mkdir()
        manifest = {"datasets": {}}
        for name in DATASETS:
            source = getattr(params.data, name)
            table, manifest["datasets"][name] = load_prompts(source, f"data.{name}", params.seed)
            write_frame(raw / f"{name}.parquet", table)
        manifest["scorer"] = snapshot_scorer(model.scorer, scorer_dir)
        manifest["judge"] = snapshot_scorer(model.judge, judge_dir, "model.judge")
        if model.fluency_lm is None:
            fluency_dir.mkdir()
            write_json(fluency_dir / FOLLOWS_POLICY, {"fluency_lm": "the base policy"})
            manifest["fluency_lm"] = None
        else:
            manifest["fluency_lm"] = snapshot_policy(model.fluency_lm, fluency_dir, params.seed,
                                                     "model.fluency_lm")
        manifest["policy"] = snapshot_policy(model.policy, policy_dir, params.seed)
        write_json(raw / "manifest.json", manifest)


if __name__ == "__main__":
    run_stage(main)
