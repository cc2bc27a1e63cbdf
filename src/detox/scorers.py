"""Toxicity scorers (two-or-more-class logits per text) and the reward transforms on top.

A scorer is loaded from the snapshot that ``download`` writes under ``data/models/scorer``:
either a Hugging Face sequence classifier (``save_pretrained`` folder) or a marker file for the
builtin profanity-check scorer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from detox import DetoxError

BUILTIN_SCORERS = ("profanity-check",)
BUILTIN_MARKER = "builtin_scorer.json"
# Labels that mean "not toxic" in common toxicity classifiers (dynabench: nothate/hate).
NEUTRAL_LABELS = ("neutral", "nothate", "not_hate", "non-toxic", "non_toxic", "nontoxic",
                  "not_toxic", "not-toxic", "clean", "ok", "benign")


class Scorer(Protocol):
    id2label: dict[int, str]

    def logits(self, texts: list[str]) -> torch.Tensor:
        """Float32 CPU tensor of shape (len(texts), len(id2label))."""


class ProfanityCheckScorer:
    """alt-profanity-check (a linear SVM shipped in its PyPI package) as two-class logits.

    The logits are centred, [-z/2, z/2] with z the log-odds of its toxic probability, so that
    softmax gives back its probabilities and the neutral logit is a smooth, symmetric reward.
    """

    id2label = {0: "neutral", 1: "toxic"}

    def logits(self, texts: list[str]) -> torch.Tensor:
        from profanity_check import predict_prob

        if not texts:
            return torch.zeros(0, 2)
        p_toxic = np.clip(predict_prob(list(texts)), 1e-6, 1 - 1e-6)
        log_odds = torch.tensor(np.log(p_toxic) - np.log1p(-p_toxic), dtype=torch.float32)
        return torch.stack([-log_odds / 2, log_odds / 2], dim=1)


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
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(list(texts[start:start + self.batch_size]), padding=True,
                                   truncation=True, max_length=self.max_length,
                                   return_tensors="pt").to(self.device)
            out.append(self.model(**batch).logits.float().cpu())
        return torch.cat(out)


def snapshot_scorer(source: str, dest: Path) -> dict:
    """Materialise the scorer named by ``source`` into the folder ``dest``; return its manifest."""
    if source.startswith("builtin:"):
        name = source.removeprefix("builtin:")
        if name not in BUILTIN_SCORERS:
            raise DetoxError(f"params.yaml: model.scorer={source!r} is invalid: builtin scorers "
                             f"are {', '.join('builtin:' + n for n in BUILTIN_SCORERS)}")
        import profanity_check  # noqa: F401  (fail here, not in train, if it is not installed)
        from importlib.metadata import version

        dest.mkdir(parents=True)
        manifest = {"source": source, "package": "alt-profanity-check",
                    "version": version("alt-profanity-check")}
        (dest / BUILTIN_MARKER).write_text(json.dumps(manifest, indent=2) + "\n")
        return manifest
    from detox.sources import pretrained

    model = pretrained("AutoModelForSequenceClassification", source, "model.scorer")
    tokenizer = pretrained("AutoTokenizer", source, "model.scorer")
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return {"source": source, "revision": getattr(model.config, "_commit_hash", None),
            "id2label": model.config.id2label}


def load_scorer(path: str | Path, device: torch.device, dtype: torch.dtype,
                batch_size: int = 64) -> Scorer:
    path = Path(path)
    if (path / BUILTIN_MARKER).exists():
        return ProfanityCheckScorer()
    if not (path / "config.json").exists():
        raise DetoxError(f"{path} holds no scorer: run the download stage (dvc repro)")
    return ClassifierScorer(path, device, dtype, batch_size)


def neutral_index(id2label: dict[int, str], neutral_label: str | None) -> int:
    """Index of the non-toxic label: the param if set, else a well-known name from id2label."""
    by_name = {label.lower(): index for index, label in id2label.items()}
    if neutral_label is not None:
        if neutral_label.lower() not in by_name:
            raise DetoxError(f"params.yaml: model.neutral_label={neutral_label!r} is not a label "
                             f"of the scorer; its labels are {sorted(id2label.values())}")
        return by_name[neutral_label.lower()]
    for name in NEUTRAL_LABELS:
        if name in by_name:
            return by_name[name]
    raise DetoxError(f"the scorer's labels {sorted(id2label.values())} include no recognisable "
                     "neutral label: set model.neutral_label in params.yaml to the non-toxic one")


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
