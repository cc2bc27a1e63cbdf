"""What a toxicity score is: a scorer's logits, its neutral label, and the toxicity they imply;
and the builtin scorers shipped inside PyPI packages (the offline reward and judge, which also
label the builtin corpus)."""

from __future__ import annotations

import functools
from typing import Protocol

import numpy as np
import torch

from detox import DetoxError

# The builtin (packaged) scorers and the PyPI package that ships each.
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
        if name not in PACKAGES:
            raise ValueError(f"unknown packaged scorer {name!r}")
        self.name = name

    def probabilities(self, texts: list[str]) -> np.ndarray:
        if self.name == "profanity-check":
            from profanity_check import predict_prob

            return predict_prob(list(texts)) if texts else np.zeros(0)
        judge = _better_profanity()
        return np.array([float(judge.contains_profanity(text)) for text in texts])

    def logits(self, texts: list[str]) -> torch.Tensor:
        p_toxic = np.clip(self.probabilities(texts), 1e-6, 1 - 1e-6)
        log_odds = torch.tensor(np.log(p_toxic) - np.log1p(-p_toxic), dtype=torch.float32)
        return torch.stack([-log_odds / 2, log_odds / 2], dim=1).reshape(len(texts), 2)


class _IndexedWordList(list):
    """better-profanity's word list, its membership test indexed by length and remembered.

    The library tests every candidate word of a text (and its joins with the next words)
    against the whole list, comparing each listed word's spelling variants one by one
    (``VaryingString.__eq__``): about 9 ms per text, half of the offline evaluate stage. A
    listed word can only equal strings whose length is within its variants' (its ``_min_len``
    to ``_max_len``; the comparison itself rejects the others first), and the answer for a
    string never changes, so comparing only with the words of the candidate's length, once per
    candidate, gives the library's own results (``tests/test_scoring.py`` checks them) many
    times faster. (The list is never added to here: ``add_censor_words`` would bypass the index.)
    """

    def __init__(self, words: list) -> None:
        super().__init__(words)
        self._by_length: dict[int, list] = {}
        for word in words:
            for length in range(word._min_len, word._max_len + 1):
                self._by_length.setdefault(length, []).append(word)
        self._answers: dict[str, bool] = {}

    def __contains__(self, candidate: object) -> bool:
        if not isinstance(candidate, str):
            return super().__contains__(candidate)
        if candidate not in self._answers:
            self._answers[candidate] = any(
                word == candidate for word in self._by_length.get(len(candidate), ()))
        return self._answers[candidate]


@functools.cache
def _better_profanity():
    """One better-profanity checker (default word list) per process, its list memoized."""
    from better_profanity import Profanity

    judge = Profanity()
    judge.CENSOR_WORDSET = _IndexedWordList(judge.CENSOR_WORDSET)
    return judge


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
