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
    elif "gguf_file=" in source:  # one file of a repository that often holds a dozen
        file = source.partition("gguf_file=")[2].partition("&")[0]
        command = f"huggingface-cli download {path} {file}"
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


def pretrained(auto_class: str, source: str, param: str, shown: str | None = None, **kwargs):
    """``transformers.<auto_class>.from_pretrained(source, **kwargs)`` with one-line errors
    that quote ``shown`` (the param's value, where ``source`` is only its path) as the source."""
    import transformers

    shown = shown or source
    local = Path(source).exists()
    if not local:
        require_hub(param, shown)

    loader = getattr(transformers, auto_class)
    try:
        return loader.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as error:
        # a local folder has nothing to pre-download: the hint is for hub ids
        where = "hub id or local folder"
        if local:
            where = "GGUF file" if kwargs.get("gguf_file") else "local folder"
        raise DetoxError(
            f"params.yaml: {param}={shown!r}: could not load it as a {where} "
            f"({first_line(error)})" + ("" if local else ". " + offline_hint(param, shown))
        ) from None


def write_source(dest: Path, manifest: dict) -> None:
    (dest / SOURCE_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
