"""One PPO iteration of the project's loop against TRL's toxicity example, side by side.

    python -m detox.bench.versus_trl --shape tiny --device cpu --json bench.json --markdown

Both loops run in this process, one after the other, on the same random-weight models, the same
prompts and the same hyperparameters (the shape's preset in ``conf/``, then the options):

project   the train stage's step, from the package's own functions: ``detox.generation.generate``
          (one batched ``generate``), the scorer (``detox.scoring.load_scorer``),
          ``detox.train.rewards.rewards`` and ``PPOTrainer.step`` with the config of
          ``detox.train.ppo.ppo_config``; policy and shared-layer reference from
          ``detox.train.policy.load_trainable``.
baseline  TRL's ``examples/research_projects/toxicity/scripts/gpt-j-6b-toxicity.py``: one
          ``ppo_trainer.generate(query, **generation_kwargs)`` per query, each with its own
          sampled length, its reference from ``create_reference_model`` (a deep copy) and
          TRL's default Adam; then the same scorer, reward and ``step``.

Evaluation compares the evaluate stage's generation (``detox.evaluate.rollouts.continuations``,
then one pass of the scorer) with TRL's ``evaluate-toxicity.py`` loop (prompt texts tokenized
with left padding, ``model.generate``, prompt text stripped from the decoded output, scored per
batch), at the same batch size and sampling.

Each loop runs one warm-up iteration (not timed), then ``--iterations`` timed ones. Reported per
loop: wall time of generation, scoring (decode + scorer + reward) and update (``step``), per
iteration; samples/s and tokens/s (query + response tokens) over whole iterations; peak memory
(``torch.cuda.max_memory_allocated`` on a GPU; on CPU the process's peak RSS from
``getrusage``, which cannot be split between two loops of one process: the baseline, run second,
reports the peak of both, and no memory ratio is given); evaluation prompts/s (one continuation
per prompt, scored). Every ratio is project / baseline: above 1 for a rate means the project is
faster, below 1 for a time means it takes less.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import sys
import tempfile
import textwrap
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # the package's progress bars would flood stdout
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch
import transformers
import trl
from transformers import (AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerBase,
                          PreTrainedTokenizerFast, RobertaConfig, RobertaForSequenceClassification)
from trl import AutoModelForCausalLMWithValueHead, PPOTrainer, create_reference_model

from detox import DetoxError
from detox.device import resolve_device, resolve_dtype, scorer_dtype
from detox.download.builtin import corpus
from detox.download.builtin.tiny_model import train_tokenizer
from detox.evaluate.params import EvalParams
from detox.evaluate.rollouts import continuations
from detox.generation import generate
from detox.models import load_causal_lm, load_tokenizer
from detox.params import compose, parse
from detox.scoring import load_scorer
from detox.stage import run_stage
from detox.toxicity import BUILTIN_MARKER, Scorer, ToxicityReading, toxicity_reading
from detox.train.params import TrainParams
from detox.train.policy import load_trainable
from detox.train.ppo import ppo_config, ppo_step
from detox.train.rewards import rewards



# --- shapes: same-shaped random-weight models ------------------------------------------------

@dataclass(frozen=True)
class Shape:
    """A policy and scorer shape, and the preset in ``conf/`` whose hyperparameters it runs."""

    preset: str
    vocab_size: int | None  # None: the builtin tokenizer's own vocabulary
    policy: dict  # the policy's config settings, of the architecture ``family``
    scorer: dict | None  # RobertaConfig settings; None: the packaged profanity-check scorer
    family: str = "gpt_neo"  # transformers' model_type of the policy


SHAPES = {
    # The builtin policy of src/detox/download/builtin/tiny_model.py (build_policy's config),
    # scored by the offline default's packaged profanity-check.
    "tiny": Shape("offline", None, dict(
        max_position_embeddings=128, hidden_size=64, num_layers=12, num_heads=4,
        intermediate_size=256, attention_types=[[["global", "local"], 6]], window_size=32),
        None),
    # EleutherAI/gpt-neo-125m and a roberta-base-shaped hate classifier (RobertaConfig's
    # defaults are roberta-base's), as the paper presets.
    "gpt-neo-125m": Shape("paper-rtp", 50257, dict(
        max_position_embeddings=2048, hidden_size=768, num_layers=12, num_heads=12,
        attention_types=[[["global", "local"], 6]], window_size=256),
        dict(id2label={0: "nothate", 1: "hate"}, label2id={"nothate": 0, "hate": 1})),
    # HuggingFaceTB/SmolLM2-135M(-Instruct), the smollm2 preset's policy (a Llama), with the
    # preset's packaged scorer.
    "smollm2-135m": Shape("smollm2", 49152, dict(
        max_position_embeddings=8192, hidden_size=576, intermediate_size=1536,
        num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
        rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True),
        None, family="llama"),
}


def build_tokenizer(vocab_size: int | None, seed: int) -> PreTrainedTokenizerFast:
    """The builtin byte-level BPE (trained on the builtin corpus, as ``build_policy`` does); for
    a real-size vocabulary, filler words added up to ``vocab_size`` so that every id the policy
    samples decodes to text of a realistic length for the scorer."""
    rows = [row for family in corpus.FAMILIES for row in corpus.generate(family, 3000, seed + 1)]
    tokenizer = train_tokenizer([f"{row['prompt']} {row['continuation']}" for row in rows])
    if vocab_size is not None:
        tokenizer.add_tokens([f" w{i}" for i in range(vocab_size - len(tokenizer))])
    return tokenizer


def save_models(shape: Shape, folder: Path, seed: int) -> tuple[Path, Path]:
    """Random-weight policy and scorer saved like ``data/models/{base,scorer}``."""
    tokenizer = build_tokenizer(shape.vocab_size, seed)
    special = dict(bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    policy_dir, scorer_dir = folder / "base", folder / "scorer"
    AutoModelForCausalLM.from_config(AutoConfig.for_model(
        shape.family, vocab_size=len(tokenizer), **special, **shape.policy)
    ).save_pretrained(policy_dir)
    tokenizer.save_pretrained(policy_dir)
    scorer_dir.mkdir()
    if shape.scorer is None:
        (scorer_dir / BUILTIN_MARKER).write_text(json.dumps({"source": "builtin:profanity-check"}))
    else:
        RobertaForSequenceClassification(RobertaConfig(
            pad_token_id=tokenizer.pad_token_id, **special, **shape.scorer,
        )).save_pretrained(scorer_dir)
        tokenizer.save_pretrained(scorer_dir)
    return policy_dir, scorer_dir


# --- settings ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Bench:
    """Everything both loops share: params, device, models on disk, prompts, clock."""

    shape: str
    params: TrainParams
    sampling: EvalParams
    device: torch.device
    dtype: torch.dtype
    policy_dir: Path
    scorer_dir: Path
    prompt_tokens: tuple[int, int]  # min and max query length
    adam: str  # the project loop's optimizer: "trl" (PPOTrainer's Adam), "foreach" or "fused"
    batches: list[list[list[int]]]  # warm-up + timed PPO batches of query token ids
    eval_queries: list[list[int]]

    def now(self) -> float:
        """Wall clock after the GPU's queued work is done."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def autocast(self):
        return (torch.autocast(self.device.type, dtype=self.dtype)
                if self.dtype != torch.float32 else nullcontext())


