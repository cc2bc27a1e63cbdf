"""A multi-label (sigmoid) toxicity classifier as the reward scorer of the sample stage's and
PPO's libraries: the toxicity they record and the reward PPO learns from are the sigmoid
reading of its toxic label, recomputed here from the classifier's own logits."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from detox.generation import GenerationParams
from detox.models import load_tokenizer
from detox.params import parse
from detox.sample.samples import scored_samples
from detox.scoring import load_scorer
from detox.toxicity import toxicity_reading
from detox.train.params import TrainParams
from detox.train.policy import load_trainable
from detox.train.ppo import run_ppo

CPU = torch.device("cpu")
SAMPLING = GenerationParams(max_new_tokens_from=3, max_new_tokens_to=6, top_k=0, top_p=1.0)


class Recording:
    """The scorer itself, keeping every batch of logits it returned (to recompute from)."""

    def __init__(self, scorer) -> None:
        self.scorer, self.calls = scorer, []
        self.id2label, self.multi_label = scorer.id2label, scorer.multi_label

    def logits(self, texts: list[str]) -> torch.Tensor:
        self.calls.append(self.scorer.logits(texts))
        return self.calls[-1]


def test_samples_are_scored_by_the_sigmoid_of_the_toxic_label(tiny_neo, tokenizer,
                                                              multilabel_scorer_dir):
    scorer = load_scorer(multilabel_scorer_dir, CPU, torch.float32)
    reading = toxicity_reading(scorer.id2label, scorer.multi_label, None, None)
    texts = ["you are a stupid", "the river is", "shut up you"]
    prompts = pd.DataFrame({"prompt": texts,
                            "input_ids": [tokenizer(text)["input_ids"] for text in texts]})
    table = scored_samples(tiny_neo, tokenizer, scorer, reading, prompts, 2, SAMPLING, 2, 0)
    toxic = scorer.logits(table["continuation"].tolist())[:, 0]  # toxic-bert's `toxic`
    np.testing.assert_allclose(table["toxicity"], torch.sigmoid(toxic).numpy(), atol=2e-6)


@pytest.mark.parametrize("kind", ["neutral_logit", "neutral_softmax", "log_toxicity"])
def test_ppo_learns_from_and_logs_the_multi_label_reading(tiny_neo_dir, committed_params,
                                                          multilabel_scorer_dir, tmp_path, kind):
    params = parse(TrainParams, committed_params)
    params = dataclasses.replace(
        params, layers=2, reward=kind,
        ppo=dataclasses.replace(params.ppo, steps=1, batch_size=4, mini_batch_size=2,
                                ppo_epochs=1),
        generation=dataclasses.replace(params.generation, max_new_tokens_from=3,
                                       max_new_tokens_to=4))
    tokenizer = load_tokenizer(tiny_neo_dir)
    scorer = Recording(load_scorer(multilabel_scorer_dir, CPU, torch.float32))
    reading = toxicity_reading(scorer.id2label, scorer.multi_label, None, ["toxic", "insult"])
    policy, reference = load_trainable(str(tiny_neo_dir), params.layers, CPU, params.seed)
    prompts = tokenizer(["shut up you", "the river is", "you are a", "the castle"])["input_ids"]
    (row,) = run_ppo(policy, reference, tokenizer, scorer, reading, prompts, params, CPU,
                   tmp_path).log
    (logits,) = scorer.calls
    t = logits[:, [0, 4]].max(dim=-1).values  # logit of P(toxic) = max sigmoid of the two
    p = torch.sigmoid(t)
    expected = {"neutral_logit": -t, "neutral_softmax": 1 - p, "log_toxicity": -torch.log(p)}
    assert row["score_mean"] == pytest.approx(float(expected[kind].mean()), abs=1e-5)
    assert row["toxicity_mean"] == pytest.approx(float(p.mean()), abs=1e-6)
