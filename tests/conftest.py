"""Shared fixtures: small real tokenizers and random-weight models saved like real checkpoints.

Everything here is built from configs in a fraction of a second (no network, no training), so
the unit suite stays fast on two CPU cores.
"""

from __future__ import annotations

import os

# Nothing here may reach the hub; set before huggingface_hub reads it at import.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import copy
from pathlib import Path

import pytest
import torch
import yaml
from transformers import (GenerationConfig, GPT2Config, GPT2LMHeadModel, GPTNeoConfig,
                          GPTNeoForCausalLM, LlamaConfig,
                          LlamaForCausalLM, LlamaTokenizerFast, RobertaConfig,
                          RobertaForSequenceClassification)

from detox.download.builtin import corpus
from detox.download.builtin.tiny_model import train_tokenizer
from detox.params import parse
from detox.train.params import AdapterParams

ROOT = Path(__file__).resolve().parents[1]
PARAMS_YAML = ROOT / "params.yaml"

# The models here are a few thousand parameters wide: intra-op threads only add overhead, and
# on a busy two-core machine OpenMP's spinning threads make each tiny op ~40x slower.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def committed_params() -> dict:
    """The committed params.yaml as a raw mapping (never mutate it: use ``raw_params``)."""
    return yaml.safe_load(PARAMS_YAML.read_text())


@pytest.fixture(scope="session")
def lora(committed_params):
    """The committed adapter params with ``kind: lora`` (what ``-S adapter=lora`` gives)."""
    return parse(AdapterParams, {**committed_params["adapter"], "kind": "lora"}, "adapter.")


@pytest.fixture
def raw_params(committed_params) -> dict:
    """A private deep copy of the committed params, free to modify."""
    return copy.deepcopy(committed_params)


@pytest.fixture(scope="session")
def corpus_texts() -> list[str]:
    rows = [row for family in corpus.FAMILIES for row in corpus.generate(family, 120, 11)]
    return [f"{row['prompt']} {row['continuation']}" for row in rows]


@pytest.fixture(scope="session")
def tokenizer(corpus_texts):
    """Byte-level BPE tokenizer (pad = eos) trained on the builtin corpus. Read-only."""
    return train_tokenizer(corpus_texts, vocab_size=400)


@pytest.fixture(scope="session")
def make_tiny_neo(tokenizer):
    """Factory: a 12-block GPT-Neo (gpt-neo-125m's layout) only 16 wide, random weights."""

    def make(seed: int = 0, **overrides) -> GPTNeoForCausalLM:
        settings = dict(
            vocab_size=len(tokenizer), max_position_embeddings=64, hidden_size=16, num_layers=12,
            num_heads=2, intermediate_size=32, attention_types=[[["global", "local"], 6]],
            window_size=32, bos_token_id=tokenizer.eos_token_id,
            eos_token_id=tokenizer.eos_token_id, initializer_range=0.2,
        )
        settings.update(overrides)
        torch.manual_seed(seed)
        return GPTNeoForCausalLM(GPTNeoConfig(**settings)).eval()

    return make


@pytest.fixture(scope="session")
def tiny_neo_dir(tmp_path_factory, make_tiny_neo, tokenizer) -> Path:
    """A saved tiny GPT-Neo checkpoint with its tokenizer, like ``data/models/base``."""
    path = tmp_path_factory.mktemp("tiny-neo")
    make_tiny_neo(seed=0).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_neo(tiny_neo_dir) -> GPTNeoForCausalLM:
    return GPTNeoForCausalLM.from_pretrained(tiny_neo_dir).eval()


@pytest.fixture(scope="session")
def llama_tokenizer(tokenizer) -> LlamaTokenizerFast:
    """A Llama-family tokenizer: distinct bos, eos, pad and a second end token, BOS added on
    encode (as SmolLM2's and Llama's). Read-only."""
    backend = copy.deepcopy(tokenizer.backend_tokenizer)
    backend.add_special_tokens(["<s>", "</s>", "<|eot|>", "<pad>"])
    return LlamaTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                              pad_token="<pad>", unk_token="<s>",
                              additional_special_tokens=["<|eot|>"], add_bos_token=True,
                              add_eos_token=False)


@pytest.fixture(scope="session")
def make_tiny_llama(llama_tokenizer):
    """Factory: a 12-block Llama 16 wide with an untied head, random weights; its generation
    config names two eos ids (</s> and <|eot|>, as Llama 3's)."""

    def make(seed: int = 0, **overrides) -> LlamaForCausalLM:
        ids = llama_tokenizer.convert_tokens_to_ids
        settings = dict(
            vocab_size=len(llama_tokenizer), max_position_embeddings=64, hidden_size=16,
            num_hidden_layers=12, num_attention_heads=2, num_key_value_heads=1,
            intermediate_size=32, tie_word_embeddings=False, initializer_range=0.2,
            bos_token_id=ids("<s>"), eos_token_id=[ids("</s>"), ids("<|eot|>")],
            pad_token_id=ids("<pad>"),
        )
        settings.update(overrides)
        torch.manual_seed(seed)
        model = LlamaForCausalLM(LlamaConfig(**settings)).eval()
        model.generation_config = GenerationConfig.from_model_config(model.config)
        return model

    return make


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, make_tiny_llama, llama_tokenizer) -> Path:
    """A saved tiny Llama checkpoint with its tokenizer, like ``data/models/base``."""
    path = tmp_path_factory.mktemp("tiny-llama")
    make_tiny_llama(seed=0).save_pretrained(path)
    llama_tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def family_dirs(tmp_path_factory, tiny_neo_dir, tiny_llama_dir, tokenizer) -> dict[str, Path]:
    """A saved 12-block checkpoint of each family: GPT-Neo and GPT-2 (tied heads, the byte-level
    tokenizer) and Llama (the conftest's: untied head, BOS added, two eos ids)."""
    gpt2 = tmp_path_factory.mktemp("tiny-gpt2")
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=16,
                               n_layer=12, n_head=2)).save_pretrained(gpt2)
    tokenizer.save_pretrained(gpt2)
    return {"gpt_neo": tiny_neo_dir, "gpt2": gpt2, "llama": tiny_llama_dir}


def save_roberta_classifier(path: Path, corpus_texts: list[str], labels: list[str], seed: int,
                            **settings) -> Path:
    """A tiny random RoBERTa sequence classifier with ``labels``, saved with its tokenizer."""
    tokenizer = train_tokenizer(corpus_texts, vocab_size=300)
    config = RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=80, type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id, id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        # large weights so that logits differ clearly between texts (default 0.02 gives ~1e-3)
        initializer_range=0.5, **settings,
    )
    torch.manual_seed(seed)
    RobertaForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def roberta_scorer_dir(tmp_path_factory, corpus_texts) -> Path:
    """A tiny random RoBERTa hate classifier (dynabench labels) saved with its tokenizer."""
    return save_roberta_classifier(tmp_path_factory.mktemp("tiny-roberta"), corpus_texts,
                                   ["nothate", "hate"], seed=0)


# unitary/toxic-bert's labels: one sigmoid each, none neutral
TOXIC_BERT_LABELS = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]


@pytest.fixture(scope="session")
def multilabel_scorer_dir(tmp_path_factory, corpus_texts) -> Path:
    """A tiny random multi-label (sigmoid) toxicity classifier with toxic-bert's six labels
    (``problem_type: multi_label_classification``), saved with its tokenizer."""
    return save_roberta_classifier(tmp_path_factory.mktemp("tiny-multilabel"), corpus_texts,
                                   TOXIC_BERT_LABELS, seed=2,
                                   problem_type="multi_label_classification")
