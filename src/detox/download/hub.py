"""Loading from the hub or a local copy with the same calls, and one-line errors that say how
to pre-download a source where this machine has no network."""

from __future__ import annotations

import json
from pathlib import Path

from detox import DetoxError

SOURCE_FILE = "source.json"  # in every snapshot folder: where it came from

def offline_hint(param: str, source: str, dataset: bool = False) -> str:
    """How to pre-download ``source`` and point ``param`` at the local copy."""
    path = source.partition("?")[0]
    if path.startswith("hf://datasets/") and path.count("/") >= 5:
        owner, name, file = path.removeprefix("hf://datasets/").split("/", 2)
        command = f"huggingface-cli download {owner}/{name} {file} --repo-type dataset"
        target = f"<folder>/{file}"
    else:
        command = f"huggingface-cli download {path}" + (" --repo-type dataset" if dataset else "")
        target = "<folder>" + (source[len(path):] if dataset else "")
    return (f"Without network access, download it where there is (`{command} --local-dir "
            f"<folder>`) and set {param}={target}")


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def pretrained(auto_class: str, source: str, param: str):
    """``transformers.<auto_class>.from_pretrained(source)`` with one-line errors."""
    import transformers

    loader = getattr(transformers, auto_class)
    try:
        return loader.from_pretrained(source)
    except (OSError, ValueError) as error:
        where = "local folder" if Path(source).exists() else "hub id or local folder"
        raise DetoxError(
            f"params.yaml: {param}={source!r}: could not load it as a {where} "
            f"({first_line(error)}). " + offline_hint(param, source)
        ) from None


def write_source(dest: Path, manifest: dict) -> None:
    (dest / SOURCE_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
