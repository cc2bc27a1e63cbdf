"""Throughput and memory of the train stage's PPO loop at the paper's model sizes.

Random-weight policies shaped like gpt-neo-125m, 1.3B and 2.7B (configs only: no download)
run a few steps of ``detox.train.ppo.run_ppo`` with the paper-rtp preset's settings, in bf16, with
and without LoRA, each in a process of its own (so that one run's memory does not count in the
next). It prints a markdown table of samples/s and peak GPU memory, with the memory estimated
from parameter counts beside it (``estimate``), and writes the rows as JSON.

    python -m detox.bench.scale --out bench.json          # from the repository root, on a GPU
    python -m detox.bench.scale --sizes 125m --ppo-epochs 4 --steps 3

What differs from a real run: the prompts are random token ids of the preset's lengths, the
reward comes from the offline profanity-check scorer (the preset's RoBERTa scorer costs a
forward pass of 125M parameters per batch, small beside the policy), and no checkpoint is
written (disk speed is not what is measured). Samples/s leaves out the first step (CUDA
warm-up).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from transformers import AutoModelForCausalLM, GPTNeoConfig, PretrainedConfig
from transformers.pytorch_utils import Conv1D

from detox.params import compose, parse
from detox.train.params import TrainParams
from detox.train.policy import freeze_all_but_top, lora_targets, transformer_blocks

# (hidden size, blocks, heads, vocabulary) of EleutherAI's GPT-Neo checkpoints; "tiny" checks
# the script on CPU
SHAPES = {"tiny": (16, 12, 2, 512), "125m": (768, 12, 12, 50257), "1.3B": (2048, 24, 16, 50257),
          "2.7B": (2560, 32, 20, 50257)}
GiB = 2 ** 30


def policy_config(size: str) -> GPTNeoConfig:
    hidden, blocks, heads, vocab = SHAPES[size]
    return GPTNeoConfig(vocab_size=vocab, max_position_embeddings=2048, hidden_size=hidden,
                        num_layers=blocks, num_heads=heads, window_size=256,
                        attention_types=[[["global", "local"], blocks // 2]])


def estimate(config: PretrainedConfig, layers: int, lora_rank: int | None,
             target_modules: list[str] | None = None) -> dict[str, float]:
    """Bytes of what a run holds for the model, from parameter counts (activations aside).

    ``config`` is any causal LM's (GPT-Neo, GPT-2, Llama, ...): what trains is decided by the
    same code as in a run (``detox.train.policy``), so the blocks, the final norm and the
    output head are found by it, not named here. All weights are kept in fp32 (mixed precision
    autocasts them), the frozen ones once. Without LoRA the top ``layers`` blocks, the final
    norm and the value head train (the output head, tied or not, is frozen): the reference
    holds its own fp32 copy of them, and Adam adds a gradient and two moments (4 + 4 + 8 bytes
    each). With LoRA nothing of the base is copied and only the adapter (in
    ``target_modules``, ``None`` for peft's default) and the value head train.
    """
    with torch.device("meta"):  # shapes without memory
        model = AutoModelForCausalLM.from_config(config)
    freeze_all_but_top(model, layers)
    total = sum(p.numel() for p in model.parameters())
    value_head = config.hidden_size + 1
    if lora_rank is None:
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad) + value_head
        copied = trainable
    else:
        _, blocks = transformer_blocks(model)
        targets = lora_targets(config, target_modules)
        adapter = sum(  # rank x (in + out) per adapted matrix, whichever way it is stored
            lora_rank * sum(module.weight.shape)
            for block in blocks[len(blocks) - layers:] for name, module in block.named_modules()
            if isinstance(module, (torch.nn.Linear, Conv1D))
            and name.rpartition(".")[2] in targets)
        trainable, copied = adapter + value_head, 0
        total += adapter  # the adapter's weights come on top of the base
    return {"params": total + value_head, "trainable": trainable,
            "weights_bytes": 4 * (total + value_head), "reference_copy_bytes": 4 * copied,
            "optimizer_bytes": (4 + 8) * trainable,
            "state_bytes": 4 * (total + value_head + copied) + 12 * trainable}


def bench_params(preset: dict, adapter: str, steps: int, ppo_epochs: int | None,
                 gradient_checkpointing: bool, device: str) -> TrainParams:
    """The preset's train params, in bf16, with the run's overrides."""
    params = parse(TrainParams, preset)
    ppo = dataclasses.replace(params.ppo, steps=steps, save_every=1,
                              ppo_epochs=ppo_epochs or params.ppo.ppo_epochs,
                              gradient_checkpointing=gradient_checkpointing)
    return dataclasses.replace(
        params, ppo=ppo, adapter=dataclasses.replace(params.adapter, kind=adapter),
        model=dataclasses.replace(params.model, precision="bf16", device=device))


class _StepClock:
    """Stands in for the run's checkpoints (``detox.train.resume.Checkpoints``): it saves
    nothing and notes when each step ended (``train`` saves after every step when
    ``save_every`` is 1, and once before the first)."""

    times: list[float] = []

    def __init__(self, folder, accelerator, reach: int) -> None:
        _StepClock.times = []

    def latest(self) -> None:
        return None

    def save(self, policy, optimizer, progress) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        _StepClock.times.append(time.perf_counter())


def run_one(size: str, adapter: str, steps: int, ppo_epochs: int | None,
            gradient_checkpointing: bool, workdir: Path) -> dict:
    """One configuration, in this process: samples/s and peak memory of ``steps`` PPO steps."""
    from detox.device import resolve_device, resolve_dtype
    from detox.download.builtin import corpus
    from detox.download.builtin.tiny_model import train_tokenizer
    from detox.toxicity import PackagedScorer, toxicity_reading
    from detox.train import ppo
    from detox.train.policy import count_parameters, load_trainable

    preset = compose(Path("conf"), "paper-rtp")
    params = bench_params(preset, adapter, steps, ppo_epochs, gradient_checkpointing, "auto")
    device = resolve_device(params.model.device)
    dtype = resolve_dtype(params.model.precision, device)
    folder = workdir / f"gpt-neo-{size}-shaped"
    if not (folder / "config.json").exists():  # random weights, made once per size
        torch.manual_seed(0)
        with torch.device(device):  # initialising 2.7B parameters is much faster on a GPU
            AutoModelForCausalLM.from_config(policy_config(size)).save_pretrained(folder)
    rows = [row for family in corpus.FAMILIES for row in corpus.generate(family, 40, 0)]
    tokenizer = train_tokenizer([f"{r['prompt']} {r['continuation']}" for r in rows], 300)
    rng = np.random.default_rng(0)
    shortest, longest = preset["data"]["prompt_min_tokens"], preset["data"]["prompt_max_tokens"]
    prompts = [rng.integers(0, len(tokenizer), rng.integers(shortest, longest + 1)).tolist()
               for _ in range(4 * params.ppo.batch_size)]
    on_gpu = device.type == "cuda"
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    policy, reference = load_trainable(folder, params.layers, device, params.seed,
                                       params.adapter)
    load_peak = torch.cuda.max_memory_allocated() if on_gpu else 0
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    scorer = PackagedScorer("profanity-check")
    reading = toxicity_reading(scorer.id2label, scorer.multi_label, None, None)
    with mock.patch.object(ppo, "Checkpoints", _StepClock):
        outcome = ppo.run_ppo(policy, reference, tokenizer, scorer, reading, prompts, params,
                              device, workdir / "unused", dtype)
    step_seconds = np.diff(_StepClock.times)[1:]  # the first step warms CUDA up
    estimated = estimate(policy_config(size), params.layers,
                         params.adapter.rank if adapter == "lora" else None,
                         params.adapter.target_modules)
    return {
        "size": size, "adapter": adapter, "gradient_checkpointing": gradient_checkpointing,
        "layers": params.layers, "batch_size": params.ppo.batch_size,
        "mini_batch_size": params.ppo.mini_batch_size, "ppo_epochs": params.ppo.ppo_epochs,
        "steps": len(outcome.log), "diverged": outcome.diverged_at is not None,
        **count_parameters(policy),
        "samples_per_s": (round(params.ppo.batch_size / float(np.mean(step_seconds)), 2)
                          if len(step_seconds) else None),
        "load_peak_gib": round(load_peak / GiB, 2),
        "train_peak_gib": round(torch.cuda.max_memory_allocated() / GiB, 2) if on_gpu else 0.0,
        "estimated_state_gib": round(estimated["state_bytes"] / GiB, 2),
        "device": torch.cuda.get_device_name() if on_gpu else "cpu",
        "date": time.strftime("%Y-%m-%d"),
    }


def table(rows: list[dict]) -> str:
    lines = ["| policy | adapter | grad. ckpt | trainable | samples/s | peak GiB (load / train) "
             "| estimated GiB (weights + reference copy + Adam) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['size']} | {row['adapter']} | {row['gradient_checkpointing']} "
                         f"| | failed: {row['error']} | | |")
            continue
        lines.append(
            f"| gpt-neo-{row['size']}-shaped | {row['adapter']} | "
            f"{'yes' if row['gradient_checkpointing'] else 'no'} | "
            f"{row['trainable_params']:,} ({row['trainable_fraction']:.2%}) | "
            f"{row['samples_per_s']} | {row['load_peak_gib']} / {row['train_peak_gib']} | "
            f"{row['estimated_state_gib']} |")
    first = next((row for row in rows if "error" not in row), None)
    if first:
        lines.append(f"\n{first['device']}, {first['date']}; bf16, batch {first['batch_size']}, "
                     f"mini-batch {first['mini_batch_size']}, {first['ppo_epochs']} PPO epochs, "
                     f"layers {first['layers']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m detox.bench.scale", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Prints the table; writes --out (overwritten) and checkpoint-free scratch "
               "folders under --workdir. Needs a GPU for the paper's sizes, on which its time has "
               "not been measured yet (docs/gpus.md).")
    parser.add_argument("--sizes", nargs="+", default=["125m", "1.3B", "2.7B"],
                        choices=list(SHAPES))
    parser.add_argument("--adapters", nargs="+", default=["none", "lora"],
                        choices=["none", "lora"])
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--ppo-epochs", type=int, default=None,
                        help="default: the preset's (100)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/detox-bench"))
    parser.add_argument("--out", type=Path, default=None, help="the rows as JSON")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    options = ["--steps", str(args.steps), "--workdir", str(args.workdir)]
    options += ["--ppo-epochs", str(args.ppo_epochs)] if args.ppo_epochs else []
    options += ["--gradient-checkpointing"] if args.gradient_checkpointing else []
    if args.one:  # a child: one size, one adapter, a JSON line on stdout
        row = run_one(args.sizes[0], args.adapters[0], args.steps, args.ppo_epochs,
                      args.gradient_checkpointing, args.workdir)
        print("BENCH " + json.dumps(row))
        return
    rows = []
    for size in args.sizes:
        for adapter in args.adapters:
            child = subprocess.run(
                [sys.executable, "-m", "detox.bench.scale", "--one", "--sizes", size,
                 "--adapters", adapter, *options], capture_output=True, text=True)
            lines = [line for line in child.stdout.splitlines() if line.startswith("BENCH ")]
            row = (json.loads(lines[-1][6:]) if lines else
                   {"size": size, "adapter": adapter,
                    "gradient_checkpointing": args.gradient_checkpointing,
                    "error": (child.stderr.strip().splitlines() or ["no output"])[-1]})
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(table(rows))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
