"""Toxicity scorers (two-or-more-class logits per text) and the reward transforms on top.

A scorer is loaded from the snapshot that ``download`` writes under ``data/models/scorer``:
either a Hugging Face sequence classifier (``save_pretrained`` folder) or a marker file naming
a builtin (packaged) scorer. The independent judge of the evaluation is loaded the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from detox import DetoxError

BUILTIN_SCORERS = ("profanity-check", "better-profanity")
PACKAGES = {"profanity-check": "alt-profanity-check", "better-profanity": "better-profanity"}
BUILTIN_MARKER = "builtin_scorer.json"
# Labels that mean "not toxic" in common toxicity classifiers (dynabench: nothate/hate).
NEUTRAL_LABELS = ("neutral", "nothate", "not_hate", "non-toxic", "non_toxic", "nontoxic",
                  "not_toxic", "not-toxic", "clean", "ok", "benign")


class Scorer(Protocol):
    id2label: dict[int, str]

    def logits(self, texts: list[str]) -> torch.Tensor:
        """Float32 CPU tensor of shape (len(texts), len(id2label))."""


class PackagedScorer:
    """A toxicity classifier shipped inside a PyPI package, as two-class logits.

    ``profanity-check``: alt-profanity-check's linear SVM probability (the offline reward).
    ``better-profanity``: better-profanity's word list, 1 if a text holds a listed word, else 0
    (the offline independent judge: a lexicon, not a trained model).

    The logits are centred, [-z/2, z/2] with z the log-odds of the toxic probability, so that
    softmax gives back the probability and the neutral logit is a smooth, symmetric reward.
    """

    id2label = {0: "neutral", 1: "toxic"}

    def __init__(self, name: str) -> None:
        if name not in BUILTIN_SCORERS:
            raise ValueError(f"unknown packaged scorer {name!r}")
        self.name = name

    def probabilities(self, texts: list[str]) -> np.ndarray:
        if self.name == "profanity-check":
            from profanity_check import predict_prob

            return predict_prob(list(texts)) if texts else np.zeros(0)
        from better_profanity import profanity

        return np.array([float(profanity.contains_profanity(text)) for text in texts])

    def logits(self, texts: list[str]) -> torch.Tensor:
        p_toxic = np.clip(self.probabilities(texts), 1e-6, 1 - 1e-6)
        log_odds = torch.tensor(np.log(p_toxic) - np.log1p(-p_toxic), dtype=torch.float32)
        return torch.stack([-log_odds / 2, log_odds / 2], dim=1).reshape(len(texts), 2)


class ClassifierScorer:
    """A Hugging Face sequence classifier, batched, in the requested dtype and device."""

    def __init__(self, path: str | Path, device: torch.device, dtype: torch.dtype,
                 batch_size: int = 64) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(path, dtype=dtype)
        self.model.to(device).eval()
        self.device, self.batch_size = device, batch_size
        # RoBERTa's positions start after the padding index: two fewer than the table holds.
        positions = getattr(self.model.config, "max_position_embeddings", 514) - 2
        self.max_length = min(positions, self.tokenizer.model_max_length)
        self.id2label = {int(k): v for k, v in self.model.config.id2label.items()}

    @torch.no_grad()
    def logits(self, texts: list[str]) -> torch.Tensor:
        out = [torch.zeros(0, len(self.id2label))]
        # An empty continuation (eos first) is still scored: as a space, so that a tokenizer
        # that adds no special tokens still gives the classifier one token to read.
        texts = [text if text else " " for text in texts]
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(list(texts[start:start + self.batch_size]), padding=True,
                                   truncation=True, max_length=self.max_length,
                                   return_tensors="pt").to(self.device)
            out.append(self.model(**batch).logits.float().cpu())
        return torch.cat(out)


def snapshot_scorer(source: str, dest: Path, param: str = "model.scorer") -> dict:
    """Materialise the scorer named by ``source`` into the folder ``dest``; return its manifest."""
    if source.startswith("builtin:"):
        name = source.removeprefix("builtin:")
        if name not in BUILTIN_SCORERS:
            raise DetoxError(f"params.yaml: {param}={source!r} is invalid: builtin scorers "
                             f"are {', '.join('builtin:' + n for n in BUILTIN_SCORERS)}")
        from importlib.metadata import PackageNotFoundError, version

        try:
            manifest = {"source": source, "package": PACKAGES[name],
                        "version": version(PACKAGES[name])}
        except PackageNotFoundError:
            raise DetoxError(f"{param}={source!r} needs `pip install {PACKAGES[name]}`") from None
        dest.mkdir(parents=True)
        (dest / BUILTIN_MARKER).write_text(json.dumps(manifest, indent=2) + "\n")
        return manifest
    from detox.sources import pretrained

    model = pretrained("AutoModelForSequenceClassification", source, param)
    tokenizer = pretrained("AutoTokenizer", source, param)
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return {"source": source, "revision": getattr(model.config, "_commit_hash", None),
            "id2label": model.config.id2label}


def load_scorer(path: str | Path, device: torch.device, dtype: torch.dtype,
                batch_size: int = 64) -> Scorer:
    path = Path(path)
    if (path / BUILTIN_MARKER).exists():
        source = json.loads((path / BUILTIN_MARKER).read_text())["source"]
        return PackagedScorer(source.removeprefix("builtin:"))
    if not (path / "config.json").exists():
        raise DetoxError(f"{path} holds no scorer: run the download stage (dvc repro)")
    return ClassifierScorer(path, device, dtype, batch_size)


def neutral_index(id2label: dict[int, str], neutral_label: str | None,
                  param: str = "model.neutral_label") -> int:
    """Index of the non-toxic label: the param if set, else a well-known name from id2label."""
    by_name = {label.lower(): index for index, label in id2label.items()}
    if neutral_label is not None:
        if neutral_label.lower() not in by_name:
            raise DetoxError(f"params.yaml: {param}={neutral_label!r} is not a label of the "
                             f"classifier; its labels are {sorted(id2label.values())}")
        return by_name[neutral_label.lower()]
    for name in NEUTRAL_LABELS:
        if name in by_name:
            return by_name[name]
    raise DetoxError(f"the classifier's labels {sorted(id2label.values())} include no "
                     f"recognisable neutral label: set {param} in params.yaml to the non-toxic one")


def toxicity(logits: torch.Tensor, neutral: int) -> np.ndarray:
    """Probability of anything but the neutral label."""
    return (1 - logits.float().softmax(dim=-1)[:, neutral]).numpy()


def rewards(logits: torch.Tensor, kind: str, neutral: int) -> torch.Tensor:
    """Per-text PPO reward, higher = less toxic.

    neutral_logit:   raw logit of the neutral label (the paper's choice: smoothest).
    neutral_softmax: softmax probability of the neutral label, in [0, 1].
    log_toxicity:    -log P(toxic), P(toxic) = 1 - P(neutral); in [0, inf), computed stably.
    """
    logits = logits.float()
    if kind == "neutral_logit":
        return logits[:, neutral]
    if kind == "neutral_softmax":
        return logits.softmax(dim=-1)[:, neutral]
    if kind == "log_toxicity":
        log_probs = logits.log_softmax(dim=-1)
        others = torch.cat([log_probs[:, :neutral], log_probs[:, neutral + 1:]], dim=1)
        return -others.logsumexp(dim=-1)
    raise DetoxError(f"params.yaml: reward={kind!r} is invalid")
