"""The method interface: every registered method builds a model on the tiny offline project, and
the summary it writes (``metrics/train.json``) is read correctly by everything that reads it:
the model card, the headline, the report's caveats and the sweep's budget table."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
import torch

from detox.evaluate.report import caveats
from detox.headline import TRAINING_KEYS, headline
from detox.models import load_tokenizer
from detox.params import parse
from detox.sweep import Experiment, Group, budget_rows
from detox.train.card import training_card
from detox.train.method import Built, Method
from detox.train.methods import METHODS, REGISTRY, load_method
from detox.train.params import TrainParams
from detox.train.summary import TrainSummary
from project import copy_project, run, set_params
from test_model_card import result

CPU = torch.device("cpu")
SMALL = {"ppo.steps": 2, "ppo.batch_size": 8, "ppo.mini_batch_size": 4, "ppo.save_every": 1,
         "samples.total": 32, "sft.epochs": 1, "dpo.epochs": 1, "dpo.min_margin": 0.01,
         "sft.max_toxicity": 1.0, "online_dpo.samples": 32, "method": "sft",
         "model.given": "builtin:tiny-gpt-neo"}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The offline default, prepared and sampled (a tiny policy: seconds), with its own base
    policy as the model given to evaluate."""
    repo = copy_project(tmp_path_factory.mktemp("methods"))
    set_params(repo, **SMALL)
    run(repo, "dvc", "repro", "sample", "download_classifier@scorer")
    set_params(repo, method="given")  # download_given snapshots model.given for it alone
    run(repo, "dvc", "repro", "download_given")
    return repo


class OnlyWhatItReads:
    """A method's ``TrainParams`` that lets it read the shared params (seed, data, model) and
    the sections of its registry entry, and fails on any other: train depends on those alone
    (through data/method_params.json), so reading another would leave a stale model behind."""

    SECTIONS = {field.name for field in dataclasses.fields(TrainParams)}

    def __init__(self, params: TrainParams) -> None:
        self._params = params
        self._readable = {"seed", "data", "model", "method", *REGISTRY[params.method].params}

    def __getattr__(self, name: str):
        assert name not in self.SECTIONS or name in self._readable, (
            f"{self._params.method} reads params.{name}, which its registry entry does not name")
        return getattr(self._params, name)


@pytest.fixture(scope="module")
def built(project) -> dict[str, tuple[TrainParams, Built]]:
    """Each method's build, in the project (the train stage's working directory), seeing only
    the params its registry entry names."""
    import yaml

    raw = yaml.safe_load((project / "params.yaml").read_text())
    tokenizer = load_tokenizer(project / "data/models/base")
    made, here = {}, os.getcwd()
    os.chdir(project)
    try:
        for method in METHODS:
            params = OnlyWhatItReads(parse(TrainParams, raw | {"method": method}))
            made[method] = params, load_method(method).build(params, CPU, torch.float32,
                                                             tokenizer)
    finally:
        os.chdir(here)
    return made


def test_every_registered_method_is_a_method_named_as_registered():
    for name, entry in REGISTRY.items():
        method = load_method(name)
        assert isinstance(method, Method) and method.name == name
        assert method.__module__ == entry.module


@pytest.mark.parametrize("method", METHODS)
def test_each_method_s_summary_is_read_by_the_card_headline_report_and_sweep(built, method):
    params, made = built[method]
    summary = dataclasses.replace(made.summary, method=method, title="t")
    written = json.loads(json.dumps(summary.to_json()))  # as metrics/train.json holds it
    assert TrainSummary.from_json(written) == summary
    assert written["method"] == method
    # a rerun writes the same summary: no wall clock in it (evaluate reads it)
    assert not [key for key in written if "seconds" in key]

    card = training_card(load_method(method), {"source": "builtin:tiny-gpt-neo"},
                         {"source": "builtin:profanity-check"}, params,
                         TrainSummary.from_json(written), 10).text
    assert f"| method | `{method}` |" in card
    assert f"{summary.policy_samples:,} policy samples drawn" in card

    metrics = {"in_distribution": result(0.8, 0.4)}
    metrics["in_distribution"]["detoxified_minus_base"]["judge_mean_toxicity"] = {"diff": -0.2}
    top = headline(metrics, written)
    assert {key: top[key] for key in TRAINING_KEYS} == {
        key: getattr(summary, key) for key in TRAINING_KEYS}
    assert caveats(metrics, written) == []  # not diverged: nothing to say

    experiment = Experiment(name=method, rev="0" * 40, params={"method": method},
                            headline=top, train_seconds=1.5)
    (row,) = budget_rows([Group(method, [experiment])])
    assert row[2:] == [f"{summary.trainable_params:,}", f"{summary.policy_samples:,}",
                       f"{summary.gradient_steps:,}", "2", "no"]


def test_the_samples_are_counted_as_the_cost_of_the_methods_that_read_them(built):
    for method, (_, made) in built.items():
        summary = made.summary
        assert (made.sampling_seconds is not None) == REGISTRY[method].reads_samples
        if REGISTRY[method].reads_samples:
            assert summary.policy_samples == SMALL["samples.total"]
        elif load_method(method).trains:  # the sampling budget of its own params
            assert summary.policy_samples == {
                "ppo": SMALL["ppo.steps"] * SMALL["ppo.batch_size"],
                "online_dpo": SMALL["online_dpo.samples"]}[method]
            assert summary.scorer_calls == summary.policy_samples
        else:
            assert summary.policy_samples == summary.gradient_steps == 0


def test_each_method_logs_what_its_panels_draw(built):
    for method, (_, made) in built.items():
        panels = load_method(method).panels
        logged = {name for row in made.log for name in row}
        drawn = {series for names in panels.values() for series in names}
        assert drawn <= logged or not load_method(method).trains, (method, drawn - logged)


def test_a_diverged_run_reads_as_one_in_the_report():
    summary = TrainSummary(total_params=2, trainable_params=1, trainable_fraction=0.5,
                           policy_samples=8, scorer_calls=8, gradient_steps=4, diverged=True,
                           diverged_at_step=3, divergence="the score collapsed", model_step=1)
    (said,) = caveats({"in_distribution": result(0.8, 0.4)}, summary.to_json())
    assert said.startswith("the training run diverged at step 3 (the score collapsed)")
    assert "from step 1" in said


@pytest.mark.slow  # a fresh interpreter per method
def test_a_method_imports_no_other_method_s_code():
    """So a run's checkpoints are keyed by its own code (``run_key`` hashes the imported
    modules): an edit of dpo.py leaves PPO's checkpoints valid."""
    import subprocess
    import sys

    checks = {}
    for method in REGISTRY:  # a fresh interpreter each, all at once
        others = [e.module for name, e in REGISTRY.items() if name != method]
        code = (f"import sys; from detox.train.methods import load_method; "
                f"load_method({method!r}); print([m for m in {others!r} if m in sys.modules])")
        checks[method] = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                          text=True)
    found = {method: check.communicate()[0].strip() for method, check in checks.items()}
    assert found == {method: "[]" for method in REGISTRY}