def settings(args: argparse.Namespace) -> tuple[TrainParams, EvalParams, tuple[int, int]]:
    """The shape's preset as ``conf/`` composes it, with the options' overrides, checked by the
    stages' own param schemas; and the prompts' length range (which prepare, not train, reads)."""
    raw = compose(Path("conf"), SHAPES[args.shape].preset)  # run from the repository root
    overrides = {
        ("ppo", "batch_size"): args.batch_size, ("ppo", "mini_batch_size"): args.mini_batch_size,
        ("ppo", "ppo_epochs"): args.ppo_epochs, ("model", "device"): args.device,
        ("model", "precision"): args.precision, ("eval", "batch_size"): args.eval_batch_size,
        ("eval", "max_new_tokens"): args.eval_new_tokens,
        **dict(zip([("data", "prompt_min_tokens"), ("data", "prompt_max_tokens")],
                   args.prompt_tokens or [])),
        **dict(zip([("generation", "max_new_tokens_from"), ("generation", "max_new_tokens_to")],
                   args.new_tokens or [])),
    }
    for (section, name), value in overrides.items():
        if value is not None:
            raw[section][name] = value
    prompt_tokens = (raw["data"]["prompt_min_tokens"], raw["data"]["prompt_max_tokens"])
    if not 1 <= prompt_tokens[0] <= prompt_tokens[1]:
        raise DetoxError(f"--prompt-tokens {prompt_tokens}: must be 1 <= MIN <= MAX")
    return parse(TrainParams, raw), parse(EvalParams, raw["eval"], "eval."), prompt_tokens


