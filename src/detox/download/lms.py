"""Causal LM sources (the policy, the fluency LM) -> ``save_pretrained`` snapshots."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

from safetensors import safe_open

from detox import DetoxError
from detox.download.hub import pretrained, write_source

# Built once by ``python -m detox.download.builtin.tiny_model`` and shipped like a hub
# checkpoint: training it here would give other weights on another kind of CPU.
BUILTIN_LMS = {"tiny-gpt-neo": Path(__file__).parent / "builtin" / "tiny-gpt-neo"}


def snapshot_lm(source: str | None, dest: Path, param: str) -> dict:
    """Save the causal LM named by ``source`` (and its tokenizer, pad = eos) into ``dest``.

    ``None`` (no fluency LM configured) saves nothing but the record that there is none.
    """
    if source is None:
        dest.mkdir(parents=True)
        manifest = {"source": None}
    elif source.startswith("builtin:"):
        manifest = _copy_builtin(source, dest, param)
    else:
        model = pretrained("AutoModelForCausalLM", source, param)
        tokenizer = pretrained("AutoTokenizer", source, param)
        dest.mkdir(parents=True)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model.save_pretrained(dest)
        tokenizer.save_pretrained(dest)
        manifest = {"source": source, "revision": getattr(model.config, "_commit_hash", None),
                    "blocks": model.config.num_hidden_layers,
                    "parameters": sum(p.numel() for p in model.parameters())}
    write_source(dest, manifest)
    return manifest


def _copy_builtin(source: str, dest: Path, param: str) -> dict:
    name = source.removeprefix("builtin:")
    if name not in BUILTIN_LMS:
        raise DetoxError(f"params.yaml: {param}={source!r} is invalid: builtin policies "
                         f"are {', '.join('builtin:' + n for n in BUILTIN_LMS)}")
    shutil.copytree(BUILTIN_LMS[name], dest)  # byte for byte: the same folder everywhere
    config = json.loads((dest / "config.json").read_text())
    # save_pretrained stores a tied weight once, so the file's tensors are the parameters
    with safe_open(dest / "model.safetensors", "np") as weights:
        parameters = sum(math.prod(weights.get_slice(key).get_shape()) for key in weights.keys())
    return {"source": source, "revision": None, "blocks": config["num_layers"],
            "parameters": parameters}
