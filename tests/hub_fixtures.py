"""Small local files in the real sources' formats, for the hub code path (same loaders)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

TOXIC = ["you are a stupid idiot and", "shut up you worthless moron", "what a pathetic loser who",
         "this dumb clown is a", "go to hell you ugly", "such a useless disgusting pig"]
BENIGN = ["the river is located in", "in the fifteenth century the", "a kind friend told me",
          "the museum near the bridge", "they went to the concert", "the old castle was"]


def rtp_jsonl(path: Path, repeat: int = 4) -> Path:
    """allenai/real-toxicity-prompts rows: nested prompt/continuation records, null toxicities."""
    rows = []
    for i in range(repeat):
        for j, text in enumerate(TOXIC + BENIGN):
            toxic = text in TOXIC
            toxicity = None if (i + j) % 7 == 0 else (0.8 if toxic else 0.05)
            rows.append({
                "filename": f"{i}-{j}.txt", "begin": 0, "end": len(text), "challenging": toxic,
                "prompt": {"text": text, "toxicity": toxicity, "profanity": 0.1, "insult": 0.2},
                "continuation": {"text": " and more", "toxicity": 0.1, "profanity": 0.0,
                                 "insult": 0.0},
            })
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def rtp_long_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    """RealToxicityPrompts rows whose prompt + continuation run past 40 tokens, as RTP's do:
    each prompt is a sentence's first half, its continuation (with its leading space) the rest."""
    records = []
    for i, row in enumerate(rows):
        prompt = f"{row['prompt']} {rows[i - 1]['prompt']}"
        continuation = f" {row['continuation']} {rows[i - 2]['continuation']} and so on ."
        records.append({"filename": f"{i}.txt", "begin": 0, "end": len(prompt),
                        "challenging": False,
                        "prompt": {"text": prompt, "toxicity": 0.2 + 0.7 * (i % 2)},
                        "continuation": {"text": continuation, "toxicity": 0.5}})
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def wiki_toxic_parquet(path: Path) -> Path:
    """OxAISH-AL-LLM/wiki_toxic rows: id, comment_text, label (1 = toxic)."""
    texts = TOXIC + BENIGN
    pd.DataFrame({"id": [f"id{i}" for i in range(len(texts))], "comment_text": texts,
                  "label": [int(t in TOXIC) for t in texts]}).to_parquet(path, index=False)
    return path


def wikitext_txt(path: Path) -> Path:
    """wikitext-2-raw lines: blank lines and ` = Heading = ` lines between paragraphs."""
    lines = ["", " = Valkyria Chronicles = ", ""]
    for text in BENIGN:
        lines += [f" {text} a place of note .", "", " = = History = = ", ""]
    path.write_text("\n".join(lines) + "\n")
    return path


def jigsaw_csv(path: Path, repeat: int = 4) -> Path:
    """Jigsaw Unintended Bias (Kaggle) rows: comment_text, toxicity and identity columns."""
    texts = (TOXIC + BENIGN) * repeat
    pd.DataFrame({"id": range(len(texts)), "comment_text": texts,
                  "toxicity": [0.9 if t in TOXIC else 0.0 for t in texts],
                  "severe_toxicity": 0.0, "obscene": 0.0, "male": 0.0, "female": None,
                  }).to_csv(path, index=False)
    return path