def random_queries(rng: np.random.Generator, count: int, low: int, high: int,
                   vocab: range) -> list[list[int]]:
    """``count`` queries of ``low``..``high`` tokens, uniform over ``vocab``."""
    return [rng.integers(vocab.start, vocab.stop, int(rng.integers(low, high + 1))).tolist()
            for _ in range(count)]


# --- one PPO iteration of each loop ----------------------------------------------------------

def reading(bench: Bench, scorer: Scorer) -> ToxicityReading:
    """How the scorer's logits read as toxicity under the bench's params, as in the stages."""
    model = bench.params.model
    return toxicity_reading(scorer.id2label, scorer.multi_label, model.neutral_label,
                            model.toxic_labels)


@dataclass
class Iteration:
    generate_s: float
    score_s: float
    update_s: float
    samples: int
    tokens: int  # query + response tokens
    response_tokens: int


class Loop(ABC):
    """A policy, its reference and its ``PPOTrainer``; ``iteration`` is one PPO step (TRL's
    stats of the last one, its own ``time/ppo/*`` split included, in ``stats``)."""

    trainer: PPOTrainer
    stats: dict

    def __init__(self, bench: Bench, scorer: Scorer) -> None:
        self.bench, self.scorer = bench, scorer
        self.reading = reading(bench, scorer)
        self.tokenizer = load_tokenizer(bench.policy_dir)
        self.lengths = np.random.default_rng(bench.params.seed + 1)  # new-token draws

    @abstractmethod
    def responses(self, queries: list[list[int]], seed: int) -> list[torch.Tensor]:
        """One sampled continuation of every query (generation)."""

    @abstractmethod
    def texts(self, responses: list[torch.Tensor]) -> list[str]:
        """The continuations decoded for the scorer."""

    def step(self, queries: list[torch.Tensor], responses: list[torch.Tensor],
             reward: list[torch.Tensor]) -> dict:
        """The PPO update: TRL's ``PPOTrainer.step`` as it is."""
        return self.trainer.step(queries, responses, reward)

    def iteration(self, queries: list[list[int]], seed: int) -> Iteration:
        """Generate, score (decode, scorer, reward) and step, each phase timed."""
        bench, device = self.bench, self.bench.device
        start = bench.now()
        responses = self.responses(queries, seed)
        generated = bench.now()
        reward = rewards(self.scorer.logits(self.texts(responses)), bench.params.reward,
                         self.reading)
        scored = bench.now()
        self.stats = self.step([torch.as_tensor(q, device=device) for q in queries],
                               [r.to(device) for r in responses], list(reward.to(device)))
        updated = bench.now()
        response_tokens = sum(len(r) for r in responses)
        return Iteration(generated - start, scored - generated, updated - scored, len(queries),
                         sum(len(q) for q in queries) + response_tokens, response_tokens)


