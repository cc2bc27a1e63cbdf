"""dvc.yaml tracks code by file: each stage's deps must be exactly the package modules it
imports (transitively, imports inside functions included), and its params exactly the ones
its code reads. Otherwise DVC reruns what a change does not touch, or misses what it does."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import get_type_hints

import pytest
import yaml

from detox.params import param_names
from detox.train.methods import REGISTRY
from project import ROOT, composed

SRC = ROOT / "src"
PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


REGISTERED_MODULES = [entry.module for entry in REGISTRY.values()]


def module_file(name: str) -> Path | None:
    """The file of package module ``name`` (``detox.train.ppo``), or None if it is not one."""
    path = SRC.joinpath(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` but those under ``if TYPE_CHECKING:`` (never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def imported_modules(file: Path) -> set[str]:
    """``detox`` modules that ``file`` imports anywhere in its body; a file that loads a
    training method by name (``load_method``) imports every registered method's module."""
    text = file.read_text()
    names = set(REGISTERED_MODULES) if "load_method(" in text and file.name != "methods.py" \
        else set()
    for node in _runtime_nodes(ast.parse(text)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # `from detox.download.builtin import corpus` imports a module, not a name
            names |= {f"{node.module}.{alias.name}" for alias in node.names
                      if module_file(f"{node.module}.{alias.name}")}
    return {name for name in names if name.split(".")[0] == "detox"}


def code_deps(script: Path) -> set[str]:
    """Every package file that running ``script`` imports, and the script itself."""
    files, todo = {script}, [script]
    while todo:
        for name in imported_modules(todo.pop()):
            parts = name.split(".")
            # importing a.b.c runs a/__init__.py and a/b/__init__.py too
            for depth in range(1, len(parts) + 1):
                file = module_file(".".join(parts[:depth]))
                if file and file not in files:
                    files.add(file)
                    todo.append(file)
    return {str(file.relative_to(ROOT)) for file in files}


def stage_entries() -> list[tuple[str, dict]]:
    """(name, definition) of every stage, one per foreach item, with ${key}/${item} filled in."""
    entries = []
    for name, stage in PIPELINE.items():
        if "foreach" not in stage:
            entries.append((name, stage))
            continue
        items = stage["foreach"]
        pairs = items.items() if isinstance(items, dict) else [(item, item) for item in items]
        for key, item in pairs:
            text = yaml.safe_dump(stage["do"]).replace("${key}", str(key))
            entries.append((f"{name}@{key}", yaml.safe_load(text.replace("${item}", str(item)))))
    return entries


ENTRIES = stage_entries()


def script_of(stage: dict) -> Path:
    return ROOT / re.search(r"\bpython (\S+)", stage["cmd"]).group(1)


def arguments_of(stage: dict) -> list[str]:
    """What the stage's command passes its script."""
    return re.search(r"\bpython \S+(.*)", stage["cmd"]).group(1).split()


def drift(stage: dict) -> tuple[set[str], set[str]]:
    """(imported but not declared, declared but never imported) code files of ``stage``."""
    declared = {dep for dep in stage["deps"]
                if dep.startswith(("src/", "stages/")) and dep.endswith(".py")}
    imported = code_deps(script_of(stage))
    return imported - declared, declared - imported


@pytest.mark.parametrize("name, stage", ENTRIES, ids=[name for name, _ in ENTRIES])
def test_code_deps_are_exactly_what_the_stage_imports(name, stage):
    missing, unused = drift(stage)
    assert not missing, f"{name} imports but does not depend on them"
    assert not unused, f"{name} depends on them but never imports them"


def load_script(path: Path):
    spec = importlib.util.spec_from_file_location(f"stage_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def declared_params(stage: dict, params: dict) -> set[str]:
    """The stage's ``params:``, a whole section (``ppo``) expanded to its keys."""
    names = set()
    for entry in stage.get("params", []):
        value = params
        for part in entry.split("."):
            value = value[part]
        names |= {f"{entry}.{key}" for key in value} if isinstance(value, dict) else {entry}
    return names


SCHEMA_STAGES = [(name, stage) for name, stage in ENTRIES if not name.startswith("download")]
DOWNLOADS = [(name, stage) for name, stage in ENTRIES if name.startswith("download")]


@pytest.mark.parametrize("name, stage", SCHEMA_STAGES, ids=[name for name, _ in SCHEMA_STAGES])
def test_params_are_exactly_what_the_stage_reads(name, stage):
    schema = get_type_hints(load_script(script_of(stage)).main)["params"]
    declared = declared_params(stage, composed())
    if "data/method_params.json" in stage["deps"]:  # the method's params, through that file
        declared |= declared_params(PIPELINE["method_inputs"], composed())
    assert set(param_names(schema)) == declared, name


@pytest.mark.parametrize("name, stage", DOWNLOADS, ids=[name for name, _ in DOWNLOADS])
def test_a_download_entry_runs_on_its_own_params_alone(name, stage, tmp_path, tiny_neo_dir):
    """Given a params.yaml that holds nothing but its declared params, it still runs."""
    sources = {**composed(), "model": {**composed()["model"], "policy": str(tiny_neo_dir)}}
    only = {}
    for dotted in declared_params(stage, sources):
        *section, key = dotted.split(".")
        (only.setdefault(section[0], {}) if section else only)[key] = (
            sources[section[0]][key] if section else sources[key])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(only))
    result = subprocess.run([sys.executable, str(script_of(stage)), *arguments_of(stage)],
                            cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(SRC)})
    assert result.returncode == 0, result.stderr[-2000:]


def test_every_param_is_read_by_some_stage():
    params = composed()
    read = set().union(*(declared_params(stage, params) for _, stage in ENTRIES))
    every = declared_params({"params": list(params)}, params)
    assert every - read == {"preset"}  # a label: which conf/preset the values came from


def test_the_deps_check_catches_a_missing_and_an_extra_dependency():
    stage = dict(PIPELINE["train"])
    # rewards.py is imported only through train/ppo.py; fluency.py only by evaluate
    stage["deps"] = [dep for dep in stage["deps"] if dep != "src/detox/train/rewards.py"]
    stage["deps"].append("src/detox/evaluate/fluency.py")
    assert drift(stage) == ({"src/detox/train/rewards.py"}, {"src/detox/evaluate/fluency.py"})


def test_the_package_has_no_import_cycle():
    graph = {}
    for file in (SRC / "detox").rglob("*.py"):
        module = ".".join(file.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        graph[module] = {name for name in imported_modules(file) if module_file(name)}

    def visit(module: str, path: list[str]) -> None:
        assert module not in path, " -> ".join(path + [module])
        for imported in graph.get(module, ()):
            visit(imported, path + [module])

    for module in graph:
        visit(module, [])
