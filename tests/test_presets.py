"""conf/ (Hydra, composed by `dvc exp run`) and params.yaml stay one and the same; presets are valid."""

from __future__ import annotations

import pytest
import yaml

from detox.evaluate.params import EvaluateParams
from detox.params import parse
from detox.prepare.params import PrepareParams
from detox.train.params import TrainParams
from project import ROOT, composed

PRESETS = sorted(p.stem for p in (ROOT / "conf" / "preset").glob("*.yaml"))


def test_params_yaml_is_the_composed_default():
    assert yaml.safe_load((ROOT / "params.yaml").read_text()) == composed()
    assert composed()["preset"] == "offline"


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_composes_to_valid_params(preset):
    params = composed(f"preset={preset}")
    assert params["preset"] == preset
    for schema in (PrepareParams, TrainParams, EvaluateParams):
        parse(schema, params)


def test_paper_presets_use_the_papers_models_and_sets():
    rtp, jigsaw = composed("preset=paper-rtp"), composed("preset=paper-jigsaw")
    assert rtp["model"]["policy"] == "EleutherAI/gpt-neo-125m"
    assert rtp["model"]["scorer"] == "facebook/roberta-hate-speech-dynabench-r4-target"
    assert rtp["layers"] == 8 and rtp["data"]["test_fraction"] == 0.2
    assert rtp["data"]["train"].startswith("allenai/real-toxicity-prompts")
    assert "wiki_toxic" in rtp["data"]["ood_toxic"] and "wikitext" in rtp["data"]["ood_benign"]
    # Jigsaw differs from RTP only in its training data (and so in the steps of one pass, and
    # in the samples of the baselines, as many as PPO's).
    differ = ("data", "preset", "ppo", "samples", "online_dpo")
    assert {k: v for k, v in jigsaw.items() if k not in differ} == \
        {k: v for k, v in rtp.items() if k not in differ}
    assert jigsaw["ppo"] == {**rtp["ppo"], "steps": 548}
    assert jigsaw["online_dpo"] == {**rtp["online_dpo"], "samples": 8768}
    for preset in (rtp, jigsaw, composed("preset=smollm2"), composed()):
        ppo_budget = preset["ppo"]["steps"] * preset["ppo"]["batch_size"]
        assert preset["samples"]["total"] == preset["online_dpo"]["samples"] == ppo_budget
    # TRL's toxicity example: lr (1.47e-5) * 2, queries cut from prompt + continuation
    assert rtp["ppo"]["learning_rate"] == pytest.approx(1.47e-5 * 2)
    assert rtp["data"]["train_query"] == "prompt_continuation"
    assert jigsaw["data"]["train_query"] == "prompt"
    # evaluation samples as TRL's evaluate-toxicity.py, not as training
    assert (rtp["eval"]["top_k"], rtp["eval"]["max_new_tokens"]) == (50, 30)
    assert jigsaw["data"]["train"].startswith("google/civil_comments")
    assert jigsaw["data"]["train_prompts"] == 10977


@pytest.mark.parametrize("preset", PRESETS)
def test_adapter_is_a_group_that_composes_with_every_preset_and_layers(preset):
    # `dvc exp run -S adapter=lora -S layers=6` (and -S adapter.rank=... for one value)
    params = composed(f"preset={preset}", "adapter=lora", "layers=6", "adapter.rank=4")
    adapter = parse(TrainParams, params).adapter
    assert (adapter.kind, adapter.rank, params["layers"]) == ("lora", 4, 6)
    assert composed(f"preset={preset}", "adapter=none")["adapter"]["kind"] == "none"
    assert composed(f"preset={preset}")["adapter"]["kind"] == "none"


@pytest.mark.parametrize("policy", ["EleutherAI/gpt-neo-1.3B", "EleutherAI/gpt-neo-2.7B"])
def test_paper_presets_take_the_larger_gpt_neo_models(policy):
    # their 24 and 32 blocks are checked against `layers` once the policy is loaded
    # (tests/test_policy.py::test_layers_counts_from_the_top_of_a_deeper_policy)
    for preset in ("paper-rtp", "paper-jigsaw"):
        params = composed(f"preset={preset}", f"model.policy={policy}", "adapter=lora",
                          "ppo.gradient_checkpointing=true", "model.precision=bf16")
        for schema in (PrepareParams, TrainParams, EvaluateParams):
            parse(schema, params)
        assert params["model"]["policy"] == policy


def test_overrides_apply_on_top_of_a_preset():
    params = composed("preset=paper-rtp", "layers=10", "reward=neutral_softmax")
    assert params["layers"] == 10 and params["reward"] == "neutral_softmax"
    assert params["model"]["policy"] == "EleutherAI/gpt-neo-125m"


@pytest.mark.parametrize("preset", [p for p in PRESETS if p.startswith("paper")])
def test_every_paper_preset_value_says_where_it_comes_from(preset):
    for number, line in enumerate((ROOT / "conf" / "preset" / f"{preset}.yaml").read_text()
                                  .splitlines(), 1):
        code = line.split("#")[0]
        is_value = ":" in code and code.split(":", 1)[1].strip() and line.startswith(" ")
        if is_value:
            assert any(tag in line for tag in ("[paper]", "[trl]", "[ours]")), \
                f"{preset}.yaml:{number} has no origin tag: {line.strip()}"


def test_the_paper_presets_keep_the_papers_reward_and_trls_kl_control():
    for preset in ("paper-rtp", "paper-jigsaw"):
        params = composed(f"preset={preset}")
        assert params["reward"] == "neutral_logit"
        ppo = params["ppo"]
        assert (ppo["init_kl_coef"], ppo["adaptive_kl"], ppo["target_kl"], ppo["kl_horizon"]) \
            == (0.2, True, 6.0, 10000)
