"""``params.yaml`` -> typed, validated config. Every error names the param and what is allowed."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from detox import DetoxError

REWARDS = ("neutral_logit", "neutral_softmax", "log_toxicity")
PRECISIONS = ("fp32", "fp16", "bf16")
DEVICES = ("auto", "cpu", "cuda")
QUERIES = ("prompt", "prompt_continuation")


@dataclass(frozen=True)
class DataParams:
    train: str
    ood_toxic: str
    ood_benign: str
    prompt_min_tokens: int
    prompt_max_tokens: int
    toxicity_threshold: float
    test_fraction: float
    eval_prompts: int
    train_prompts: int | None
    train_query: str


@dataclass(frozen=True)
class ModelParams:
    policy: str
    scorer: str
    neutral_label: str | None
    judge: str
    judge_neutral_label: str | None
    fluency_lm: str | None
    precision: str
    device: str


@dataclass(frozen=True)
class PPOParams:
    steps: int
    batch_size: int
    mini_batch_size: int
    ppo_epochs: int
    learning_rate: float
    init_kl_coef: float
    target_kl: float
    adaptive_kl: bool


@dataclass(frozen=True)
class GenerationParams:
    min_new_tokens: int
    max_new_tokens: int
    top_k: int
    top_p: float


@dataclass(frozen=True)
class EvalParams:
    batch_size: int
    samples_per_prompt: int
    max_new_tokens: int
    top_k: int
    top_p: float
    bootstrap_resamples: int


@dataclass(frozen=True)
class Params:
    preset: str
    seed: int
    layers: int
    reward: str
    data: DataParams
    model: ModelParams
    ppo: PPOParams
    generation: GenerationParams
    eval: EvalParams


def _fail(name: str, value: Any, allowed: str) -> DetoxError:
    return DetoxError(f"params.yaml: {name}={value!r} is invalid: {allowed}")


def _typed(name: str, value: Any, kind: type) -> Any:
    # bool is an int subclass and YAML reads 1e-4 as a string: be strict and forgiving in turn
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise _fail(name, value, "must be true or false")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _fail(name, value, "must be an integer")
    if kind is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _fail(name, value, "must be a number")
    if kind is str:
        if isinstance(value, str) and value:
            return value
        raise _fail(name, value, "must be a non-empty string")
    if isinstance(kind, str) and kind.endswith(" | None"):
        inner = {"str": str, "int": int}[kind.removesuffix(" | None")]
        return None if value is None else _typed(name, value, inner)
    raise TypeError(kind)


def _section(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise _fail(prefix.rstrip("."), raw, "must be a mapping")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise DetoxError(f"params.yaml: unknown param {prefix}{unknown[0]}; known: "
                         + ", ".join(prefix + n for n in sorted(names)))
    values = {}
    for f in fields(cls):
        if f.name not in raw:
            raise DetoxError(f"params.yaml: missing param {prefix}{f.name}")
        kind = {"int": int, "float": float, "bool": bool, "str": str}.get(f.type, f.type)
        values[f.name] = _typed(prefix + f.name, raw[f.name], kind)
    return cls(**values)


def _require(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise _fail(name, value, allowed)


def parse_params(raw: Any) -> Params:
    """Validate a ``params.yaml`` mapping; raise DetoxError naming the first bad param."""
    if not isinstance(raw, dict):
        raise DetoxError("params.yaml: must be a mapping of params")
    sections = {"data": DataParams, "model": ModelParams, "ppo": PPOParams,
                "generation": GenerationParams, "eval": EvalParams}
    known = {"preset", "seed", "layers", "reward", *sections}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise DetoxError(f"params.yaml: unknown param {unknown[0]}; known: {', '.join(sorted(known))}")
    for name in ("preset", "seed", "layers", "reward"):
        if name not in raw:
            raise DetoxError(f"params.yaml: missing param {name}")
    params = Params(
        preset=_typed("preset", raw["preset"], str),
        seed=_typed("seed", raw["seed"], int),
        layers=_typed("layers", raw["layers"], int),
        reward=_typed("reward", raw["reward"], str),
        **{name: _section(cls, raw.get(name), f"{name}.") for name, cls in sections.items()},
    )
    _check_ranges(params)
    return params


def _check_ranges(p: Params) -> None:
    _require(p.seed >= 0, "seed", p.seed, "must be >= 0")
    # The upper bound is the policy's block count, checked once the policy is loaded.
    _require(p.layers >= 1, "layers", p.layers,
             "must be between 1 and the policy's number of transformer blocks")
    _require(p.reward in REWARDS, "reward", p.reward, f"must be one of {', '.join(REWARDS)}")
    d = p.data
    _require(d.prompt_min_tokens >= 1, "data.prompt_min_tokens", d.prompt_min_tokens, "must be >= 1")
    _require(d.prompt_max_tokens >= d.prompt_min_tokens, "data.prompt_max_tokens",
             d.prompt_max_tokens, f"must be >= data.prompt_min_tokens ({d.prompt_min_tokens})")
    _require(0 <= d.toxicity_threshold < 1, "data.toxicity_threshold", d.toxicity_threshold,
             "must be in [0, 1)")
    _require(0 < d.test_fraction < 1, "data.test_fraction", d.test_fraction, "must be in (0, 1)")
    _require(d.eval_prompts >= 1, "data.eval_prompts", d.eval_prompts, "must be >= 1")
    _require(d.train_prompts is None or d.train_prompts >= 2, "data.train_prompts",
             d.train_prompts, "must be null (all) or >= 2")
    _require(d.train_query in QUERIES, "data.train_query", d.train_query,
             f"must be one of {', '.join(QUERIES)}")
    m = p.model
    _require(m.precision in PRECISIONS, "model.precision", m.precision,
             f"must be one of {', '.join(PRECISIONS)}")
    _require(m.device in DEVICES, "model.device", m.device, f"must be one of {', '.join(DEVICES)}")
    o = p.ppo
    for name in ("steps", "batch_size", "mini_batch_size", "ppo_epochs"):
        value = getattr(o, name)
        _require(value >= 1, f"ppo.{name}", value, "must be a positive integer")
    _require(o.batch_size % o.mini_batch_size == 0, "ppo.mini_batch_size", o.mini_batch_size,
             f"must divide ppo.batch_size ({o.batch_size})")
    _require(o.learning_rate > 0, "ppo.learning_rate", o.learning_rate, "must be > 0")
    _require(o.init_kl_coef >= 0, "ppo.init_kl_coef", o.init_kl_coef, "must be >= 0")
    _require(o.target_kl > 0, "ppo.target_kl", o.target_kl, "must be > 0")
    g = p.generation
    _require(g.min_new_tokens >= 1, "generation.min_new_tokens", g.min_new_tokens, "must be >= 1")
    _require(g.max_new_tokens >= g.min_new_tokens, "generation.max_new_tokens", g.max_new_tokens,
             f"must be >= generation.min_new_tokens ({g.min_new_tokens})")
    _require(g.top_k >= 0, "generation.top_k", g.top_k, "must be >= 0 (0 disables top-k)")
    _require(0 < g.top_p <= 1, "generation.top_p", g.top_p, "must be in (0, 1]")
    e = p.eval
    _require(e.batch_size >= 1, "eval.batch_size", e.batch_size, "must be >= 1")
    _require(e.samples_per_prompt >= 1, "eval.samples_per_prompt", e.samples_per_prompt,
             "must be >= 1")
    _require(e.max_new_tokens >= 1, "eval.max_new_tokens", e.max_new_tokens, "must be >= 1")
    _require(e.top_k >= 0, "eval.top_k", e.top_k, "must be >= 0 (0 disables top-k)")
    _require(0 < e.top_p <= 1, "eval.top_p", e.top_p, "must be in (0, 1]")
    _require(e.bootstrap_resamples >= 100, "eval.bootstrap_resamples", e.bootstrap_resamples,
             "must be >= 100")


def load_params(path: str | Path = "params.yaml") -> Params:
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise DetoxError(f"{path} not found: run from the repository root") from None
    except yaml.YAMLError as error:
        raise DetoxError(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from None
    return parse_params(raw)
