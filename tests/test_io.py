"""Atomic outputs: a failing block leaves nothing behind; a successful one replaces the old."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from detox.io import atomic_path, atomic_paths, link_files, read_json, write_frame, write_json


class Boom(Exception):
    pass


def test_failure_leaves_no_destination_and_no_temp(tmp_path):
    dest = tmp_path / "out"
    with pytest.raises(Boom):
        with atomic_path(dest) as tmp:
            assert tmp.parent == dest.parent and tmp != dest
            tmp.mkdir()
            (tmp / "half.parquet").write_text("half-written")
            raise Boom
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary sibling either


def test_failure_of_a_file_output(tmp_path):
    dest = tmp_path / "metrics" / "eval.json"
    with pytest.raises(Boom):
        with atomic_path(dest) as tmp:
            tmp.write_text("{")
            raise Boom
    assert not dest.exists()
    assert list((tmp_path / "metrics").iterdir()) == []


def test_failure_keeps_the_previous_output(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(dest) as tmp:
            tmp.mkdir()
            (tmp / "new.txt").write_text("new")
            raise KeyboardInterrupt  # BaseException too
    assert [p.name for p in dest.iterdir()] == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_success_replaces_an_existing_dir(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    with atomic_path(dest) as tmp:
        assert not tmp.exists()
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
        assert [p.name for p in dest.iterdir()] == ["old.txt"]  # untouched until the end
    assert [p.name for p in dest.iterdir()] == ["new.txt"]
    assert (dest / "new.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_success_replaces_an_existing_file(tmp_path):
    dest = tmp_path / "a.txt"
    dest.write_text("old")
    with atomic_path(dest) as tmp:
        tmp.write_text("new")
    assert dest.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_stale_temp_from_a_crashed_run_is_cleared(tmp_path):
    dest = tmp_path / "out"
    stale = tmp_path / ".tmp.out"
    stale.mkdir()
    (stale / "junk").write_text("junk")
    with atomic_path(dest) as tmp:
        assert not tmp.exists()
        tmp.mkdir()
        (tmp / "fresh").write_text("fresh")
    assert [p.name for p in dest.iterdir()] == ["fresh"]
    assert not stale.exists()


def test_missing_parents_are_created(tmp_path):
    dest = tmp_path / "a" / "b" / "c.txt"
    with atomic_path(dest) as tmp:
        tmp.write_text("x")
    assert dest.read_text() == "x"


def test_block_that_writes_nothing_keeps_the_previous_output(tmp_path):
    dest = tmp_path / "out.json"
    dest.write_text("previous")
    try:
        with atomic_path(dest):
            pass  # e.g. a stage that found nothing to write
    except FileNotFoundError:
        pass  # an error is fine; losing the previous output is not
    assert dest.exists(), "the previous output was deleted"
    assert dest.read_text() == "previous"


def test_write_json_round_trip(tmp_path):
    data = {"in_distribution": {"base": {"mean_toxicity": 0.123456, "std_toxicity": 0.5, "n": 48}},
            "label": "naïve – ✓", "list": [1, 2.5, None, True], "empty": {}}
    path = tmp_path / "metrics" / "eval.json"
    write_json(path, data)
    assert read_json(path) == data
    assert json.loads(path.read_text()) == data
    text = path.read_text()
    assert text.endswith("}\n")
    assert list(json.loads(text)) == list(data)  # key order kept (stable diffs)
    write_json(path, {"n": 1})  # overwrite
    assert read_json(path) == {"n": 1}
    assert [p.name for p in path.parent.iterdir()] == ["eval.json"]


@pytest.mark.parametrize("name", ["table.parquet", "table.csv"])
def test_write_frame_round_trip(tmp_path, name):
    frame = pd.DataFrame({"prompt": ["a b", "c"], "toxicity": [0.25, 0.75], "n": [1, 2]})
    path = tmp_path / name
    write_frame(path, frame)
    read = pd.read_csv(path) if name.endswith(".csv") else pd.read_parquet(path)
    pd.testing.assert_frame_equal(read, frame, check_dtype=False)
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_atomic_paths_all_or_nothing(tmp_path):
    first, second = tmp_path / "model", tmp_path / "metrics" / "train.json"
    second.parent.mkdir()
    second.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_paths(first, second) as (model_dir, metrics):
            model_dir.mkdir()
            metrics.write_text("new")
            raise RuntimeError("the last output failed to render")
    assert not first.exists() and second.read_text() == "old"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["metrics", "train.json"]
    with atomic_paths(first, second) as (model_dir, metrics):
        model_dir.mkdir()
        metrics.write_text("new")
    assert first.is_dir() and second.read_text() == "new"


def test_temporary_path_keeps_the_suffix(tmp_path):
    with atomic_path(tmp_path / "plots" / "table.csv") as tmp:
        assert tmp.suffix == ".csv" and tmp.name != "table.csv"
        tmp.write_text("a,b\n")


def test_link_files_links_each_file_and_skips_what_it_is_told(tmp_path):
    source = tmp_path / "trained"
    source.mkdir()
    for name in ("model.safetensors", "config.json", "README.md"):
        (source / name).write_text(name)
    link_files(source, tmp_path / "published", skip=("README.md",))
    published = tmp_path / "published"
    assert sorted(p.name for p in published.iterdir()) == ["config.json", "model.safetensors"]
    assert (published / "config.json").stat().st_ino == (source / "config.json").stat().st_ino


def test_link_files_copies_where_it_cannot_link(tmp_path, monkeypatch):
    source = tmp_path / "trained"
    source.mkdir()
    (source / "config.json").write_text("{}")

    def cross_device(src, dst):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    link_files(source, tmp_path / "published")
    copied = tmp_path / "published" / "config.json"
    assert copied.read_text() == "{}" and copied.stat().st_ino != (source / "config.json").stat().st_ino