class ProjectLoop(Loop):
    """The train stage's step (``detox.train.ppo.run_ppo``), without its checkpoints and log."""

    name = "project"

    def __init__(self, bench: Bench, scorer: Scorer) -> None:
        super().__init__(bench, scorer)
        params = bench.params
        self.policy, self.reference = load_trainable(bench.policy_dir, params.layers,
                                                     bench.device, params.seed)
        trainable = [p for p in self.policy.parameters() if p.requires_grad]
        optimizer = (None if bench.adam == "trl" else  # None: PPOTrainer's own Adam
                     torch.optim.Adam(trainable, lr=params.ppo.learning_rate,
                                      **{bench.adam: True}))
        self.trainer = PPOTrainer(ppo_config(params, bench.device), self.policy, self.reference,
                                  self.tokenizer, optimizer=optimizer)

    def step(self, queries: list[torch.Tensor], responses: list[torch.Tensor],
             reward: list[torch.Tensor]) -> dict:
        return ppo_step(self.trainer, self.policy, self.reference, queries, responses, reward)

    def responses(self, queries: list[list[int]], seed: int) -> list[torch.Tensor]:
        sampling = self.bench.params.generation
        new_tokens = int(self.lengths.integers(sampling.max_new_tokens_from,
                                               sampling.max_new_tokens_to + 1))
        return generate(self.policy, self.tokenizer, queries, new_tokens, sampling.top_k,
                        sampling.top_p, seed, self.bench.dtype)

    def texts(self, responses: list[torch.Tensor]) -> list[str]:
        return self.tokenizer.batch_decode(responses, skip_special_tokens=True)


class BaselineLoop(Loop):
    """TRL's toxicity example: one ``ppo_trainer.generate`` per query, each of its own length.

    The example loads its policy in bf16; here both loops keep fp32 weights and run generation
    under the same autocast and the step under the same mixed precision, so only the loop
    differs.
    """

    name = "baseline"

    def __init__(self, bench: Bench, scorer: Scorer) -> None:
        super().__init__(bench, scorer)
        params = bench.params
        torch.manual_seed(params.seed)  # the same value head as the project's
        policy = AutoModelForCausalLMWithValueHead.from_pretrained(str(bench.policy_dir)).to(
            bench.device)
        blocks = policy.pretrained_model.config.num_hidden_layers
        reference = create_reference_model(policy, num_shared_layers=blocks - params.layers)
        self.trainer = PPOTrainer(ppo_config(params, bench.device), policy, reference,
                                  self.tokenizer)

    def responses(self, queries: list[list[int]], seed: int) -> list[torch.Tensor]:
        sampling = self.bench.params.generation
        generation_kwargs = {"min_length": -1, "top_k": sampling.top_k,
                             "top_p": sampling.top_p, "do_sample": True,
                             "pad_token_id": self.tokenizer.eos_token_id}
        torch.manual_seed(seed)
        responses = []
        for query in queries:
            gen_len = int(self.lengths.integers(sampling.max_new_tokens_from,
                                                sampling.max_new_tokens_to + 1))
            generation_kwargs["max_new_tokens"] = gen_len
            with self.bench.autocast():
                response = self.trainer.generate(torch.as_tensor(query, device=self.bench.device),
                                                 **generation_kwargs)
            responses.append(response.squeeze()[-gen_len:])
        return responses

    def texts(self, responses: list[torch.Tensor]) -> list[str]:
        return [self.tokenizer.decode(r.squeeze()) for r in responses]


# --- evaluation ------------------------------------------------------------------------------

def project_eval(bench: Bench, model, tokenizer: PreTrainedTokenizerBase, scorer: Scorer,
                 queries: list[list[int]]) -> np.ndarray:
    """The evaluate stage: batched continuations, then one pass of the scorer over all."""
    frame = continuations(model, tokenizer, queries, bench.sampling,
                          bench.sampling.batch_size, bench.params.seed, bench.dtype)
    return reading(bench, scorer).toxicity(scorer.logits(frame["continuation"].tolist()))


