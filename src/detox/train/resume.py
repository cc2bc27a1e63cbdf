"""Checkpoints of a PPO run, so that a killed, preempted or interrupted train stage resumes
where it stopped instead of at step 1, and a diverged one keeps its last good state.

Where: ``data/checkpoints/<run key>/`` under the repository (``$DVC_ROOT`` when DVC sets it, so
that a queued ``dvc exp run`` in a temporary copy of the workspace finds the same folder). Not a
DVC output: DVC deletes a stage's outputs before it runs the stage. The run key hashes every
train param, the stage's inputs, the package's code and the number of processes: a run resumes
only a checkpoint of exactly the same run, and anything else starts fresh.

What: the trainable weights and value head (safetensors), the optimizer state
(``torch.load(weights_only=True)``), and as JSON the step, the KL controller's coefficient, the
log so far, the pass over the prompts and where in it, fp16's loss-scaler state, and per
process every RNG state (python, numpy's global one that TRL shuffles mini-batches with, ours,
torch's and its GPU's). Checkpoints are kept as far back as the divergence guard can reach (its
collapse window and one step more): on divergence the run goes back to the newest one whose
weights wrote no distrusted rollouts.

How: each checkpoint is written to its own ``step-<n>`` folder under a temporary name, renamed
when complete, and only then named in ``LATEST`` (an atomic replace), so a kill while saving
leaves the previous checkpoint usable.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
import shutil
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from detox import DetoxError
from detox.device import is_main_process

LATEST = "LATEST"


def checkpoint_root() -> Path:
    """``data/checkpoints`` of the repository the run belongs to."""
    return Path(os.environ.get("DVC_ROOT", ".")) / "data" / "checkpoints"


def run_key(params: Mapping[str, Any], inputs: list[str | Path], processes: int) -> str:
    """A fingerprint of the run: the params it reads (``TrainParams.used``), the contents of
    its inputs, the package modules it has imported (the train stage's code, not the rest of
    the package) and the process count."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    digest.update(f"processes={processes}".encode())
    package = Path(__file__).resolve().parents[1]
    code = sorted(Path(module.__file__).resolve() for name, module in list(sys.modules.items())
                  if name.split(".")[0] == "detox" and getattr(module, "__file__", None))
    for root, files in [*((Path(i), _files(Path(i))) for i in inputs), (package, code)]:
        for path in files:
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]


def remove_checkpoints(folder: Path) -> None:
    """Drop a finished run's checkpoints (in the main process only)."""
    if is_main_process():
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Progress:
    """Where the run stands after ``step`` PPO steps."""

    step: int
    kl_coef: float
    log: list[dict]
    epoch: int  # the pass over the training prompts (its order is seeded by it)
    cursor: int  # where in that pass the next step's batches start
    rng: dict  # numpy Generator state of this process's continuation lengths
    scaler: dict | None = None  # fp16's loss-scaler state


def _rng_states() -> dict:
    kind, keys, position, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {"python": [version, list(internal), gauss],
            "numpy": [kind, keys.tolist(), position, has_gauss, cached]}


def _set_rng_states(states: dict, tensors: dict[str, torch.Tensor],
                    device: torch.device) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), position, has_gauss, cached))
    torch.set_rng_state(tensors["torch"])
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["cuda"], device)


class Checkpoints:
    """The checkpoints of one run, in ``folder``; every process calls every method."""

    def __init__(self, folder: Path, accelerator, reach: int) -> None:
        """``reach``: how many steps back from the latest a rollback may need to go."""
        self.folder, self.accelerator, self.reach = Path(folder), accelerator, reach
        self.rank = accelerator.process_index
        if is_main_process():
            # One writer per run: e.g. a stage left running by a `dvc repro` killed with
            # SIGTERM (which DVC does not pass on), or two queue workers on the same run.
            self.folder.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.folder / ".lock", "w")
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DetoxError(f"another process is training this run into {self.folder}: "
                                 "stop it first (signal its process group)") from None

    def latest(self) -> Path | None:
        pointer = self.folder / LATEST
        if not pointer.exists():
            return None
        path = self.folder / pointer.read_text().strip()
        return path if path.is_dir() else None

    def newest_up_to(self, step: int) -> Path:
        """The newest checkpoint of ``step`` or before (the start's, step 0, is always kept)."""
        kept = sorted(self.folder.glob("step-*"), reverse=True)
        return next(path for path in kept if int(path.name[5:]) <= step)

    def save(self, policy: torch.nn.Module, optimizer, progress: Progress) -> None:
        final = self.folder / f"step-{progress.step:06d}"
        partial = self.folder / f".partial-{final.name}"
        if is_main_process():
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
        self.accelerator.wait_for_everyone()
        (partial / f"rank-{self.rank}.json").write_text(
            json.dumps({"rng": progress.rng, **_rng_states()}))
        states = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():  # this process's own GPU
            states["cuda"] = torch.cuda.get_rng_state(self.accelerator.device)
        save_file(states, partial / f"rng-{self.rank}.safetensors")
        if is_main_process():
            trainable = {name: p.detach().cpu().contiguous()
                         for name, p in policy.named_parameters() if p.requires_grad}
            save_file(trainable, partial / "trainable.safetensors")
            torch.save(optimizer.state_dict(), partial / "optimizer.pt")
            (partial / "progress.json").write_text(json.dumps(
                {"step": progress.step, "kl_coef": progress.kl_coef, "log": progress.log,
                 "epoch": progress.epoch, "cursor": progress.cursor,
                 "scaler": progress.scaler}))
        self.accelerator.wait_for_everyone()
        if is_main_process():
            shutil.rmtree(final, ignore_errors=True)
            os.replace(partial, final)
            pointer = self.folder / f".{LATEST}"
            pointer.write_text(final.name)
            os.replace(pointer, self.folder / LATEST)  # the checkpoint counts from here on
            # Kept: every checkpoint within `reach` steps and the newest one beyond it.
            kept = sorted(self.folder.glob("step-*"), reverse=True)
            beyond = [path for path in kept if int(path.name[5:]) <= progress.step - self.reach]
            for old in beyond[1:]:
                shutil.rmtree(old)
            for leftover in self.folder.glob(".partial-*"):  # of a save killed midway
                shutil.rmtree(leftover)
        self.accelerator.wait_for_everyone()

    def load_weights(self, policy: torch.nn.Module, path: Path) -> int:
        """Put the trainable weights of the checkpoint in ``path`` back; return its step."""
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
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu",
                                             weights_only=True))
        shared = json.loads((path / "progress.json").read_text())
        own = json.loads((path / f"rank-{self.rank}.json").read_text())
        _set_rng_states(own, load_file(path / f"rng-{self.rank}.safetensors"),
                        self.accelerator.device)
        return Progress(step=shared["step"], kl_coef=shared["kl_coef"], log=shared["log"],
                        epoch=shared["epoch"], cursor=shared["cursor"], rng=own["rng"],
                        scaler=shared["scaler"])



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
