"""Source strings -> data. ``builtin:<name>`` is the embedded offline default; anything else is
a hub id or a local path, loaded with the same ``from_pretrained`` / ``load_dataset`` calls.

Every dataset is normalised to one table: a ``prompt`` column, and for training sets a
``toxicity`` column (the source's own toxicity label, used by the prepare stage's filter).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from detox import DetoxError
from detox.builtin import corpus

# Rows drawn from each builtin family; the builtin policy is taught an independent draw.
BUILTIN_ROWS = {"toxic-prompts": 2500, "ood-toxic": 600, "ood-benign": 600}


def pretrained(auto_class: str, source: str, param: str):
    """``transformers.<auto_class>.from_pretrained(source)`` with one-line errors."""
    import transformers

    loader = getattr(transformers, auto_class)
    try:
        return loader.from_pretrained(source)
    except OSError as error:
        where = "local folder" if Path(source).exists() else "hub id or local path"
        raise DetoxError(
            f"params.yaml: {param}={source!r}: could not load it as a {where} "
            f"({str(error).splitlines()[0]}). Without network access, download it elsewhere with "
            f"`huggingface-cli download {source} --local-dir <folder>` and set {param} to that folder"
        ) from None


def load_prompts(source: str, param: str, seed: int) -> pd.DataFrame:
    """The prompt table named by ``source`` (columns ``prompt`` and, if known, ``toxicity``)."""
    if source.startswith("builtin:"):
        return _builtin_prompts(source.removeprefix("builtin:"), param, seed)
    raise DetoxError(f"params.yaml: {param}={source!r}: only builtin: datasets are supported "
                     f"so far; known: {', '.join('builtin:' + f for f in corpus.FAMILIES)}")


def _builtin_prompts(family: str, param: str, seed: int) -> pd.DataFrame:
    from detox.scorers import ProfanityCheckScorer, toxicity

    if family not in corpus.FAMILIES:
        raise DetoxError(f"params.yaml: {param}='builtin:{family}' is invalid: builtin datasets "
                         f"are {', '.join('builtin:' + f for f in corpus.FAMILIES)}")
    rows = corpus.generate(family, BUILTIN_ROWS[family], seed)
    table = pd.DataFrame({"prompt": [row["prompt"] for row in rows]})
    # Like RealToxicityPrompts' Perspective scores: a label of the prompt, not of the policy.
    table["toxicity"] = toxicity(ProfanityCheckScorer().logits(table["prompt"].tolist()), 0)
    return table
