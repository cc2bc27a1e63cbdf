"""Toxicity classifier sources (the reward scorer, the judge) -> snapshots: a sequence
classifier's ``save_pretrained`` folder, or a marker naming a builtin (packaged) scorer."""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from detox import DetoxError
from detox.download.hub import pretrained, write_source
from detox.toxicity import BUILTIN_MARKER, PACKAGES


def snapshot_classifier(source: str, dest: Path, param: str) -> dict:
    """Save the toxicity classifier named by ``source`` into ``dest``.

    A builtin (packaged) scorer is saved as a marker naming it and its package version.
    """
    if source.startswith("builtin:"):
        name = source.removeprefix("builtin:")
        if name not in PACKAGES:
            raise DetoxError(f"params.yaml: {param}={source!r} is invalid: builtin scorers "
                             f"are {', '.join('builtin:' + n for n in PACKAGES)}")
        try:
            manifest = {"source": source, "package": PACKAGES[name],
                        "version": version(PACKAGES[name])}
        except PackageNotFoundError:
            raise DetoxError(f"{param}={source!r} needs `pip install {PACKAGES[name]}`") from None
        dest.mkdir(parents=True)
        (dest / BUILTIN_MARKER).write_text(json.dumps(manifest, indent=2) + "\n")
    else:
        model = pretrained("AutoModelForSequenceClassification", source, param)
        tokenizer = pretrained("AutoTokenizer", source, param)
        dest.mkdir(parents=True)
        model.save_pretrained(dest)
        tokenizer.save_pretrained(dest)
        # problem_type says how the logits read: multi_label_classification is one sigmoid
        # per label (toxic-bert), null or single_label_classification one softmax over all.
        manifest = {"source": source, "revision": getattr(model.config, "_commit_hash", None),
                    "id2label": model.config.id2label,
                    "problem_type": model.config.problem_type}
    write_source(dest, manifest)
    return manifest
