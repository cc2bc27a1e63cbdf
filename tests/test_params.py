"""params.yaml -> each stage's typed params: the committed file parses; every invalid value is a
one-line DetoxError that names the offending param; a params.yaml out of step with conf/ is
reported in one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from detox import DetoxError
from detox.evaluate.params import EvaluateParams
from detox.params import load_param, load_params, parse, read_params
from detox.prepare.params import PrepareParams
from detox.train.params import GenerationParams, PPOParams, TrainParams
from project import ROOT

PARAMS_YAML = ROOT / "params.yaml"
SCHEMAS = (PrepareParams, TrainParams, EvaluateParams)


def parse_params(raw) -> TrainParams:
    """Every stage's view of ``raw`` (so any bad value fails); the train stage's is returned."""
    views = [parse(schema, raw) for schema in SCHEMAS]
    return views[1]


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
    params = load_params(TrainParams, PARAMS_YAML)
    assert isinstance(params, TrainParams)
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
    assert params.generation.max_new_tokens_to == committed_params["generation"]["max_new_tokens_to"]
    assert params.ppo.kl_horizon == committed_params["ppo"]["kl_horizon"]
    prepared = load_params(PrepareParams, PARAMS_YAML)
    assert prepared.data.test_fraction == pytest.approx(committed_params["data"]["test_fraction"])
    assert load_params(EvaluateParams, PARAMS_YAML).eval.top_p == 1.0


def test_parse_params_of_committed_mapping_equals_load(raw_params):
    assert parse_params(raw_params) == load_params(TrainParams, PARAMS_YAML)


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
    set_param(raw_params, "generation.max_new_tokens_to",
              raw_params["generation"]["max_new_tokens_from"])
    set_param(raw_params, "data.prompt_max_tokens", raw_params["data"]["prompt_min_tokens"])
    set_param(raw_params, "generation.top_p", 1.0)
    set_param(raw_params, "generation.top_k", 0)
    set_param(raw_params, "ppo.mini_batch_size", raw_params["ppo"]["batch_size"])
    params = parse_params(raw_params)
    assert params.layers == 1
    assert params.generation.max_new_tokens_to == params.generation.max_new_tokens_from


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
    ("online_dpo.batch_size", 0),
    ("online_dpo.samples", 31),  # less than one step's 2 x 16
    ("online_dpo.beta", 0),
    ("online_dpo.learning_rate", -1e-5),
    ("method", "reinforce"),
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
    ("generation.max_new_tokens_from", 0),
    ("ppo.kl_horizon", 0),
    ("ppo.kl_horizon", 1.5),
    ("ppo.max_kl_ratio", 0),
    ("ppo.max_score_drop", 0),
    ("ppo.max_score_drop", 1.5),
    ("eval.batch_size", 0),
    ("eval.top_p", 0),
    ("eval.max_new_tokens", 0),
    ("data.train_query", "continuation"),
    ("ppo.gradient_checkpointing", "yes"),
    ("adapter.kind", "qlora"),
    ("adapter.rank", 0),
    ("adapter.alpha", 0),
    ("adapter.dropout", 1.0),
    ("adapter.dropout", -0.1),
    ("adapter.target_modules", []),
    ("adapter.target_modules", "q_proj"),  # a list, even of one
])
def test_invalid_value_names_the_param(raw_params, dotted, value):
    message = parse_error(set_param(raw_params, dotted, value))
    assert f"{dotted}=" in message
    assert message.startswith("params.yaml:")


def test_a_bad_list_item_is_named_by_its_index(raw_params):
    message = parse_error(set_param(raw_params, "adapter.target_modules", ["q_proj", 3]))
    assert message.startswith("params.yaml: adapter.target_modules[1]=3 is invalid")


def test_adapter_params_come_through_typed(raw_params):
    set_param(raw_params, "adapter.kind", "lora")
    set_param(raw_params, "adapter.alpha", 32)
    adapter = parse_params(raw_params).adapter
    assert adapter.kind == "lora" and adapter.alpha == 32.0 and isinstance(adapter.alpha, float)
    assert adapter.target_modules == raw_params["adapter"]["target_modules"]


def test_mini_batch_size_must_divide_batch_size(raw_params):
    set_param(raw_params, "ppo.batch_size", 64)
    set_param(raw_params, "ppo.mini_batch_size", 24)
    message = parse_error(raw_params)
    assert "ppo.mini_batch_size=24" in message
    assert "ppo.batch_size (64)" in message


def test_the_new_token_cap_range_must_not_be_empty(raw_params):
    set_param(raw_params, "generation.max_new_tokens_from", 8)
    set_param(raw_params, "generation.max_new_tokens_to", 7)
    message = parse_error(raw_params)
    assert "generation.max_new_tokens_to=7" in message
    assert "generation.max_new_tokens_from (8)" in message


def test_prompt_max_below_prompt_min(raw_params):
    set_param(raw_params, "data.prompt_min_tokens", 6)
    set_param(raw_params, "data.prompt_max_tokens", 5)
    assert "data.prompt_max_tokens=5" in parse_error(raw_params)


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
        load_params(TrainParams, path)
    message = str(info.value)
    assert "not valid YAML" in message and str(path) in message
    assert "\n" not in message


def test_missing_file(tmp_path):
    with pytest.raises(DetoxError, match="not found"):
        load_params(TrainParams, tmp_path / "nope.yaml")


def test_load_params_validates(tmp_path, raw_params):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(set_param(raw_params, "reward", "foo")))
    with pytest.raises(DetoxError, match="reward='foo'"):
        load_params(TrainParams, path)


def test_a_stage_ignores_the_params_of_other_stages(raw_params):
    # a new param for evaluate must not touch what train reads (nor its code: see test_stage_deps)
    set_param(raw_params, "eval.new_option", 3)
    set_param(raw_params, "colour", "blue")
    assert parse(TrainParams, raw_params) == parse_params(yaml.safe_load(PARAMS_YAML.read_text()))


def test_load_param_reads_one_dotted_param():
    assert load_param("data.train", str, PARAMS_YAML) == "builtin:toxic-prompts"
    assert load_param("model.fluency_lm", str | None, PARAMS_YAML) is None
    with pytest.raises(DetoxError, match="model.fluency_lm=None is invalid"):
        load_param("model.fluency_lm", str, PARAMS_YAML)
    with pytest.raises(DetoxError, match="missing param data.colour"):
        load_param("data.colour", str, PARAMS_YAML)


# --- params.yaml and conf/: one source of truth -------------------------------------------------

@pytest.fixture
def project(tmp_path) -> Path:
    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    shutil.copy(PARAMS_YAML, tmp_path / "params.yaml")
    return tmp_path


def test_params_yaml_as_composed_says_nothing(project, capsys, monkeypatch):
    monkeypatch.delenv("DVC_EXP_BASELINE_REV", raising=False)
    read_params(project / "params.yaml")
    assert capsys.readouterr().err == ""


def test_conf_edited_but_not_composed_is_reported_in_one_line(project, capsys, monkeypatch):
    monkeypatch.delenv("DVC_EXP_BASELINE_REV", raising=False)
    config = project / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("  steps: 30", "  steps: 40"))
    read_params(project / "params.yaml")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: params.yaml differs")
    assert "ppo.steps: 30 (conf/: 40)" in lines[0] and "dvc exp run" in lines[0]


def test_hand_edited_params_yaml_is_reported_in_one_line(project, capsys, monkeypatch):
    monkeypatch.delenv("DVC_EXP_BASELINE_REV", raising=False)
    raw = yaml.safe_load((project / "params.yaml").read_text())
    (project / "params.yaml").write_text(yaml.safe_dump(set_param(raw, "layers", 10)))
    read_params(project / "params.yaml")
    err = capsys.readouterr().err
    assert "layers: 10 (conf/: 8)" in err and "overwritten by the next `dvc exp run`" in err


def test_a_preset_is_compared_with_its_own_composition(project, capsys, monkeypatch):
    monkeypatch.delenv("DVC_EXP_BASELINE_REV", raising=False)
    from project import composed

    (project / "params.yaml").write_text(yaml.safe_dump(composed("preset=paper-rtp")))
    read_params(project / "params.yaml")
    assert capsys.readouterr().err == ""


def test_inside_dvc_exp_run_params_yaml_was_just_composed(project, capsys, monkeypatch):
    # `dvc exp run -S layers=10` composes conf/ + the override; the stage has nothing to report
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "0" * 40)
    raw = yaml.safe_load((project / "params.yaml").read_text())
    (project / "params.yaml").write_text(yaml.safe_dump(set_param(raw, "layers", 10)))
    read_params(project / "params.yaml")
    assert capsys.readouterr().err == ""
