"""Checkpoints of a PPO run, so that a killed, preempted or interrupted train stage resumes
where it stopped instead of at step 1, and a diverged one keeps its last good state.

Where: ``data/checkpoints/<run key>/`` under the repository (``$DVC_ROOT`` when DVC sets it, so
that a queued ``dvc exp run`` in a temporary copy of the workspace finds the same folder). Not a
DVC output: DVC deletes a stage's outputs before it runs the stage. The run key hashes every
train param, the stage's inputs, the package's code and the number of processes: a run resumes
only a checkpoint of exactly the same run, and anything else starts fresh.

What: the trainable weights and value head (safetensors), the optimizer state
(``torch.load(weights_only=True)``), and as JSON the step, the KL controller's coefficient, the
log so far, and per process the prompt order, its cursor and every RNG state (python, numpy's
global one that TRL shuffles mini-batches with, ours, torch's and CUDA's).

How: each checkpoint is written to its own ``step-<n>`` folder under a temporary name, renamed
when complete, and only then named in ``LATEST`` (an atomic replace), so a kill while saving
leaves the previous checkpoint usable.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

LATEST = "LATEST"


def checkpoint_root() -> Path:
    """``data/checkpoints`` of the repository the run belongs to."""
    return Path(os.environ.get("DVC_ROOT", ".")) / "data" / "checkpoints"


def run_key(params, inputs: list[str | Path], processes: int) -> str:
    """A fingerprint of the run: its params, the contents of its inputs and of the code."""
    digest = hashlib.sha256(json.dumps(asdict(params), sort_keys=True).encode())
    digest.update(f"processes={processes}".encode())
    package = Path(__file__).resolve().parents[1]
    for root in [*map(Path, inputs), package]:
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in files:
            if path.suffix in (".pyc", ".pyo"):
                continue
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def remove_checkpoints(folder: Path) -> None:
    """Drop a finished run's checkpoints (in the main process only)."""
    if int(os.environ.get("RANK", 0)) == 0:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Progress:
    """Where one process of the run stands after ``step`` PPO steps."""

    step: int
    kl_coef: float
    log: list[dict]
    order: list[int]
    cursor: int
    rng: dict  # numpy Generator state of this process's prompt order and lengths


def _rng_states() -> dict:
    kind, keys, position, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {"python": [version, list(internal), gauss],
            "numpy": [kind, keys.tolist(), position, has_gauss, cached]}


def _set_rng_states(states: dict, torch_state: torch.Tensor,
                    cuda_states: list[torch.Tensor]) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), position, has_gauss, cached))
    torch.set_rng_state(torch_state)
    if cuda_states:
        torch.cuda.set_rng_state_all(cuda_states)


class Checkpoints:
    """The checkpoints of one run, in ``folder``; every process calls every method."""

    def __init__(self, folder: Path, accelerator) -> None:
        self.folder, self.accelerator = Path(folder), accelerator
        self.rank = accelerator.process_index

    def latest(self) -> Path | None:
        pointer = self.folder / LATEST
        if not pointer.exists():
            return None
        path = self.folder / pointer.read_text().strip()
        return path if path.is_dir() else None

    def save(self, policy: torch.nn.Module, optimizer, progress: Progress) -> None:
        final = self.folder / f"step-{progress.step:06d}"
        partial = self.folder / f".partial-{final.name}"
        if self.accelerator.is_main_process:
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
        self.accelerator.wait_for_everyone()
        rank_state = {"order": progress.order, "cursor": progress.cursor, "rng": progress.rng,
                      **_rng_states()}
        (partial / f"rank-{self.rank}.json").write_text(json.dumps(rank_state))
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        save_file({"torch": torch.get_rng_state(),
                   **{f"cuda.{i}": state for i, state in enumerate(cuda)}},
                  partial / f"rng-{self.rank}.safetensors")
        if self.accelerator.is_main_process:
            trainable = {name: p.detach().cpu().contiguous()
                         for name, p in policy.named_parameters() if p.requires_grad}
            save_file(trainable, partial / "trainable.safetensors")
            torch.save(optimizer.state_dict(), partial / "optimizer.pt")
            (partial / "progress.json").write_text(json.dumps(
                {"step": progress.step, "kl_coef": progress.kl_coef, "log": progress.log}))
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            shutil.rmtree(final, ignore_errors=True)
            os.replace(partial, final)
            pointer = self.folder / f".{LATEST}"
            pointer.write_text(final.name)
            os.replace(pointer, self.folder / LATEST)  # the checkpoint counts from here on
            for old in self.folder.glob("step-*"):
                if old != final:
                    shutil.rmtree(old)
        self.accelerator.wait_for_everyone()

    def load_weights(self, policy: torch.nn.Module, path: Path | None = None) -> int:
        """Put the trainable weights of the latest (or given) checkpoint back; return its step."""
        path = path or self.latest()
        weights = load_file(path / "trainable.safetensors")
        with torch.no_grad():
            for name, param in policy.named_parameters():
                if param.requires_grad:
                    param.copy_(weights[name].to(param.device))
        return json.loads((path / "progress.json").read_text())["step"]

    def load(self, policy: torch.nn.Module, optimizer) -> Progress:
        """Everything of the latest checkpoint back in place; this process's progress."""
        path = self.latest()
        self.load_weights(policy, path)
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
        shared = json.loads((path / "progress.json").read_text())
        own = json.loads((path / f"rank-{self.rank}.json").read_text())
        rng = load_file(path / f"rng-{self.rank}.safetensors")
        _set_rng_states(own, rng["torch"],
                        [rng[k] for k in sorted(rng) if k.startswith("cuda.")])
        return Progress(step=shared["step"], kl_coef=shared["kl_coef"], log=shared["log"],
                        order=own["order"], cursor=own["cursor"], rng=own["rng"])



class StopRequest:
    """SIGINT and SIGTERM ask the run to finish its step, save a checkpoint and exit (a second
    signal stops at once). A context manager: the previous handlers come back on exit."""

    def __init__(self) -> None:
        self.signum = 0

    def __enter__(self) -> StopRequest:
        self.previous = {sig: signal.signal(sig, self._handle)
                         for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame) -> None:
        if self.signum:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: saving a checkpoint after this step",
              file=sys.stderr)

    def agreed(self, accelerator) -> int:
        """The signal any process got (0 if none): all processes stop at the same step."""
        flag = torch.tensor([self.signum], device=accelerator.device)
        if accelerator.num_processes > 1:
            flag = accelerator.reduce(flag, "max")
        return int(flag)
