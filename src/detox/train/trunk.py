"""Run the frozen bottom blocks once per sequence in a PPO step instead of four times.

TRL 0.11.4's ``PPOTrainer.step`` runs the whole model over every query + response four times
and more: the policy's and the reference's no-grad passes, then one pass per PPO epoch. The
bottom blocks below the trainable ones hold the same frozen tensors in policy and reference
(``shared_reference``), and every pass of a step runs in eval mode over the same padded rows,
so their output is the same each time. ``reused_frozen_trunk`` computes it on first sight of a
row and hands it back for every later pass of the step; what the blocks above receive is
unchanged (to floating-point summation order).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import torch

from detox.train.policy import causal_lm, transformer_blocks


@dataclass
class TrunkUse:
    """Rows whose frozen-trunk output was computed, and rows that got a stored one."""

    computed: int = 0
    reused: int = 0


def frozen_depth(blocks: torch.nn.ModuleList) -> int:
    """How many blocks from the bottom have no trainable parameter (a LoRA adapter trains)."""
    for depth, block in enumerate(blocks):
        if any(p.requires_grad for p in block.parameters()):
            return depth
    return len(blocks)


def _row_keys(args: tuple, kwargs: dict) -> list[tuple[bytes, ...]]:
    """What the trunk's output for each batch row of a causal LM's call depends on: the row of
    each of its (batch, length) inputs, token ids, attention mask and position ids where given
    (their bytes, whatever the dtype and device)."""
    ids = kwargs.get("input_ids", args[0] if args else None)
    if not isinstance(ids, torch.Tensor):  # called with embeddings: nothing to know rows by
        return []
    rows = [tensor for tensor in (ids, kwargs.get("attention_mask"), kwargs.get("position_ids"))
            if isinstance(tensor, torch.Tensor)]
    as_bytes = [t.detach().contiguous().view(torch.uint8).cpu().numpy() for t in rows]
    return [tuple(part[row].tobytes() for part in as_bytes) for row in range(len(ids))]


@contextmanager
def reused_frozen_trunk(policy, *sharing) -> Iterator[TrunkUse]:
    """While open, the bottom blocks of ``policy`` (a TRL value-head model) that nothing trains,
    and the same blocks of each model of ``sharing`` that holds the very same tensors (the
    reference of ``shared_reference``; ``None`` is skipped), compute each distinct row once and
    return the stored output afterwards; their key-value cache is off (nothing in a PPO step
    reads it). Do not generate inside it: a generation step's rows are single tokens against a
    cache the skipped blocks never fill."""
    stored, use = _Stored(), TrunkUse()
    _, blocks = transformer_blocks(causal_lm(policy))
    depth = frozen_depth(blocks)
    trunk = [id(p) for p in blocks[:depth].parameters()]
    with ExitStack() as undo:
        for model in (causal_lm(each) for each in (policy, *sharing) if each is not None):
            _, its_blocks = transformer_blocks(model)
            if depth and [id(p) for p in its_blocks[:depth].parameters()] == trunk:
                _patch(model, its_blocks[:depth], stored, use, undo)
        yield use


@dataclass
class _Stored:
    rows: dict[tuple[bytes, ...], torch.Tensor] = field(default_factory=dict)
    keys: list[tuple[bytes, ...]] = field(default_factory=list)  # of the call under way
    returns_tuple: bool = False  # what the blocks return (GPT-2's a tuple, Llama's a tensor):
    # learned on the first batch, which is always computed


def _patch(model: torch.nn.Module, trunk: torch.nn.ModuleList, stored: _Stored, use: TrunkUse,
           undo: ExitStack) -> None:
    forwards = [block.forward for block in trunk]

    def shaped(hidden: torch.Tensor):
        return (hidden,) if stored.returns_tuple else hidden

    def bottom(hidden_states: torch.Tensor, *args, **kwargs):
        keys = stored.keys if len(stored.keys) == len(hidden_states) else []
        if keys and all(key in stored.rows for key in keys):
            use.reused += len(keys)
            return shaped(torch.stack([stored.rows[key] for key in keys]))
        hidden = hidden_states
        with torch.no_grad():
            for forward in forwards:
                output = forward(hidden, *args, **kwargs)
                stored.returns_tuple = isinstance(output, tuple)
                hidden = output[0] if stored.returns_tuple else output
        stored.rows.update(zip(keys, hidden))
        use.computed += len(hidden)
        return shaped(hidden)

    def passed_through(hidden_states: torch.Tensor, *args, **kwargs):
        return shaped(hidden_states)

    def remember_rows(module: torch.nn.Module, args: tuple, kwargs: dict):
        stored.keys = _row_keys(args, kwargs)
        return args, {**kwargs, "use_cache": False}

    for index, block in enumerate(trunk):
        undo.callback(_restore_forward, block, block.__dict__.get("forward"))
        block.forward = bottom if index == 0 else passed_through
    undo.callback(model.register_forward_pre_hook(remember_rows, with_kwargs=True).remove)


def _restore_forward(block: torch.nn.Module, previous) -> None:
    if previous is None:
        del block.forward  # back to the class's
    else:
        block.forward = previous
