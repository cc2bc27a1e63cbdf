"""The policy: snapshot from its source, value head, top-N trainable blocks, shared reference."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase
from trl import AutoModelForCausalLMWithValueHead, create_reference_model

from detox import DetoxError

BUILTIN_POLICIES = ("tiny-gpt-neo",)
# Marker in data/models/fluency when perplexity is measured under the base policy itself.
FOLLOWS_POLICY = "same_as_policy.json"


def snapshot_policy(source: str, dest: Path, seed: int, param: str = "model.policy") -> dict:
    """Save the causal LM named by ``source`` (and its tokenizer, pad = eos) into ``dest``."""
    if source.startswith("builtin:"):
        name = source.removeprefix("builtin:")
        if name not in BUILTIN_POLICIES:
            raise DetoxError(f"params.yaml: {param}={source!r} is invalid: builtin policies "
                             f"are {', '.join('builtin:' + n for n in BUILTIN_POLICIES)}")
        from detox.builtin.tiny_model import build_policy

        model, tokenizer = build_policy(seed)
        revision = None
    else:
        from detox.sources import pretrained

        model = pretrained("AutoModelForCausalLM", source, param)
        tokenizer = pretrained("AutoTokenizer", source, param)
        revision = getattr(model.config, "_commit_hash", None)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return {"source": source, "revision": revision, "blocks": model.config.num_hidden_layers,
            "parameters": sum(p.numel() for p in model.parameters())}


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """The snapshot's tokenizer, pad = eos, padding on the right.

    Right, because TRL's PPO forward pass pads query + response with this tokenizer and gives
    the model no position ids: left padding would shift every shorter row's positions.
    (Generation pads on the left by hand, with an attention mask, in ``rollouts``.)
    """
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError):
        raise DetoxError(f"{path} holds no tokenizer: run the download stage (dvc repro)") from None
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def load_causal_lm(path: str | Path, device: torch.device) -> AutoModelForCausalLM:
    """A frozen policy for evaluation, kept in fp32 (autocast handles lower precision)."""
    return AutoModelForCausalLM.from_pretrained(path).to(device).eval()


def fluency_lm_path(folder: str | Path = "data/models/fluency",
                    policy: str | Path = "data/models/base") -> Path:
    """Where the fluency LM is: its own snapshot, or the base policy when none was configured."""
    return Path(policy) if (Path(folder) / FOLLOWS_POLICY).exists() else Path(folder)


def load_trainable(path: str | Path, layers: int, device: torch.device, seed: int,
                   ) -> tuple[AutoModelForCausalLMWithValueHead, AutoModelForCausalLMWithValueHead]:
    """Policy with value head whose top ``layers`` blocks train, and its reference model.

    The embeddings and the bottom ``blocks - layers`` blocks are frozen and shared: TRL's
    ``create_reference_model`` freezes them but gives the reference a deep copy, so the copy's
    frozen tensors are replaced by the policy's own (the paper's memory saving). The value head
    is freshly initialised from ``seed``.
    """
    torch.manual_seed(seed)
    policy = AutoModelForCausalLMWithValueHead.from_pretrained(str(path)).to(device)
    blocks = policy.pretrained_model.config.num_hidden_layers
    if not 1 <= layers <= blocks:
        raise DetoxError(f"params.yaml: layers={layers} is invalid: must be between 1 and {blocks} "
                         "(the policy's number of transformer blocks)")
    try:
        reference = create_reference_model(policy, num_shared_layers=blocks - layers)
    except ValueError:  # TRL knows the block names of GPT-2/Neo/NeoX/Llama-like models only
        raise DetoxError(f"model.policy: TRL cannot find the transformer blocks of a "
                         f"{type(policy.pretrained_model).__name__} to freeze and share") from None
    for name, param in policy.named_parameters():
        if not param.requires_grad:
            module_name, _, attr = name.rpartition(".")
            setattr(reference.get_submodule(module_name), attr, param)
    reference.pretrained_model.tie_weights()
    return policy, reference


def require_context(config, prompt_tokens: int, new_tokens: int,
                    new_tokens_param: str = "generation.max_new_tokens") -> None:
    """Prompt + continuation must fit the model's position table."""
    context = getattr(config, "max_position_embeddings", None)
    if context is not None and prompt_tokens + new_tokens > context:
        raise DetoxError(f"params.yaml: data.prompt_max_tokens + {new_tokens_param} = "
                         f"{prompt_tokens + new_tokens} exceeds the policy's context of {context} "
                         "tokens: lower them")


def count_parameters(model: torch.nn.Module) -> dict[str, float]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {"trainable_params": trainable, "total_params": total,
            "trainable_fraction": round(trainable / total, 6)}