def baseline_eval(bench: Bench, model, tokenizer: PreTrainedTokenizerBase, scorer: Scorer,
                  queries: list[list[int]]) -> np.ndarray:
    """TRL's ``evaluate-toxicity.py``: prompt texts tokenized with left padding per batch,
    ``generate``, the prompt text stripped from the decoded output, each batch scored."""
    sampling = bench.sampling
    scores_of = reading(bench, scorer).toxicity
    prompts, scores = tokenizer.batch_decode(queries), []
    for start in range(0, len(prompts), sampling.batch_size):
        torch.manual_seed(bench.params.seed)
        batch = prompts[start:start + sampling.batch_size]
        inputs = tokenizer(batch, return_tensors="pt", padding=True).to(bench.device)
        with torch.no_grad(), bench.autocast():
            outputs = model.generate(**inputs, do_sample=True,
                                     max_new_tokens=sampling.max_new_tokens, top_k=sampling.top_k,
                                     top_p=sampling.top_p, use_cache=True,
                                     pad_token_id=tokenizer.pad_token_id)
        texts = [text.replace(prompt, "") for text, prompt in
                 zip(tokenizer.batch_decode(outputs, skip_special_tokens=True), batch)]
        scores.append(scores_of(scorer.logits(texts)))
    return np.concatenate(scores)


# --- measuring -------------------------------------------------------------------------------

def peak_memory_mib(device: torch.device) -> float:
    """Peak GPU memory allocated since the last reset, or the process's peak RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return kib / (2**20 if sys.platform == "darwin" else 2**10)


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def measure_ppo(bench: Bench, loop_class: type[Loop]) -> dict:
    """A warm-up iteration, then the timed ones; per-iteration phase means and rates."""
    free(bench.device)
    scorer = load_scorer(bench.scorer_dir, bench.device, scorer_dtype(bench.device))
    loop = loop_class(bench, scorer)
    seed = bench.params.seed * 100_003
    loop.iteration(bench.batches[0], seed)
    timed = [loop.iteration(batch, seed + i) for i, batch in enumerate(bench.batches[1:], 1)]
    seconds = sum(t.generate_s + t.score_s + t.update_s for t in timed)
    result = {
        "generate_s": np.mean([t.generate_s for t in timed]),
        "score_s": np.mean([t.score_s for t in timed]),
        "update_s": np.mean([t.update_s for t in timed]),
        "iteration_s": seconds / len(timed),
        "samples_per_s": sum(t.samples for t in timed) / seconds,
        "tokens_per_s": sum(t.tokens for t in timed) / seconds,
        "response_tokens_per_sample": sum(t.response_tokens for t in timed)
        / sum(t.samples for t in timed),
        "peak_memory_mib": peak_memory_mib(bench.device),
    }
    del loop, scorer
    free(bench.device)
    return {key: float(value) for key, value in result.items()}


def measure_eval(bench: Bench, model, evaluate: Callable[..., np.ndarray]) -> dict:
    """One warm-up batch, then every eval query: prompts (one continuation each, scored) per s."""
    scorer = load_scorer(bench.scorer_dir, bench.device, scorer_dtype(bench.device),
                         bench.sampling.batch_size)
    tokenizer = load_tokenizer(bench.policy_dir)
    tokenizer.padding_side = "left"  # as TRL's script; the evaluate stage pads by hand anyway
    evaluate(bench, model, tokenizer, scorer, bench.eval_queries[:bench.sampling.batch_size])
    start = bench.now()
    scores = evaluate(bench, model, tokenizer, scorer, bench.eval_queries)
    seconds = bench.now() - start
    assert len(scores) == len(bench.eval_queries)
    return {"seconds": seconds, "prompts_per_s": len(scores) / seconds}


def ratios(project: dict, baseline: dict) -> dict:
    """project / baseline for every number both report (None where the baseline's is 0)."""
    return {key: (project[key] / baseline[key] if baseline[key] else None)
            for key in project if key in baseline}


def prepare(args: argparse.Namespace, folder: Path) -> Bench:
    """The settings, the models saved in ``folder``, and the prompts of every iteration."""
    params, sampling, prompt_range = settings(args)
    device = resolve_device(params.model.device)
    dtype = resolve_dtype(params.model.precision, device)
    if args.threads:
        torch.set_num_threads(args.threads)
    policy_dir, scorer_dir = save_models(SHAPES[args.shape], folder, params.seed)
    rng = np.random.default_rng(params.seed)
    tokenizer = load_tokenizer(policy_dir)
    vocab = range(tokenizer.eos_token_id + 1, len(tokenizer))  # anything but the eos (id 0)
    eval_prompts = args.eval_prompts or 4 * sampling.batch_size
    return Bench(
        args.shape, params, sampling, device, dtype, policy_dir, scorer_dir, prompt_range,
        args.adam,
        batches=[random_queries(rng, params.ppo.batch_size, *prompt_range, vocab)
                 for _ in range(1 + args.iterations)],
        eval_queries=random_queries(rng, eval_prompts, *prompt_range, vocab))


def benchmark(args: argparse.Namespace, folder: Path) -> dict:
    """Both loops measured on the same models and prompts; the result as the JSON holds it."""
    bench = prepare(args, folder)
    params, sampling, device = bench.params, bench.sampling, bench.device
    ppo = {loop.name: measure_ppo(bench, loop) for loop in (ProjectLoop, BaselineLoop)}
    model = load_causal_lm(bench.policy_dir, device)
    evaluation = {name: measure_eval(bench, model, evaluate)
                  for name, evaluate in (("project", project_eval), ("baseline", baseline_eval))}
    ppo_ratios = ratios(ppo["project"], ppo["baseline"])
    if device.type == "cpu":
        ppo_ratios["peak_memory_mib"] = None  # one process's RSS: not split between the loops
    return {
        "shape": args.shape,
        "device": device.type,
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else platform.processor() or platform.machine()),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "precision": params.model.precision,
        "date": date.today().isoformat(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "trl": trl.__version__},
        "settings": {
            "batch_size": params.ppo.batch_size, "mini_batch_size": params.ppo.mini_batch_size,
            "ppo_epochs": params.ppo.ppo_epochs, "layers": params.layers,
            "prompt_tokens": list(bench.prompt_tokens),
            "new_tokens": [params.generation.max_new_tokens_from, params.generation.max_new_tokens_to],
            "iterations": args.iterations, "adam": bench.adam,
            "eval_batch_size": sampling.batch_size,
            "eval_prompts": len(bench.eval_queries), "eval_new_tokens": sampling.max_new_tokens,
            "scorer": "profanity-check" if SHAPES[args.shape].scorer is None
            else "roberta-base-shaped",
        },
        "memory": ("torch.cuda.max_memory_allocated per loop" if device.type == "cuda" else
                   "process peak RSS (getrusage) after each loop; the baseline runs second, "
                   "so its figure is the peak of both"),
        "ppo": {**ppo, "ratio": ppo_ratios},
        "eval": {**evaluation, "ratio": ratios(evaluation["project"], evaluation["baseline"])},
    }


