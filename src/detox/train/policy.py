"""The trainable policy: value head, top-N trainable blocks (or LoRA adapters in them), and the
reference model that shares the frozen rest; gradient checkpointing; the model to save."""

from __future__ import annotations

from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel
from transformers.modeling_layers import GradientCheckpointingLayer
from trl import AutoModelForCausalLMWithValueHead, create_reference_model

from detox import DetoxError
from detox.train.params import AdapterParams


def load_trainable(path: str | Path, layers: int, device: torch.device, seed: int,
                   adapter: AdapterParams | None = None,
                   ) -> tuple[AutoModelForCausalLMWithValueHead,
                              AutoModelForCausalLMWithValueHead | None]:
    """Policy with value head whose top ``layers`` blocks train, and its reference model.

    Without an adapter (``None`` or kind ``none``) the blocks themselves train. The embeddings
    and the bottom ``blocks - layers`` blocks are frozen and shared: TRL's
    ``create_reference_model`` freezes them but gives the reference a deep copy, so the copy's
    frozen tensors are replaced by the policy's own (the paper's memory saving).

    With ``lora`` every base weight is frozen and LoRA weights train in the top ``layers``
    blocks; the reference is ``None``: TRL's ``PPOTrainer`` then uses the policy itself with
    its adapter disabled, so no second copy of any base weight exists.

    The value head (and LoRA's initial weights) are drawn from ``seed``.
    """
    blocks = AutoConfig.from_pretrained(path).num_hidden_layers  # before loading the weights
    if not 1 <= layers <= blocks:
        raise DetoxError(f"params.yaml: layers={layers} is invalid: must be between 1 and {blocks} "
                         "(the policy's number of transformer blocks)")
    torch.manual_seed(seed)
    if adapter is not None and adapter.kind == "lora":
        return _with_lora(path, layers, blocks, adapter).to(device), None
    policy = AutoModelForCausalLMWithValueHead.from_pretrained(str(path)).to(device)
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


def _with_lora(path: str | Path, layers: int, blocks: int, adapter: AdapterParams,
               ) -> AutoModelForCausalLMWithValueHead:
    """The base model, frozen, with LoRA weights in the ``target_modules`` of its top
    ``layers`` blocks, under a fresh value head."""
    config = LoraConfig(task_type="CAUSAL_LM", r=adapter.rank, lora_alpha=adapter.alpha,
                        lora_dropout=adapter.dropout, target_modules=list(adapter.target_modules),
                        layers_to_transform=list(range(blocks - layers, blocks)), bias="none")
    base = AutoModelForCausalLM.from_pretrained(path)
    problem = (f"params.yaml: adapter.target_modules={list(adapter.target_modules)!r} is "
               f"invalid: %s found in the top {layers} blocks of the policy")
    try:
        model = get_peft_model(base, config)
    except ValueError:  # peft: none of the target modules is in the model
        raise DetoxError(problem % "none of them") from None
    adapted = [name for name, module in model.named_modules() if isinstance(module, LoraLayer)]
    missing = [target for target in adapter.target_modules  # matched as peft does
               if not any(name == target or name.endswith(f".{target}") for name in adapted)]
    if missing:  # peft adapts the names it finds and skips the others without a word
        raise DetoxError(problem % f"not all of them ({', '.join(missing)} not)")
    return AutoModelForCausalLMWithValueHead.from_pretrained(model)


def causal_lm(policy: AutoModelForCausalLMWithValueHead) -> PreTrainedModel:
    """The transformers model inside the policy (under peft's wrapper, if any)."""
    model = policy.pretrained_model
    return model.get_base_model() if isinstance(model, PeftModel) else model


def merged(model: PreTrainedModel) -> PreTrainedModel:
    """``model`` as a plain transformers model, for ``save_pretrained``: a LoRA adapter is
    merged into the base weights (in place: call it once, at the end), so the folder loads with
    ``AutoModelForCausalLM.from_pretrained`` and evaluate needs nothing new."""
    return model.merge_and_unload() if isinstance(model, PeftModel) else model


def model_to_save(policy: AutoModelForCausalLMWithValueHead) -> PreTrainedModel:
    """The policy's language model, merged (see ``merged``)."""
    return merged(policy.pretrained_model)


def enable_gradient_checkpointing(policy: AutoModelForCausalLMWithValueHead) -> None:
    """Recompute the blocks' activations in the backward pass instead of keeping them.

    TRL 0.11.4's ``PPOTrainer`` runs even the forward pass it backpropagates through in eval
    mode (``batched_forward_pass`` calls ``model.eval()``, to turn dropout off), while
    transformers checkpoints a block only in training mode: TRL's own
    ``gradient_checkpointing`` option therefore saves nothing in ``step``. Here the modules
    transformers would checkpoint are put in training mode exactly while autograd records
    (their dropout submodules stay in eval mode), so TRL's loss forward is checkpointed and
    generation and the reference's no-grad passes run as before. Non-reentrant checkpointing
    needs no input that requires grad, so backward still stops at the lowest trainable block.
    """
    model = causal_lm(policy)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    checkpointed = [module for module in model.modules()
                    if isinstance(module, GradientCheckpointingLayer)]

    def follow_autograd(module: torch.nn.Module, args: tuple) -> None:
        for each in checkpointed:
            each.training = torch.is_grad_enabled()

    model.register_forward_pre_hook(follow_autograd)


def count_parameters(model: torch.nn.Module) -> dict[str, float]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {"trainable_params": trainable, "total_params": total,
            "trainable_fraction": round(trainable / total, 6)}
