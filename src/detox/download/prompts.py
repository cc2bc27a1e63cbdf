"""Dataset source strings -> prompt tables. ``builtin:<name>`` is the embedded offline corpus;
anything else is a hub id or a local path, loaded with the same ``load_dataset`` calls.

Dataset sources:
- a file or ``hf://`` URL ending in .csv, .json, .jsonl, .parquet or .txt, read by the matching
  ``datasets`` builder (``hf://datasets/OxAISH-AL-LLM/wiki_toxic/test.csv``);
- a hub dataset id or a local dataset folder, with ``?name=<config>&split=<split>`` when needed
  (``wikitext?name=wikitext-2-raw-v1&split=test``).

Every dataset is normalised to one table: ``prompt`` (text), ``toxicity`` (the source's own
toxicity label, NaN where it has none) and ``continuation`` (the text that follows the prompt,
None where the source has none), whatever the source's schema:
RealToxicityPrompts (``prompt.text``, ``prompt.toxicity``, ``continuation.text``), Jigsaw / civil_comments
(``comment_text`` or ``text``, ``toxicity``), wiki_toxic (``comment_text``, ``label``),
wikitext (``text``).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np
import pandas as pd

from detox import DetoxError
from detox.download.builtin import corpus
from detox.download.hub import first_line, offline_hint, require_hub
from detox.toxicity import PackagedScorer, toxicity

# Rows drawn from each builtin family; the builtin policy is taught an independent draw.
BUILTIN_ROWS = {"toxic-prompts": 2500, "ood-toxic": 600, "ood-benign": 600}
FILE_BUILDERS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet",
                 ".txt": "text"}
TEXT_COLUMNS = ("prompt", "comment_text", "text")
LABEL_COLUMNS = ("toxicity", "label")


def load_prompts(source: str, param: str) -> tuple[pd.DataFrame, dict]:
    """The normalised prompt table named by ``source`` and a manifest entry describing it."""
    if source.startswith("builtin:"):
        table = _builtin_prompts(source.removeprefix("builtin:"), param)
        return table, {"source": source, "rows": len(table)}
    dataset, manifest = _load_dataset(source, param)
    table = normalise(dataset.to_pandas(), f"{param}={source!r}")
    return table, {**manifest, "rows": len(table), "columns": list(dataset.column_names)}


def normalise(table: pd.DataFrame, where: str) -> pd.DataFrame:
    """Map a source's schema onto ``prompt``, ``toxicity`` and ``continuation`` columns."""
    column = next((c for c in TEXT_COLUMNS if c in table.columns), None)
    if column is None:
        raise DetoxError(f"{where}: no text column (one of {', '.join(TEXT_COLUMNS)}, or "
                         f"prompt.text); it has {', '.join(map(str, table.columns))}")
    values = table[column]
    if values.map(lambda v: isinstance(v, dict)).any():  # RealToxicityPrompts' nested records
        nested = values.map(lambda v: v if isinstance(v, dict) else {})
        if not nested.map(lambda v: "text" in v).any():
            raise DetoxError(f"{where}: column {column} holds records without a 'text' field")
        texts = nested.map(lambda v: v.get("text"))
        labels = nested.map(lambda v: v.get("toxicity"))
    else:
        texts = values
        label = next((c for c in LABEL_COLUMNS if c in table.columns), None)
        labels = table[label] if label else pd.Series(np.nan, index=table.index)
    continuations = pd.Series(None, index=table.index, dtype=object)
    if "continuation" in table.columns:
        continuations = table["continuation"].map(
            lambda v: v.get("text") if isinstance(v, dict) else v)
    return pd.DataFrame({"prompt": texts.astype("string").astype(object),
                         "toxicity": pd.to_numeric(labels, errors="coerce").astype(float),
                         "continuation": continuations.astype("string").astype(object)})


def _load_dataset(source: str, param: str):
    import datasets

    path, _, query = source.partition("?")
    options = dict(parse_qsl(query))
    unknown = sorted(set(options) - {"name", "split"})
    if unknown:
        raise DetoxError(f"params.yaml: {param}={source!r}: unknown option {unknown[0]!r}; "
                         "sources take ?name=<config>&split=<split>")
    builder = FILE_BUILDERS.get(Path(path).suffix.lower())
    if builder and "://" not in path and not Path(path).is_file():
        raise DetoxError(f"params.yaml: {param}={source!r}: no such file")
    if not Path(path).exists():
        require_hub(param, source, dataset=True)
    try:
        if builder:
            dataset = datasets.load_dataset(builder, data_files=path,
                                            split=options.get("split", "train"))
        else:
            dataset = datasets.load_dataset(path, name=options.get("name"),
                                            split=options.get("split"))
    except Exception as error:  # datasets raises many types for "not there / not reachable"
        raise DetoxError(f"params.yaml: {param}={source!r}: could not load it "
                         f"({type(error).__name__}: {first_line(error)}). "
                         + offline_hint(param, source, dataset=True)) from None
    if isinstance(dataset, datasets.DatasetDict):
        if len(dataset) != 1:
            raise DetoxError(f"params.yaml: {param}={source!r} has splits "
                             f"{', '.join(dataset)}: add ?split=<one of them> to the source")
        options["split"], dataset = next(iter(dataset.items()))
    manifest = {"source": source, "split": options.get("split", "train"),
                "config": options.get("name"), "fingerprint": dataset._fingerprint,
                "revision": _hub_revision(path)}
    return dataset, manifest


def _hub_revision(path: str) -> str | None:
    """The hub dataset's current commit (so a run is traceable); None for local data."""
    if path.startswith("hf://datasets/"):
        path = "/".join(path.removeprefix("hf://datasets/").split("/")[:2])
    elif Path(path).exists() or Path(path).suffix.lower() in FILE_BUILDERS:
        return None
    try:
        from huggingface_hub import HfApi

        return HfApi().dataset_info(path, timeout=10).sha
    except Exception:
        return None


def _builtin_prompts(family: str, param: str) -> pd.DataFrame:
    if family not in corpus.FAMILIES:
        raise DetoxError(f"params.yaml: {param}='builtin:{family}' is invalid: builtin datasets "
                         f"are {', '.join('builtin:' + f for f in corpus.FAMILIES)}")
    rows = corpus.generate(family, BUILTIN_ROWS[family], corpus.SEED)
    table = pd.DataFrame({"prompt": [row["prompt"] for row in rows],
                          "continuation": [" " + row["continuation"] for row in rows]})
    # Like RealToxicityPrompts' Perspective scores: a label of the prompt, not of the policy.
    table["toxicity"] = toxicity(PackagedScorer("profanity-check").logits(table["prompt"].tolist()), 0)
    return table[["prompt", "toxicity", "continuation"]]
