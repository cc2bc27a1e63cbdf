"""Atomic outputs: a stage that fails leaves nothing half-written behind."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pandas as pd


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp.{path.name}")  # keeps the suffix: writers go by extension
    _remove(tmp)
    try:
        yield tmp
        if not (tmp.exists() or tmp.is_symlink()):
            raise FileNotFoundError(f"nothing was written for {path}")
    except BaseException:
        _remove(tmp)
        raise
    _remove(path)
    os.replace(tmp, path)


@contextmanager
def atomic_paths(*paths: str | Path) -> Iterator[list[Path]]:
    """``atomic_path`` for several outputs of one stage: if the block fails, none is touched."""
    with ExitStack() as stack:
        yield [stack.enter_context(atomic_path(path)) for path in paths]


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_frame(path: str | Path, frame: pd.DataFrame) -> None:
    """Parquet or CSV by extension."""
    with atomic_path(path) as tmp:
        if Path(path).suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)


def link_files(source: str | Path, dest: str | Path, skip: tuple[str, ...] = ()) -> None:
    """Every file of the folder ``source`` into ``dest`` as a hard link (a copy where linking
    fails, e.g. across filesystems): publishing weights under a second name costs no disk
    while the stage runs. DVC replaces rather than edits the files it manages, so the two
    never diverge (and, with its default ``cache.type``, copies them when it commits)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(Path(source).iterdir()):
        if path.is_file() and path.name not in skip:
            try:
                os.link(path, dest / path.name)
            except OSError:
                shutil.copy2(path, dest / path.name)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())