# --- reporting -------------------------------------------------------------------------------

ROWS = [  # (section, key, label, format)
    ("ppo", "generate_s", "generation, s / iteration", "{:.3f}"),
    ("ppo", "score_s", "scoring, s / iteration", "{:.3f}"),
    ("ppo", "update_s", "update (PPO step), s / iteration", "{:.3f}"),
    ("ppo", "iteration_s", "iteration, s", "{:.3f}"),
    ("ppo", "samples_per_s", "samples/s", "{:.1f}"),
    ("ppo", "tokens_per_s", "tokens/s (query + response)", "{:.0f}"),
    ("ppo", "peak_memory_mib", "peak memory, MiB", "{:.0f}"),
    ("eval", "prompts_per_s", "evaluation prompts/s", "{:.1f}"),
]


def summary_line(result: dict) -> str:
    ppo, evaluation = result["ppo"], result["eval"]
    project = ppo["project"]
    return (f"{result['shape']} {result['device']} {result['precision']}: project "
            f"{project['samples_per_s']:.1f} samples/s (generate {project['generate_s']:.2f} s, "
            f"score {project['score_s']:.2f} s, update {project['update_s']:.2f} s), "
            f"TRL example {ppo['baseline']['samples_per_s']:.1f} samples/s: "
            f"{ppo['ratio']['samples_per_s']:.2f}x; eval "
            f"{evaluation['project']['prompts_per_s']:.1f} prompts/s "
            f"({evaluation['ratio']['prompts_per_s']:.2f}x TRL's evaluate-toxicity.py)")


