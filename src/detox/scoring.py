"""Loading a toxicity scorer from the snapshot a download stage wrote under ``data/models/``
(``scorer`` or ``judge``): a Hugging Face sequence classifier (``save_pretrained`` folder), run
batched in the requested dtype and device, or a marker naming a builtin (packaged) scorer."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from detox import DetoxError
from detox.toxicity import BUILTIN_MARKER, MULTI_LABEL, PackagedScorer, Scorer


class ClassifierScorer:
    """A Hugging Face sequence classifier, batched, in the requested dtype and device; its
    ``logits`` are the raw head outputs, a softmax's or (``multi_label``) one sigmoid's per
    label: ``detox.toxicity.ToxicityReading`` says how they read as toxicity."""

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
        problem_type = self.model.config.problem_type
        self.multi_label = None if problem_type is None else problem_type == MULTI_LABEL

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


def load_scorer(path: str | Path, device: torch.device, dtype: torch.dtype,
                batch_size: int = 64) -> Scorer:
    path = Path(path)
    if (path / BUILTIN_MARKER).exists():
        source = json.loads((path / BUILTIN_MARKER).read_text())["source"]
        return PackagedScorer(source.removeprefix("builtin:"))
    if not (path / "config.json").exists():
        raise DetoxError(f"{path} holds no scorer: run its download stage (dvc repro)")
    return ClassifierScorer(path, device, dtype, batch_size)
