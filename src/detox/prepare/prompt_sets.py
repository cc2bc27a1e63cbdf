"""Prompt sets: toxicity filter, prompt tokenization to a sampled length, a held-out split of
distinct prompts, eval samples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from transformers import PreTrainedTokenizerBase

from detox import DetoxError
from detox.models import special_prefix


def require_columns(table: pd.DataFrame, columns: list[str], source: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DetoxError(f"{source}: missing column(s) {', '.join(missing)}; "
                         f"it has {', '.join(map(str, table.columns))}")


def clean_prompts(table: pd.DataFrame, source: str) -> pd.DataFrame:
    """Drop blank prompts and wikitext-style ``= Heading =`` lines; texts are left as they are."""
    require_columns(table, ["prompt"], source)
    text = table["prompt"].fillna("").astype(str).str.strip()
    kept = table[(text != "") & ~text.str.fullmatch(r"=+ .* =+")]
    if kept.empty:
        raise DetoxError(f"{source}: every one of its {len(table)} prompts is blank or a heading")
    return kept.reset_index(drop=True)


def filter_toxic(table: pd.DataFrame, threshold: float, source: str, hint: str) -> pd.DataFrame:
    """Rows whose toxicity label is above ``threshold`` (rows without a label are dropped)."""
    require_columns(table, ["prompt", "toxicity"], source)
    if table["toxicity"].isna().all():
        raise DetoxError(f"{source}: has no toxicity labels (a toxicity, label or "
                         "prompt.toxicity column) to filter on")
    kept = table[table["toxicity"].notna() & (table["toxicity"] > threshold)]
    if kept.empty:
        raise DetoxError(f"{source}: no prompt has toxicity > {threshold} "
                         f"(of {len(table)} rows): {hint}")
    return kept.reset_index(drop=True)


def query_texts(table: pd.DataFrame, query: str, source: str) -> pd.Series:
    """The text each query is cut from.

    ``prompt``: the prompt, stripped. ``prompt_continuation``: ``prompt + continuation`` exactly
    as TRL's toxicity example builds it (RealToxicityPrompts' continuations start with their
    own space), so that the cut queries are TRL's token for token.
    """
    if query == "prompt":
        return table["prompt"].fillna("").astype(str).str.strip()
    if query != "prompt_continuation":
        raise ValueError(f"unknown query kind {query!r}")
    if "continuation" not in table.columns or table["continuation"].isna().all():
        raise DetoxError(f"{source}: data.train_query='prompt_continuation' but the source has "
                         "no continuations (RealToxicityPrompts' continuation.text): set "
                         "data.train_query to prompt")
    return table["prompt"].fillna("").astype(str) + table["continuation"].fillna("").astype(str)


def tokenize_prompts(table: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, min_tokens: int,
                     max_tokens: int, seed: int, source: str,
                     query: str = "prompt") -> pd.DataFrame:
    """Cut each query text to a length sampled uniformly in [min_tokens, max_tokens] tokens.

    As in TRL's toxicity example: ``tokenizer.encode(text)[:length]``, counting text tokens
    only; special-token strings in a source text (web text holds ``<|endoftext|>``) are read as
    text. The ``prompt`` column becomes the decoded cut (the query: text, no special token),
    ``input_ids`` the tokenizer's own prefix (a Llama tokenizer's BOS) followed by the cut's
    tokens, and ``source_text`` the text it was cut from. Empty queries are dropped.
    """
    require_columns(table, ["prompt"], source)
    rng = np.random.default_rng(seed)
    texts = query_texts(table, query, source)
    lengths = rng.integers(min_tokens, max_tokens + 1, size=len(table))
    cuts = [tokens[:n] for tokens, n in
            zip(tokenizer(texts.tolist(), add_special_tokens=False,
                          split_special_tokens=True)["input_ids"], lengths)]
    out = table.assign(source_text=texts, input_ids=cuts)
    out = out[[len(tokens) > 0 for tokens in cuts]].reset_index(drop=True)
    if out.empty:
        raise DetoxError(f"{source}: every prompt is empty")
    out["prompt"] = tokenizer.batch_decode(out["input_ids"].tolist())
    prefix = special_prefix(tokenizer)
    out["input_ids"] = [prefix + list(tokens) for tokens in out["input_ids"]]
    return out


def prompt_key(texts: pd.Series) -> pd.Series:
    """What makes two prompts the same one: their text up to case and runs of whitespace."""
    return texts.astype(str).str.lower().str.split().str.join(" ")


def drop_duplicates(table: pd.DataFrame, texts: pd.Series | None = None,
                    exclude: pd.Series | None = None) -> tuple[pd.DataFrame, int, int]:
    """Keep the first row of each distinct text (``texts``, by default the ``prompt`` column)
    and none whose text occurs in ``exclude``.

    Returns the table and how many rows were dropped as repeats and as excluded texts.
    """
    keys = prompt_key(table["prompt"] if texts is None else texts)
    repeated = keys.duplicated()
    excluded = keys.isin(set(prompt_key(exclude)) if exclude is not None else set())
    kept = table[~repeated & ~excluded].reset_index(drop=True)
    return kept, int(repeated.sum()), int((excluded & ~repeated).sum())


def held_out_size(rows: int, test_fraction: float) -> int:
    """Held-out rows as ``datasets``' ``train_test_split(test_size=...)`` counts them: rounded up.

    (10,977 Jigsaw rows -> 2,196 test, 35,109 RealToxicityPrompts rows -> 7,022: the paper's.)
    The inner round drops float noise such as 0.7 * 10 = 7.000000000000001.
    """
    return math.ceil(round(rows * test_fraction, 9))


def split(table: pd.DataFrame, test_fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deterministic shuffled split into (train, test). Rows are split as they are: remove
    duplicate prompts first (``drop_duplicates``), or the test set leaks into training."""
    order = np.random.default_rng(seed).permutation(len(table))
    n_test = held_out_size(len(table), test_fraction)
    if n_test == 0 or n_test == len(table):
        raise DetoxError(f"data.test_fraction={test_fraction} leaves an empty split "
                         f"of {len(table)} prompts")
    return (table.iloc[order[n_test:]].reset_index(drop=True),
            table.iloc[order[:n_test]].reset_index(drop=True))


def sample(table: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """At most ``n`` rows, chosen with ``seed``, in a fixed order."""
    if len(table) <= n:
        return table.reset_index(drop=True)
    return table.sample(n=n, random_state=seed).reset_index(drop=True)
