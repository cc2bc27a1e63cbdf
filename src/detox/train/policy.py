"""The trainable policy: value head, top-N trainable blocks (or LoRA adapters in them), and the
reference model that shares the frozen rest; gradient checkpointing; the model to save."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig, PreTrainedModel
from transformers.modeling_layers import GradientCheckpointingLayer
from trl import AutoModelForCausalLMWithValueHead

from detox import DetoxError
from detox.train.params import AdapterParams


def load_trainable(path: str | Path, layers: int, device: torch.device, seed: int,
                   adapter: AdapterParams | None = None,
                   ) -> tuple[AutoModelForCausalLMWithValueHead,
                              AutoModelForCausalLMWithValueHead | None]:
    """Policy with value head whose top ``layers`` blocks train, and its reference model.

    Without an adapter (``None`` or kind ``none``) the top blocks, the final norm and the value
    head train (``freeze_all_but_top``); the embeddings, the blocks below and the output head
    are frozen and shared: the reference holds the very tensors of the policy's frozen part and
    a copy of its trainable part only (the paper's memory saving).

    With ``lora`` every base weight is frozen and LoRA weights train in the ``lora_targets`` of
    the top ``layers`` blocks; the reference is ``None``: TRL's ``PPOTrainer`` then uses the
    policy itself with its adapter disabled, so no second copy of any base weight exists.

    The value head (and LoRA's initial weights) are drawn from ``seed``.
    """
    config = AutoConfig.from_pretrained(path)  # before loading the weights
    blocks = config.num_hidden_layers
    if not 1 <= layers <= blocks:
        raise DetoxError(f"params.yaml: layers={layers} is invalid: must be between 1 and {blocks} "
                         "(the policy's number of transformer blocks)")
    torch.manual_seed(seed)
    if adapter is not None and adapter.kind == "lora":
        targets = lora_targets(config, adapter.target_modules)
        return _with_lora(path, layers, blocks, adapter, targets).to(device), None
    policy = AutoModelForCausalLMWithValueHead.from_pretrained(str(path)).to(device)
    freeze_all_but_top(policy.pretrained_model, layers)
    return policy, shared_reference(policy)


def transformer_blocks(model: PreTrainedModel) -> tuple[str, torch.nn.ModuleList]:
    """The name and the list of ``model``'s transformer blocks (``transformer.h`` of GPT-2 and
    GPT-Neo, ``model.layers`` of Llama, ...): the one module list as long as the config's
    ``num_hidden_layers``, found by shape rather than by a family's attribute names."""
    count = model.config.num_hidden_layers
    found = [(name, module) for name, module in model.named_modules()
             if isinstance(module, torch.nn.ModuleList) and len(module) == count]
    if len(found) > 1:  # e.g. per-block lists of norms: the blocks are the checkpointed layers
        found = [(name, module) for name, module in found
                 if all(isinstance(block, GradientCheckpointingLayer) for block in module)]
    if len(found) != 1:
        raise DetoxError(f"model.policy: cannot tell which modules of a "
                         f"{type(model).__name__} are its {count} transformer blocks")
    return found[0]


def freeze_all_but_top(model: PreTrainedModel, layers: int) -> None:
    """Leave trainable the top ``layers`` blocks and what follows the blocks (the final norm);
    freeze the rest: the embeddings, the blocks below and the output head.

    This is TRL's split (``create_reference_model``: everything after block
    ``blocks - layers`` trains) except for the head. A tied head is the input embeddings and
    is frozen with them (GPT-2, GPT-Neo); an untied one (most Llama-family models from 1B up)
    is frozen too, so that ``layers`` trains the same part on every family and a vocabulary-wide
    matrix does not silently add its weights, reference copy and Adam state to the run.
    """
    _, blocks = transformer_blocks(model)
    params = list(model.parameters())  # registration order, each tied tensor once
    in_blocks = {id(p) for p in blocks.parameters()}
    top = {id(p) for block in blocks[len(blocks) - layers:] for p in block.parameters()}
    last_block = max(i for i, p in enumerate(params) if id(p) in in_blocks)
    head = model.get_output_embeddings()
    head_params = {id(p) for p in head.parameters()} if head is not None else set()
    for i, param in enumerate(params):
        after = i > last_block and id(param) not in head_params
        param.requires_grad_(id(param) in top or after)


def shared_reference(policy: AutoModelForCausalLMWithValueHead,
                     ) -> AutoModelForCausalLMWithValueHead:
    """A frozen copy of ``policy`` that holds the policy's own frozen tensors and copies of its
    trainable ones only. (TRL's ``create_reference_model`` deep-copies every tensor, so the
    frozen part would be held twice.)"""
    frozen = {id(p): p for p in policy.parameters() if not p.requires_grad}
    reference = copy.deepcopy(policy, memo=frozen)  # deepcopy returns what memo maps an id to
    reference.requires_grad_(False)
    return reference.eval()


def lora_targets(config: PretrainedConfig, requested: list[str] | None) -> list[str]:
    """The module names LoRA adapts in each trained block: ``requested`` (the param), else
    peft's default for the architecture (its table by ``config.model_type``: the attention
    query and value projections for GPT-Neo and Llama, ``c_attn`` for GPT-2)."""
    if requested is not None:
        return list(requested)
    default = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(config.model_type)
    if default is None:
        raise DetoxError(f"params.yaml: adapter.target_modules=null is invalid for this policy: "
                         f"peft has no default LoRA targets for model_type "
                         f"{config.model_type!r}, so set adapter.target_modules to the names "
                         "of the linear modules inside its blocks")
    return list(default)


def _with_lora(path: str | Path, layers: int, blocks: int, adapter: AdapterParams,
               targets: list[str]) -> AutoModelForCausalLMWithValueHead:
    """The base model, frozen, with LoRA weights in the ``targets`` of its top ``layers``
    blocks, under a fresh value head."""
    base = AutoModelForCausalLM.from_pretrained(path)
    blocks_name, _ = transformer_blocks(base)
    config = LoraConfig(task_type="CAUSAL_LM", r=adapter.rank, lora_alpha=adapter.alpha,
                        lora_dropout=adapter.dropout, target_modules=targets,
                        layers_to_transform=list(range(blocks - layers, blocks)),
                        layers_pattern=blocks_name.rpartition(".")[2], bias="none")
    shown = (repr(targets) if adapter.target_modules is not None else
             f"null (peft's default for {base.config.model_type}: {targets!r})")
    problem = (f"params.yaml: adapter.target_modules={shown} is invalid: %s found in the top "
               f"{layers} blocks of the policy")
    try:
        model = get_peft_model(base, config)
    except ValueError:  # peft: none of the target modules is in the model
        raise DetoxError(problem % "none of them") from None
    adapted = [name for name, module in model.named_modules() if isinstance(module, LoraLayer)]
    missing = [target for target in targets  # matched as peft does
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


def count_parameters(model: torch.nn.Module) -> dict[str, float | str]:
    """Trainable and total parameters of ``model`` (each tied tensor once) and, when it holds a
    LoRA adapter, the modules peft put it in (``lora_target_modules``, comma-separated): with
    ``adapter.target_modules: null`` the params alone do not say what trained."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    counts: dict[str, float | str] = {"trainable_params": trainable, "total_params": total,
                                      "trainable_fraction": round(trainable / total, 6)}
    peft_model = next((m for m in model.modules() if isinstance(m, PeftModel)), None)
    if peft_model is not None:
        targets = peft_model.peft_config[peft_model.active_adapter].target_modules
        counts["lora_target_modules"] = ", ".join(sorted(targets))
    return counts
