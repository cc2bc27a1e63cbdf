"""The hub code path on local files in the real formats: schemas, manifests and clear errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from detox import DetoxError
from detox.builtin import corpus
from detox.data import clean_prompts, filter_toxic, tokenize_prompts
from detox.device import resolve_device
from detox.params import parse_params
from detox.policy import snapshot_policy
from detox.scorers import neutral_index, snapshot_scorer
from detox.sources import load_prompts, normalise
from hub_fixtures import (BENIGN, TOXIC, jigsaw_csv, rtp_jsonl, rtp_long_jsonl,
                          wiki_toxic_parquet, wikitext_txt)
from project import composed


def test_rtp_jsonl_reads_nested_prompt_text_and_toxicity(tmp_path):
    path = rtp_jsonl(tmp_path / "prompts.jsonl", repeat=1)
    table, manifest = load_prompts(str(path), "data.train", seed=0)
    expected = pd.read_json(path, lines=True)
    assert table["prompt"].tolist() == [p["text"] for p in expected["prompt"]]
    nulls = [p["toxicity"] is None for p in expected["prompt"]]
    assert table["toxicity"].isna().tolist() == nulls and any(nulls)
    assert manifest["rows"] == len(expected) and "prompt" in manifest["columns"]
    assert manifest["split"] == "train" and manifest["fingerprint"]
    assert table["continuation"].tolist() == [c["text"] for c in expected["continuation"]]


def test_rtp_filter_drops_nulls_and_keeps_toxic_prompts(tmp_path):
    table, _ = load_prompts(str(rtp_jsonl(tmp_path / "p.jsonl")), "data.train", seed=0)
    kept = filter_toxic(table, 0.3, "data.train", "hint")
    assert set(kept["prompt"]) == set(TOXIC)
    assert kept["toxicity"].notna().all()


def test_jigsaw_csv_uses_comment_text_and_toxicity(tmp_path):
    table, _ = load_prompts(str(jigsaw_csv(tmp_path / "train.csv", repeat=1)), "data.train", 0)
    assert table["prompt"].tolist() == TOXIC + BENIGN
    assert table["toxicity"].tolist() == [0.9] * len(TOXIC) + [0.0] * len(BENIGN)
    assert table["continuation"].isna().all()  # comments have no continuation


def test_civil_comments_schema_uses_text_column():
    table = normalise(pd.DataFrame({"text": ["a", "b"], "toxicity": [0.5, 0.1],
                                    "insult": [0.0, 0.0]}), "civil")
    assert table["prompt"].tolist() == ["a", "b"] and table["toxicity"].tolist() == [0.5, 0.1]


def test_wiki_toxic_parquet_label_is_the_toxicity(tmp_path):
    table, _ = load_prompts(str(wiki_toxic_parquet(tmp_path / "test.parquet")), "data.ood_toxic", 0)
    kept = filter_toxic(table, 0.5, "data.ood_toxic", "hint")
    assert kept["prompt"].tolist() == TOXIC


def test_wikitext_blank_and_heading_lines_are_dropped(tmp_path):
    table, _ = load_prompts(str(wikitext_txt(tmp_path / "wiki.test.raw.txt")), "data.ood_benign", 0)
    assert table["toxicity"].isna().all()
    cleaned = clean_prompts(table, "data.ood_benign")
    assert cleaned["prompt"].str.strip().tolist() == [f"{text} a place of note ." for text in BENIGN]


def test_local_dataset_folder_with_split_option(tmp_path):
    folder = tmp_path / "wiki_toxic"
    folder.mkdir()
    wiki_toxic_parquet(folder / "test.parquet")
    table, manifest = load_prompts(f"{folder}?split=test", "data.ood_toxic", 0)
    assert len(table) == len(TOXIC + BENIGN) and manifest["split"] == "test"


def test_missing_text_column_names_the_columns_and_source(tmp_path):
    path = tmp_path / "bad.csv"
    pd.DataFrame({"id": [1], "body": ["x"]}).to_csv(path, index=False)
    with pytest.raises(DetoxError, match=r"data\.train=.*bad\.csv.*no text column.*it has id, body"):
        load_prompts(str(path), "data.train", 0)


def test_filter_that_leaves_no_rows_says_which_param(tmp_path):
    table, _ = load_prompts(str(jigsaw_csv(tmp_path / "t.csv")), "data.train", 0)
    with pytest.raises(DetoxError, match="no prompt has toxicity > 0.95.*lower data.toxicity_threshold"):
        filter_toxic(table, 0.95, "data.train", "lower data.toxicity_threshold")


def test_unreachable_dataset_says_what_and_how_to_predownload():
    with pytest.raises(DetoxError) as error:
        load_prompts("allenai/real-toxicity-prompts?split=train", "data.train", 0)
    message = str(error.value)
    assert "data.train='allenai/real-toxicity-prompts?split=train'" in message
    assert "huggingface-cli download allenai/real-toxicity-prompts" in message
    assert "\n" not in message


def test_unknown_source_option_is_rejected(tmp_path):
    with pytest.raises(DetoxError, match="unknown option 'revision'"):
        load_prompts(f"{tmp_path}?revision=main", "data.train", 0)


def test_unreachable_policy_and_scorer_say_which_param(tmp_path):
    with pytest.raises(DetoxError, match=r"model\.policy='EleutherAI/gpt-neo-125m'.*huggingface-cli"):
        snapshot_policy("EleutherAI/gpt-neo-125m", tmp_path / "p", seed=0)
    with pytest.raises(DetoxError, match=r"model\.scorer='facebook/roberta.*set model\.scorer"):
        snapshot_scorer("facebook/roberta-hate-speech-dynabench-r4-target", tmp_path / "s")


def test_local_checkpoints_snapshot_with_manifest(tmp_path, tiny_neo_dir, roberta_scorer_dir):
    policy = snapshot_policy(str(tiny_neo_dir), tmp_path / "policy", seed=0)
    assert policy["blocks"] == 12 and (tmp_path / "policy" / "tokenizer.json").exists()
    scorer = snapshot_scorer(str(roberta_scorer_dir), tmp_path / "scorer")
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
    settings = parse_params(composed("preset=paper-rtp")).data
    rows = corpus.generate("toxic-prompts", 80, 5)
    path = rtp_long_jsonl(tmp_path / "rtp.jsonl", rows)
    table, _ = load_prompts(str(path), "data.train", seed=0)
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
