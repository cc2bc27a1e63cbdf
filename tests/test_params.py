"""params.yaml -> Params: the committed file parses; every invalid value is a one-line DetoxError
that names the offending param."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from detox import DetoxError
from detox.params import (DataParams, GenerationParams, Params, PPOParams, load_params,
                          parse_params)

PARAMS_YAML = Path(__file__).resolve().parents[1] / "params.yaml"


def set_param(raw: dict, dotted: str, value) -> dict:
    *sections, name = dotted.split(".")
    node = raw
    for section in sections:
        node = node[section]
    node[name] = value
    return raw


def del_param(raw: dict, dotted: str) -> dict:
    *sections, name = dotted.split(".")
    node = raw
    for section in sections:
        node = node[section]
    del node[name]
    return raw


def parse_error(raw) -> str:
    with pytest.raises(DetoxError) as info:
        parse_params(raw)
    message = str(info.value)
    assert "\n" not in message, f"error is not one line: {message!r}"
    return message


def test_committed_params_yaml_loads(committed_params):
    params = load_params(PARAMS_YAML)
    assert isinstance(params, Params)
    assert isinstance(params.data, DataParams)
    assert isinstance(params.ppo, PPOParams)
    assert isinstance(params.generation, GenerationParams)
    # values come through unchanged and typed
    assert params.seed == committed_params["seed"]
    assert params.layers == committed_params["layers"]
    assert params.reward == committed_params["reward"]
    assert params.ppo.batch_size == committed_params["ppo"]["batch_size"]
    assert params.ppo.learning_rate == pytest.approx(float(committed_params["ppo"]["learning_rate"]))
    assert isinstance(params.ppo.learning_rate, float)
    assert isinstance(params.ppo.adaptive_kl, bool)
    assert params.model.neutral_label == committed_params["model"]["neutral_label"]
    assert params.generation.max_new_tokens == committed_params["generation"]["max_new_tokens"]
    assert params.data.test_fraction == pytest.approx(committed_params["data"]["test_fraction"])


def test_parse_params_of_committed_mapping_equals_load(raw_params):
    assert parse_params(raw_params) == load_params(PARAMS_YAML)


def test_params_are_frozen(raw_params):
    params = parse_params(raw_params)
    with pytest.raises(AttributeError):
        params.layers = 3  # type: ignore[misc]


def test_int_param_read_as_float(raw_params):
    # integers are accepted where floats are expected
    set_param(raw_params, "ppo.target_kl", 6)
    assert parse_params(raw_params).ppo.target_kl == 6.0
    assert isinstance(parse_params(raw_params).ppo.target_kl, float)


def test_learning_rate_written_without_dot_is_a_number(raw_params):
    # YAML 1.1 reads `1e-4` (no dot) as a string: it must still be accepted as a float
    set_param(raw_params, "ppo.learning_rate", "1e-4")
    assert parse_params(raw_params).ppo.learning_rate == pytest.approx(1e-4)


def test_neutral_label_may_be_a_string(raw_params):
    set_param(raw_params, "model.neutral_label", "nothate")
    assert parse_params(raw_params).model.neutral_label == "nothate"


def test_bounds_are_inclusive_where_documented(raw_params):
    set_param(raw_params, "layers", 1)
    set_param(raw_params, "generation.max_new_tokens", raw_params["generation"]["min_new_tokens"])
    set_param(raw_params, "data.prompt_max_tokens", raw_params["data"]["prompt_min_tokens"])
    set_param(raw_params, "generation.top_p", 1.0)
    set_param(raw_params, "generation.top_k", 0)
    set_param(raw_params, "ppo.mini_batch_size", raw_params["ppo"]["batch_size"])
    params = parse_params(raw_params)
    assert params.layers == 1
    assert params.generation.max_new_tokens == params.generation.min_new_tokens


@pytest.mark.parametrize("dotted, value", [
    ("layers", 0),
    ("layers", -2),
    ("layers", "8"),          # a string is not an integer
    ("layers", True),         # nor is a bool
    ("layers", 8.0),
    ("seed", -1),
    ("reward", "foo"),
    ("reward", ""),
    ("ppo.batch_size", -4),
    ("ppo.batch_size", 0),
    ("ppo.steps", 0),
    ("ppo.ppo_epochs", 0),
    ("ppo.learning_rate", 0),
    ("ppo.learning_rate", "fast"),
    ("ppo.init_kl_coef", -0.1),
    ("ppo.target_kl", 0),
    ("ppo.adaptive_kl", "yes please"),
    ("data.test_fraction", 1.0),
    ("data.test_fraction", 0),
    ("data.toxicity_threshold", 1.0),
    ("data.toxicity_threshold", -0.1),
    ("data.prompt_min_tokens", 0),
    ("data.eval_prompts", 0),
    ("data.train", ""),
    ("model.precision", "fp8"),
    ("model.device", "tpu"),
    ("model.neutral_label", 3),
    ("generation.top_k", -1),
    ("generation.top_p", 0),
    ("generation.top_p", 1.5),
    ("generation.min_new_tokens", 0),
    ("eval.batch_size", 0),
])
def test_invalid_value_names_the_param(raw_params, dotted, value):
    message = parse_error(set_param(raw_params, dotted, value))
    assert f"{dotted}=" in message
    assert message.startswith("params.yaml:")


def test_mini_batch_size_must_divide_batch_size(raw_params):
    set_param(raw_params, "ppo.batch_size", 64)
    set_param(raw_params, "ppo.mini_batch_size", 24)
    message = parse_error(raw_params)
    assert "ppo.mini_batch_size=24" in message
    assert "ppo.batch_size (64)" in message


def test_max_new_tokens_below_min_new_tokens(raw_params):
    set_param(raw_params, "generation.min_new_tokens", 8)
    set_param(raw_params, "generation.max_new_tokens", 7)
    message = parse_error(raw_params)
    assert "generation.max_new_tokens=7" in message
    assert "generation.min_new_tokens (8)" in message


def test_prompt_max_below_prompt_min(raw_params):
    set_param(raw_params, "data.prompt_min_tokens", 6)
    set_param(raw_params, "data.prompt_max_tokens", 5)
    assert "data.prompt_max_tokens=5" in parse_error(raw_params)


@pytest.mark.parametrize("dotted, expected", [
    ("colour", "unknown param colour"),
    ("ppo.colour", "unknown param ppo.colour"),
    ("generation.temperature", "unknown param generation.temperature"),
])
def test_unknown_param(raw_params, dotted, expected):
    assert expected in parse_error(set_param(raw_params, dotted, 1))


@pytest.mark.parametrize("dotted", ["seed", "layers", "reward", "ppo.steps",
                                    "data.toxicity_threshold", "model.neutral_label",
                                    "generation.top_p", "eval.batch_size"])
def test_missing_param(raw_params, dotted):
    assert f"missing param {dotted}" in parse_error(del_param(raw_params, dotted))


def test_missing_section(raw_params):
    message = parse_error(del_param(raw_params, "generation"))
    assert "generation" in message


def test_section_that_is_not_a_mapping(raw_params):
    message = parse_error(set_param(raw_params, "ppo", [1, 2]))
    assert "ppo=" in message and "mapping" in message


@pytest.mark.parametrize("raw", [None, [], "seed: 0"])
def test_params_that_are_not_a_mapping(raw):
    assert "mapping" in parse_error(raw)


def test_invalid_yaml_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seed: 0\nppo: [unclosed\n  batch_size: 64\n")
    with pytest.raises(DetoxError) as info:
        load_params(path)
    message = str(info.value)
    assert "not valid YAML" in message and str(path) in message
    assert "\n" not in message


def test_missing_file(tmp_path):
    with pytest.raises(DetoxError, match="not found"):
        load_params(tmp_path / "nope.yaml")


def test_load_params_validates(tmp_path, raw_params):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(set_param(raw_params, "reward", "foo")))
    with pytest.raises(DetoxError, match="reward='foo'"):
        load_params(path)
