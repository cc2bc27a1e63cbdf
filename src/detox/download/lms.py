"""Causal LM sources (the policy, the fluency LM) -> ``save_pretrained`` snapshots."""

from __future__ import annotations

from pathlib import Path

from detox import DetoxError
from detox.download.builtin import corpus
from detox.download.builtin.tiny_model import build_policy
from detox.download.hub import pretrained, write_source

BUILTIN_LMS = ("tiny-gpt-neo",)


def snapshot_lm(source: str | None, dest: Path, param: str) -> dict:
    """Save the causal LM named by ``source`` (and its tokenizer, pad = eos) into ``dest``.

    ``None`` (no fluency LM configured) saves nothing but the record that there is none.
    """
    if source is None:
        dest.mkdir(parents=True)
        manifest = {"source": None}
    else:
        if source.startswith("builtin:"):
            name = source.removeprefix("builtin:")
            if name not in BUILTIN_LMS:
                raise DetoxError(f"params.yaml: {param}={source!r} is invalid: builtin policies "
                                 f"are {', '.join('builtin:' + n for n in BUILTIN_LMS)}")
            model, tokenizer = build_policy(corpus.SEED)
            revision = None
        else:
            model = pretrained("AutoModelForCausalLM", source, param)
            tokenizer = pretrained("AutoTokenizer", source, param)
            revision = getattr(model.config, "_commit_hash", None)
        dest.mkdir(parents=True)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model.save_pretrained(dest)
        tokenizer.save_pretrained(dest)
        manifest = {"source": source, "revision": revision,
                    "blocks": model.config.num_hidden_layers,
                    "parameters": sum(p.numel() for p in model.parameters())}
    write_source(dest, manifest)
    return manifest
