"""``python -m detox.review``: the markdown of a pull request's review comment.

What a change did, against a base revision: the params it changed (``dvc params diff``), the
headline metrics that moved (``dvc metrics diff`` on ``metrics/headline.json``), where they
came from (given the log of the ``dvc repro`` that got them: rerun on this machine or restored
from the run-cache) and the paper's plots. CI posts it on every pull request; run it locally
to see the same text against any revision: ``python -m detox.review --base main``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from detox import DetoxError
from detox.headline import PATH as HEADLINE, ordered
from detox.markdown import table
from detox.stage import run_stage

DVC = (sys.executable, "-m", "dvc")  # the dvc of this environment, whatever PATH says
PLOTS = {  # path -> what it shows
    "plots/toxicity.png": "mean toxicity per eval set, base vs detoxified",
    "plots/fluency_vs_toxicity.png": "perplexity against toxicity",
}
HERE = "this change"  # the workspace: in CI, the pull request's results
# What `dvc repro` prints for a stage it runs, and for one it restores from the run-cache.
RAN = re.compile(r"^Running stage '([^']+)'", re.MULTILINE)
RESTORED = re.compile(r"^Stage '([^']+)' is cached - skipping run", re.MULTILINE)


def dvc_json(root: Path, *args: str) -> dict:
    """``dvc <args> --json`` run in ``root``, parsed; a failure is a one-line DetoxError."""
    result = subprocess.run([*DVC, *args, "--json"], cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["no output"]
        raise DetoxError(f"`dvc {' '.join(args)}` failed: {lines[-1]}")
    return json.loads(result.stdout or "{}")


def dvc_root(cwd: Path) -> Path:
    """The DVC repository around ``cwd``, where every dvc command below runs."""
    result = subprocess.run([*DVC, "root"], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        # Checked first: outside a DVC repository `dvc params diff` prints {} and succeeds.
        raise DetoxError(f"{cwd} is not inside a DVC repository: run this from the project "
                         "(or `dvc init` first)")
    return (cwd / result.stdout.strip()).resolve()


def short_commit(root: Path, rev: str) -> str:
    result = subprocess.run(["git", "rev-parse", "--short", "--verify", "--quiet",
                             f"{rev}^{{commit}}"], cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        raise DetoxError(f"base revision {rev!r} is not a commit of this git repository "
                         "(a shallow clone? fetch the full history, e.g. actions/checkout "
                         "with fetch-depth: 0)")
    return result.stdout.strip()


def cell(value: Any) -> str:
    """A value as a markdown table cell: short numbers, yes/no, — for none."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def _old_to_new(change: dict) -> str:
    return f"{cell(change.get('old'))} → {cell(change.get('new'))}"


def _change(change: dict) -> str:
    # DVC gives a flipped boolean a diff of 1; "old → new" already says it.
    diff = change.get("diff")
    if isinstance(change.get("new"), bool) or not isinstance(diff, (int, float)):
        return ""
    return f"{diff:+,}" if isinstance(diff, int) else f"{diff:+.4g}"


def params_section(root: Path, base: str) -> str:
    diff = dvc_json(root, "params", "diff", base)
    rows = [[f"`{name}`", _old_to_new(change)]
            for changes in diff.values() for name, change in changes.items()]
    body = table(["param", f"{base} → {HERE}"], rows) if rows else "No param changed."
    return f"### Params\n\n{body}"


def metrics_section(root: Path, base: str) -> str:
    heading = f"### Headline metrics (`{HEADLINE}`)"
    if not (root / HEADLINE).exists():
        return f"{heading}\n\n`{HEADLINE}` is missing: run `dvc repro` (or pull the results) first."
    diff = dvc_json(root, "metrics", "diff", base, "--targets", HEADLINE).get(HEADLINE, {})
    rows = [[f"`{name}`", _old_to_new(diff[name]), _change(diff[name])] for name in ordered(diff)]
    body = (table(["metric", f"{base} → {HERE}", "change"], rows) if rows
            else "No headline metric changed.")
    return f"{heading}\n\n{body}"


def provenance_section(repro_log: str) -> str:
    """Which stages the ``dvc repro`` whose output is ``repro_log`` reran and which it restored.

    A rerun's numbers come from this machine's floating point: on another CPU type than the
    author's they can move by a few hundredths even where the change touched nothing.
    """
    def names(pattern: re.Pattern) -> str:
        return ", ".join(f"`{name}`" for name in dict.fromkeys(pattern.findall(repro_log)))

    ran, restored = names(RAN), names(RESTORED)
    lines = []
    if ran:
        lines.append(f"Rerun on this machine: {ran}. Numbers they wrote can differ from the "
                     "author's run by a few hundredths where the CPU type differs, even if "
                     "this change did not touch them; a DVC remote with the author's shared "
                     "runs (`python -m detox.share`) restores them instead.")
    if restored:
        lines.append(f"Restored from the run-cache, not rerun: {restored}.")
    if not lines:
        lines.append("No stage was rerun or restored: the numbers are the committed ones.")
    return "### Where the numbers come from\n\n" + "\n\n".join(lines)


def plots_section(root: Path, base: str, plots_url: str | None) -> str:
    present = [path for path in PLOTS if (root / path).exists()]
    if plots_url:
        # A PR comment cannot show the runner's files: CI uploads them and links the run.
        names = ", ".join(f"`{path}`" for path in present)
        lines = [f"The plots ({names}) and `dvc plots diff {base}` (`dvc_plots/index.html`: "
                 f"both revisions, the training curve included) are attached to "
                 f"[this CI run]({plots_url})."]
    else:
        lines = [f"![{PLOTS[path]}]({path})" for path in present]
        lines.append(f"`dvc plots diff {base} -o dvc_plots` draws both revisions side by side, "
                     "the training curve included.")
    return "### Plots\n\n" + "\n\n".join(lines)


def review(cwd: Path, base: str, plots_url: str | None = None,
           repro_log: str | None = None) -> str:
    """The review markdown for the workspace around ``cwd`` against revision ``base``; with
    ``repro_log`` (the output of the ``dvc repro`` that got the results) it says which stages
    were rerun and which restored."""
    root = dvc_root(cwd)
    commit = short_commit(root, base)
    sections = [f"## detox review: {HERE} against `{base}` ({commit})",
                params_section(root, base), metrics_section(root, base)]
    if repro_log is not None:
        sections.append(provenance_section(repro_log))
    sections.append(plots_section(root, base, plots_url))
    return "\n\n".join(sections) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m detox.review", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=textwrap.fill(
            "Prints the markdown (or writes --out, overwritten); changes nothing else. Runs "
            "`dvc params diff`, `dvc metrics diff` and reads the plots of both revisions: "
            "seconds, no stage is run.", 88))
    parser.add_argument("--base", default="main", help="revision to compare with (default: main)")
    parser.add_argument("--out", type=Path, help="write the markdown here (default: stdout)")
    parser.add_argument("--plots-url", help="where CI attached the plots (its run's page)")
    parser.add_argument("--repro-log", type=Path,
                        help="the output of the dvc repro that got the results (CI's)")
    args = parser.parse_args(argv)
    log = args.repro_log.read_text() if args.repro_log else None
    text = review(Path.cwd(), args.base, args.plots_url, log)
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)


def cli() -> None:
    """The ``detox-review`` console script."""
    run_stage(main)


if __name__ == "__main__":
    cli()
