"""Loading from the hub or a local copy with the same calls, and one-line errors that say how
to pre-download a source where this machine has no network."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from detox import DetoxError

SOURCE_FILE = "source.json"  # in every snapshot folder: where it came from
PROBE_SECONDS = 5.0  # enough for a slow link's first answer, short beside the loaders' retries


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


def first_line(error: object) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def hub_unreachable(timeout: float = PROBE_SECONDS) -> str | None:
    """Why the hub cannot be reached now, in one line; None when it answers.

    Without this check, an unreachable hub costs over a minute of retries and a screen of
    ``MaxRetryError`` lines per file before the loaders give up.
    """
    from huggingface_hub import constants

    try:
        urllib.request.urlopen(urllib.request.Request(constants.ENDPOINT, method="HEAD"),
                               timeout=timeout).close()
    except urllib.error.HTTPError:
        return None  # it answered: reachable, whatever it thinks of a bare HEAD
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return f"the hub ({constants.ENDPOINT}) cannot be reached: {first_line(reason)}"
    return None


def require_hub(param: str, source: str, dataset: bool = False) -> None:
    """Stop at once, in one line with the offline advice, where ``source`` is on a hub that
    cannot be reached. In offline mode the loaders use their local cache only: no check."""
    if dataset:
        import datasets

        offline = datasets.config.HF_HUB_OFFLINE  # HF_DATASETS_OFFLINE counts too
    else:
        from huggingface_hub import constants

        offline = constants.HF_HUB_OFFLINE
    reason = None if offline else hub_unreachable()
    if reason:
        raise DetoxError(f"params.yaml: {param}={source!r}: {reason}. "
                         + offline_hint(param, source, dataset)
                         + " (or set HF_HUB_OFFLINE=1 to use a copy in the Hugging Face cache)")


def pretrained(auto_class: str, source: str, param: str):
    """``transformers.<auto_class>.from_pretrained(source)`` with one-line errors."""
    import transformers

    if not Path(source).exists():
        require_hub(param, source)

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