def markdown(result: dict) -> str:
    s = result["settings"]
    lines = [
        f"{result['shape']} shape, {result['device']} ({result['device_name']}, "
        f"{result['threads']} threads), {result['precision']}, {result['date']}: batch "
        f"{s['batch_size']}, mini-batch {s['mini_batch_size']}, {s['ppo_epochs']} PPO epochs, "
        f"prompts of {s['prompt_tokens'][0]}-{s['prompt_tokens'][1]} tokens, "
        f"{s['new_tokens'][0]}-{s['new_tokens'][1]} new tokens, {s['layers']} trainable blocks, "
        f"mean of {s['iterations']} iteration(s) after a warm-up; evaluation: "
        f"{s['eval_prompts']} prompts in batches of {s['eval_batch_size']}, "
        f"{s['eval_new_tokens']} new tokens; scorer {s['scorer']}.",
        "",
        "| | project | TRL example loop | project / TRL |",
        "| --- | --- | --- | --- |",
    ]
    for section, key, label, form in ROWS:
        row = result[section]
        ratio = row["ratio"][key]
        lines.append(f"| {label} | {form.format(row['project'][key])} | "
                     f"{form.format(row['baseline'][key])} | "
                     f"{'n/a' if ratio is None else f'{ratio:.2f}'} |")
    return "\n".join(lines)


EPILOG = ("Writes nothing but the --json file (overwritten). Runs in a scratch folder: random-"
          "weight models of the shape, built in seconds. Time per iteration of both loops on 2 "
          "CPU cores, as measured in docs/benchmark.md: tiny about 12 s (2026-11-30, 4 PPO "
          "epochs), smollm2-135m about 3.5 min (2026-12-07); gpt-neo-125m is meant for a GPU.")


def bench_parser(prog: str, doc: str, epilog: str = EPILOG, outputs: bool = True
                 ) -> argparse.ArgumentParser:
    """The benchmark's options (the shape's preset, then these), for this command and the
    profiling commands built on it; ``outputs``: the timed iterations and the result files."""
    summary, _, details = doc.partition("\n\n")
    parser = argparse.ArgumentParser(prog=prog, description=summary + "\n\n" + details.strip("\n"),
                                     epilog=textwrap.fill(epilog, 88),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=SHAPES, default="tiny")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default: the preset's")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"),
                        help="default: the preset's")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--mini-batch-size", type=int)
    parser.add_argument("--ppo-epochs", type=int)
    parser.add_argument("--prompt-tokens", type=int, nargs=2, metavar=("MIN", "MAX"))
    parser.add_argument("--new-tokens", type=int, nargs=2, metavar=("MIN", "MAX"))
    parser.add_argument("--eval-batch-size", type=int)
    parser.add_argument("--eval-new-tokens", type=int)
    parser.add_argument("--eval-prompts", type=int, help="default: 4 eval batches")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--adam", choices=("trl", "foreach", "fused"), default="trl",
                        help="the project loop's Adam: PPOTrainer's own (what the train stage "
                        "runs), or torch's foreach or fused implementation handed to it")
    if outputs:
        parser.add_argument("--iterations", type=int, default=2, help="timed, after one warm-up")
        parser.add_argument("--json", type=Path, help="write the full result here (overwritten)")
        parser.add_argument("--markdown", action="store_true",
                            help="also print a markdown table")
    else:
        parser.set_defaults(iterations=2, json=None, markdown=False)
    return parser


def checked(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if args.iterations < 1:
        parser.error("--iterations must be >= 1")
    return args


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return checked(bench_parser("python -m detox.bench.versus_trl", __doc__), argv)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; print the summary line (and the table); write the JSON."""
    args = parse_args(argv)
    transformers.logging.set_verbosity_error()
    with tempfile.TemporaryDirectory(prefix="ppo-bench-") as folder:
        result = benchmark(args, Path(folder))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(summary_line(result))
    if args.markdown:
        print(markdown(result))
    return result


if __name__ == "__main__":
    run_stage(main)
