"""Prompt sets: toxicity filter, prompt tokenization to a sampled length, 80/20 split, eval samples."""

from __future__ import annotations

import numpy as np
import pandas as pd
from transformers import PreTrainedTokenizerBase

from detox import DetoxError


def require_columns(table: pd.DataFrame, columns: list[str], source: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DetoxError(f"{source}: missing column(s) {', '.join(missing)}; "
                         f"it has {', '.join(map(str, table.columns))}")


def clean_prompts(table: pd.DataFrame, source: str) -> pd.DataFrame:
    """Drop blank prompts and wikitext-style ``= Heading =`` lines."""
    require_columns(table, ["prompt"], source)
    text = table["prompt"].fillna("").astype(str).str.strip()
    kept = table[(text != "") & ~text.str.fullmatch(r"=+ .* =+")]
    if kept.empty:
        raise DetoxError(f"{source}: every one of its {len(table)} prompts is blank or a heading")
    return kept.assign(prompt=text[kept.index]).reset_index(drop=True)


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


def tokenize_prompts(table: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, min_tokens: int,
                     max_tokens: int, seed: int, source: str) -> pd.DataFrame:
    """Cut each prompt to a length sampled uniformly in [min_tokens, max_tokens] tokens.

    As in TRL's toxicity example; the ``prompt`` column becomes the decoded cut prompt and
    ``input_ids`` its tokens. Empty prompts are dropped.
    """
    require_columns(table, ["prompt"], source)
    rng = np.random.default_rng(seed)
    texts = table["prompt"].fillna("").astype(str).str.strip()
    lengths = rng.integers(min_tokens, max_tokens + 1, size=len(table))
    ids = [tokens[:n] for tokens, n in zip(tokenizer(texts.tolist())["input_ids"], lengths)]
    out = table.assign(input_ids=ids)
    out = out[[len(tokens) > 0 for tokens in ids]].reset_index(drop=True)
    if out.empty:
        raise DetoxError(f"{source}: every prompt is empty")
    out["prompt"] = tokenizer.batch_decode(out["input_ids"].tolist())
    return out


def split(table: pd.DataFrame, test_fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deterministic shuffled split into (train, test)."""
    order = np.random.default_rng(seed).permutation(len(table))
    n_test = int(round(len(table) * test_fraction))
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
