"""``params.yaml`` -> each stage's typed view of it. Every error names the param.

A stage declares the params it reads as a (nested) frozen dataclass whose field names are the
param names, mirroring its ``params:`` in ``dvc.yaml``; each dataclass checks its own ranges in
``__post_init__``. Keys a stage does not declare belong to other stages and are ignored here,
so a new param of one stage changes no other stage's code.

``params.yaml`` is composed by Hydra from ``conf/`` on every ``dvc exp run``. When a stage runs
outside ``dvc exp run`` (``dvc repro``) and ``params.yaml`` disagrees with what ``conf/``
composes, it says so in one line: either ``conf/`` was edited and not composed yet, or
``params.yaml`` was edited by hand and the next ``dvc exp run`` will overwrite it.
"""

from __future__ import annotations

import os
import sys
import types
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

import yaml

from detox import DetoxError

Schema = TypeVar("Schema")
# Set by DVC in every stage of `dvc exp run`, which has just composed params.yaml from conf/.
EXPERIMENT_ENV = "DVC_EXP_BASELINE_REV"


def fail(name: str, value: Any, allowed: str) -> DetoxError:
    return DetoxError(f"params.yaml: {name}={value!r} is invalid: {allowed}")


def require(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise fail(name, value, allowed)


def typed(name: str, value: Any, kind: Any) -> Any:
    """``value`` as ``kind`` (bool, int, float, str, one of them | None, or a non-empty
    ``list`` of one of them), strictly."""
    if isinstance(kind, types.UnionType):  # `int | None`, `str | None`
        inner = next(k for k in kind.__args__ if k is not type(None))
        return None if value is None else typed(name, value, inner)
    if get_origin(kind) is list:  # `list[str]`: each item is checked like a param of its own
        if not isinstance(value, list) or not value:
            raise fail(name, value, "must be a non-empty list")
        (inner,) = get_args(kind)
        return [typed(f"{name}[{index}]", item, inner) for index, item in enumerate(value)]
    # bool is an int subclass and YAML reads 1e-4 as a string: be strict and forgiving in turn
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise fail(name, value, "must be true or false")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise fail(name, value, "must be an integer")
    if kind is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise fail(name, value, "must be a number")
    if kind is str:
        if isinstance(value, str) and value:
            return value
        raise fail(name, value, "must be a non-empty string")
    raise TypeError(kind)


def parse(schema: type[Schema], raw: Any, prefix: str = "") -> Schema:
    """The fields of the dataclass ``schema`` read from the mapping ``raw``, checked."""
    if not isinstance(raw, dict):
        raise fail(prefix.rstrip(".") or "params.yaml", raw, "must be a mapping")
    hints = get_type_hints(schema)
    values = {}
    for field in fields(schema):
        name = prefix + field.name
        if field.name not in raw:
            raise DetoxError(f"params.yaml: missing param {name}")
        kind = hints[field.name]
        values[field.name] = (parse(kind, raw[field.name], name + ".") if is_dataclass(kind)
                              else typed(name, raw[field.name], kind))
    return schema(**values)


def param_names(schema: type, prefix: str = "") -> list[str]:
    """Every dotted param name ``schema`` reads (``ppo.batch_size``, ...)."""
    hints = get_type_hints(schema)
    names = []
    for field in fields(schema):
        kind = hints[field.name]
        names += (param_names(kind, f"{prefix}{field.name}.") if is_dataclass(kind)
                  else [prefix + field.name])
    return names


def read_params(path: str | Path = "params.yaml") -> dict:
    """The raw params mapping, after warning where it disagrees with ``conf/``."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise DetoxError(f"{path} not found: run from the repository root") from None
    except yaml.YAMLError as error:
        raise DetoxError(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise DetoxError(f"{path}: must be a mapping of params")
    conf = Path(path).parent / "conf"
    if conf.is_dir() and EXPERIMENT_ENV not in os.environ:
        stale = differences(raw, compose(conf, raw.get("preset")))
        if stale:
            print(f"warning: params.yaml differs from what conf/ composes for preset="
                  f"{raw.get('preset')} ({'; '.join(stale[:3])}"
                  f"{'; ...' if len(stale) > 3 else ''}): this run uses params.yaml. If you "
                  "edited conf/, run `dvc exp run` to compose it; to change one value, use "
                  "`dvc exp run -S key=value` (a hand edit of params.yaml is overwritten by the "
                  "next `dvc exp run`)", file=sys.stderr)
    return raw


def load_params(schema: type[Schema], path: str | Path = "params.yaml") -> Schema:
    return parse(schema, read_params(path))


def load_param(name: str, kind: Any, path: str | Path = "params.yaml") -> Any:
    """One dotted param (``data.train``), typed."""
    node: Any = read_params(path)
    for part in name.split("."):
        if not isinstance(node, dict) or part not in node:
            raise DetoxError(f"params.yaml: missing param {name}")
        node = node[part]
    return typed(name, node, kind)


def compose(conf: Path, preset: Any) -> dict:
    """What Hydra composes from ``conf`` for ``preset`` (as ``dvc exp run -S preset=...``)."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from omegaconf import OmegaConf

    overrides = [f"preset={preset}"] if isinstance(preset, str) else []
    try:
        with initialize_config_dir(config_dir=str(conf.resolve()), version_base=None):
            return OmegaConf.to_container(hydra_compose(config_name="config",
                                                        overrides=overrides))
    except Exception as error:  # Hydra raises several types for a bad preset or conf/
        raise DetoxError(f"conf/ does not compose for preset={preset!r}: "
                         f"{str(error).splitlines()[0]}") from None


def differences(actual: Any, expected: Any, prefix: str = "") -> list[str]:
    """``name: actual (conf/: expected)`` for every param where the two mappings differ."""
    if isinstance(actual, dict) and isinstance(expected, dict):
        return [line for key in sorted(set(actual) | set(expected), key=str)
                for line in differences(actual.get(key), expected.get(key), f"{prefix}{key}.")]
    if actual == expected:
        return []
    return [f"{prefix.rstrip('.')}: {actual!r} (conf/: {expected!r})"]
