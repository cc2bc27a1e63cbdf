"""What a toxicity score is: a scorer's logits, the labels that say "toxic" or "not toxic", and
the toxicity they imply (``ToxicityReading``); and the builtin scorers shipped inside PyPI
packages (the offline reward and judge, which also label the builtin corpus).

Two kinds of classifier are understood. A *single-label* (softmax) classifier has one label
that means "not toxic" (dynabench's ``nothate``): toxicity = 1 - P(neutral), the softmax
probability of anything else. A *multi-label* (sigmoid) classifier, ``config.problem_type ==
"multi_label_classification"`` (``unitary/toxic-bert``, ``unitary/unbiased-toxic-roberta``),
scores each label independently and has no neutral label: toxicity = the sigmoid probability of
its toxic label, or the largest of several (see ``ToxicityReading``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
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
# The label that means "toxic" in common multi-label classifiers, the first present is taken:
# unitary/toxic-bert's `toxic`, unitary/unbiased-toxic-roberta's (Detoxify's) `toxicity`. Their
# other labels are kinds of toxicity (severe_toxic, insult, ...) or, in the unbiased model,
# identities mentioned (male, christian, ...), which are not toxicity at all.
TOXIC_LABELS = ("toxic", "toxicity")
MULTI_LABEL = "multi_label_classification"  # transformers' config.problem_type for sigmoid heads


class Scorer(Protocol):
    id2label: dict[int, str]
    # one sigmoid per label (config.problem_type), or one softmax over all; None: the config
    # does not say (many hub classifiers leave problem_type unset)
    multi_label: bool | None

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
    multi_label = False

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


@dataclass(frozen=True)
class ToxicityReading:
    """How one classifier's logits read as toxicity, and as the two logits the rewards use.

    ``binary`` turns a classifier's logits into two, ``[not toxic, toxic]``, whose softmax is
    ``(1 - P(toxic), P(toxic))`` and whose first is the classifier's logit of "not toxic":

    - softmax classifier (``labels`` = its neutral label): ``[z_neutral, logsumexp(z_others)]``,
      so P(toxic) = 1 - softmax P(neutral) and the first logit is the neutral label's own;
    - multi-label classifier (``labels`` = its toxic labels): ``[-t, 0]`` with ``t`` the
      largest logit of the toxic labels, so P(toxic) = sigmoid(t) = the largest sigmoid
      probability of them and the first logit is logit(1 - P(toxic)) = -t. The largest
      because a text is toxic if any label says so: max P_i is the probability of "any" when
      the labels nest (toxic-bert's severe_toxic is a kind of toxic), and never more than it
      whatever their dependence, where a noisy-or would assume them independent.

    Everything downstream (toxicity, the PPO rewards) reads ``binary``: no caller branches on
    the kind of classifier.
    """

    multi_label: bool
    indices: tuple[int, ...]  # the neutral label's index (softmax), or the toxic labels'
    labels: tuple[str, ...]  # their names, as in id2label

    def binary(self, logits: torch.Tensor) -> torch.Tensor:
        """``[not toxic, toxic]`` logits, shape (n, 2), float32."""
        logits = logits.float()
        if self.multi_label:
            toxic = logits[:, list(self.indices)].max(dim=-1).values
            return torch.stack([-toxic, torch.zeros_like(toxic)], dim=1)
        (neutral,) = self.indices
        others = torch.cat([logits[:, :neutral], logits[:, neutral + 1:]], dim=1)
        return torch.stack([logits[:, neutral], others.logsumexp(dim=-1)], dim=1)

    def toxicity(self, logits: torch.Tensor) -> np.ndarray:
        """P(toxic) of each text."""
        return toxicity(self.binary(logits), 0)


def toxicity_reading(id2label: dict[int, str], multi_label: bool | None,
                     neutral_label: str | None, toxic_labels: list[str] | None,
                     prefix: str = "model.") -> ToxicityReading:
    """How a classifier with ``id2label`` reads as toxicity, given its params: the neutral
    label for a softmax classifier, the toxic labels for a multi-label one (``None``: found
    from id2label by well-known names). A classifier whose config does not say which kind it
    is (``multi_label`` None) is multi-label when toxic labels are given and none of its labels is
a known neutral one, else softmax.
    ``prefix`` names the params in errors: ``model.`` for the reward scorer
    (``model.neutral_label``, ``model.toxic_labels``), ``model.judge_`` for the judge."""
    neutral_param, toxic_param = f"{prefix}neutral_label", f"{prefix}toxic_labels"
    names = sorted(id2label.values())
    if multi_label is None:  # softmax heads leave it unset too: toxic labels alone do not tell
        known_neutral = any(label.lower() in NEUTRAL_LABELS for label in id2label.values())
        multi_label = toxic_labels is not None and not known_neutral
    if not multi_label:
        if toxic_labels is not None:
            raise DetoxError(f"params.yaml: {toxic_param}={toxic_labels!r} is for a multi-label "
                             f"(sigmoid) classifier, but this one is single-label (softmax, "
                             f"labels {names}): set it to null, and {neutral_param} if needed")
        index = neutral_index(id2label, neutral_label, neutral_param)
        return ToxicityReading(False, (index,), (id2label[index],))
    if neutral_label is not None:
        raise DetoxError(f"params.yaml: {neutral_param}={neutral_label!r} is for a softmax "
                         f"classifier, but this one is multi-label ({MULTI_LABEL}, labels "
                         f"{names}): set it to null, and {toxic_param} if needed")
    by_name = {label.lower(): index for index, label in id2label.items()}
    if toxic_labels is None:
        found = next((name for name in TOXIC_LABELS if name in by_name), None)
        if found is None:
            raise DetoxError(f"the multi-label classifier's labels {names} include no "
                             f"recognisable toxic label ({' or '.join(TOXIC_LABELS)}): set "
                             f"{toxic_param} in params.yaml to the label(s) that mean toxic")
        toxic_labels = [found]
    unknown = [label for label in toxic_labels if label.lower() not in by_name]
    if unknown:
        raise DetoxError(f"params.yaml: {toxic_param}={toxic_labels!r}: {unknown} not among "
                         f"the classifier's labels {names}")
    indices = tuple(dict.fromkeys(by_name[label.lower()] for label in toxic_labels))
    return ToxicityReading(True, indices, tuple(id2label[index] for index in indices))
