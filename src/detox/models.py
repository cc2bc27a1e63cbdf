"""Loading the snapshots under ``data/models/`` for the stages that run them."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from detox import DetoxError


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """The snapshot's tokenizer, padding on the right (pad = eos where it names no pad).

    Right, because TRL's PPO forward pass pads query + response with this tokenizer and gives
    the model no position ids: left padding would shift every shorter row's positions.
    (Generation pads on the left by hand, with an attention mask, in ``detox.generation``.)
    """
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError):
        raise DetoxError(f"{path} holds no tokenizer: run its download stage (dvc repro)") from None
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def end_ids(model, tokenizer: PreTrainedTokenizerBase | None = None) -> list[int]:
    """Every id that ends a continuation: the model's generation config's eos ids (else its
    config's; Llama 3's list several), and the tokenizer's eos where given, first.

    ``model`` may be TRL's value-head wrapper, which has the config but not the generation
    config of the model it wraps.
    """
    model = getattr(model, "pretrained_model", model)
    named: list[int] = []
    for config in (getattr(model, "generation_config", None), model.config):
        ids = getattr(config, "eos_token_id", None)
        if ids is not None:
            named = [ids] if isinstance(ids, int) else list(ids)
            break
    first = [] if tokenizer is None or tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    return list(dict.fromkeys(first + named))


def special_prefix(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The ids the tokenizer puts before any text (Llama's BOS; nothing for GPT-2's).

    A prompt is its text's tokens after these: the text holds no special token and its length
    counts text tokens only.
    """
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return full[:start]
    return []


def load_causal_lm(path: str | Path, device: torch.device) -> AutoModelForCausalLM:
    """A frozen policy for evaluation, kept in fp32 (autocast handles lower precision)."""
    return AutoModelForCausalLM.from_pretrained(path).to(device).eval()


def require_context(config, prompt_tokens: int, new_tokens: int,
                    new_tokens_param: str = "generation.max_new_tokens_to") -> None:
    """Prompt + continuation must fit the model's position table."""
    context = getattr(config, "max_position_embeddings", None)
    if context is not None and prompt_tokens + new_tokens > context:
        raise DetoxError(f"params.yaml: data.prompt_max_tokens + {new_tokens_param} = "
                         f"{prompt_tokens + new_tokens} exceeds the policy's context of {context} "
                         "tokens: lower them")
