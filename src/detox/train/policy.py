"""The trainable policy: value head, top-N trainable blocks, and the reference model that shares
the frozen rest."""

from __future__ import annotations

from pathlib import Path

import torch
from trl import AutoModelForCausalLMWithValueHead, create_reference_model

from detox import DetoxError


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


def count_parameters(model: torch.nn.Module) -> dict[str, float]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {"trainable_params": trainable, "total_params": total,
            "trainable_fraction": round(trainable / total, 6)}
