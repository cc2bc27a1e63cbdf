"""``python -m detox.share``: push results so that anyone can restore them instead of rerunning.

``dvc push --run-cache`` alone does not make a run restorable elsewhere (DVC 3.67.1): it
uploads the run-cache's entries (each run's deps and params, hashed to its outputs) and the
outputs of the workspace, but not the outputs of the other runs the entries name: those of
earlier ``dvc exp run``s, of queued experiments, and the ``cache: false`` metrics and plots of
every run (git holds them for a commit, not for a run). A fresh clone then finds the entry,
misses its files, and runs the stage again. This command does what ``dvc push --run-cache``
does and then uploads, from the local cache, every output of every run-cache entry, so that
``dvc exp run --pull --allow-missing`` (or ``dvc repro --pull``) restores each such run
without running a stage.
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from detox import DetoxError
from detox.review import dvc_root
from detox.stage import run_stage


def run_cache_entries(repo) -> list[tuple[str, str]]:
    """Every (stage key, run key) of the local run-cache (``<runs>/<xx>/<key>/<run>``)."""
    runs = Path(repo.stage_cache.cache_dir)
    return sorted((entry.parent.name, entry.name) for entry in runs.glob("*/*/*"))


def share(root: Path, remote: str | None = None) -> tuple[int, int]:
    """Push the workspace's outputs, the run-cache and every run's outputs to ``remote`` (the
    default remote if None); returns the runs and the output objects uploaded now. Outputs in
    neither the local cache nor the remote (of runs whose files ``dvc gc`` removed: they will
    run again where they are restored) are skipped with DVC's warning, which names them."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    uploaded = 0
    try:
        with Repo(str(root)) as repo:
            repo.push(remote=remote, run_cache=True)
            entries = run_cache_entries(repo)
            for objects in repo.stage_cache.get_used_objs(entries).values():
                uploaded += len(repo.cloud.push(objects, remote=remote).transferred)
    except DvcException as error:
        raise DetoxError(f"dvc push: {error}") from None
    return len(entries), uploaded


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m detox.share", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=textwrap.fill(
            "Writes to the remote only (a configured DVC remote: `dvc remote add -d ...`, "
            "docs/reviews.md#remote-and-run-cache); locally it changes nothing. Takes as long "
            "as uploading the cache's outputs: seconds for the offline default.", 88))
    parser.add_argument("-r", "--remote", help="DVC remote (default: the default remote)")
    args = parser.parse_args(argv)
    runs, uploaded = share(dvc_root(Path.cwd()), args.remote)
    print(f"{runs} runs in the run-cache, {uploaded} outputs uploaded: every run's outputs are "
          "on the remote (but those DVC warned about above)")


def cli() -> None:
    """The ``detox-share`` console script."""
    run_stage(main)


if __name__ == "__main__":
    cli()
