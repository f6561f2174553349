"""Pieces shared by the training loops (:mod:`nlc.train`, :mod:`nlc.train.latent`).

Learning-rate schedule, EMA (Polyak) averaging, exact-resume checkpoints, the
optimisation step with a clean stop on a non-finite loss, and the loop that
runs them (:func:`run_training`) on one process or, under ``torchrun``, on
several with PyTorch's DistributedDataParallel (gloo on CPU, NCCL on GPUs):
every process draws its own batches, DDP averages the gradients, and process 0
validates, writes the weights and the checkpoint (with every process's RNG
state, so a resumed run draws the same batches).
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.distributed as dist


def git_revision() -> str:
    """The git commit of the working tree (recorded in training metadata), or ``unknown``."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def save_weights(model: torch.nn.Module, path: Path, meta: dict) -> str:
    """Write safetensors weights and a JSON metadata file; return the weights' sha256."""
    from safetensors.torch import save_file

    from ..registry import sha256_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, path)
    digest = sha256_file(path)
    meta = dict(meta, sha256=digest)
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return digest


def cosine_lr(step: int, lr: float, warmup: int, steps: int) -> float:
    """Linear warm-up to ``lr`` over ``warmup`` steps, then cosine decay to 2% of ``lr`` at ``steps``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, step: int, decay: float) -> None:
    """Move the averaged weights towards the model's (decay warms up over the first steps)."""
    d = min(decay, (1 + step) / (10 + step))
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm, 1 - d)


def optimise(loss: torch.Tensor, model: torch.nn.Module, opt: torch.optim.Optimizer, lr: float, clip: float,
             step: int, ckpt_path: Path) -> None:
    """One Adam step at learning rate ``lr`` with gradient clipping; a non-finite loss stops training."""
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite loss at step {step}; last good checkpoint: {ckpt_path}")
    for g in opt.param_groups:
        g["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()


def distributed() -> tuple[int, int]:
    """``(rank, world size)``: from ``torchrun``'s environment, ``(0, 1)`` for a plain process."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device: str) -> tuple[int, int, str]:
    """Join the process group when launched by ``torchrun``; returns rank, world size and this process's device.

    NCCL and one GPU per process (``LOCAL_RANK``) for CUDA, gloo for CPU.
    """
    rank, world = distributed()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    if device == "cuda" and world > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    return rank, world, device


def _gather(obj: object, world: int) -> list:
    if world == 1:
        return [obj]
    out: list = [None] * world
    dist.all_gather_object(out, obj)
    return out


def save_checkpoint(path: Path, model: torch.nn.Module, ema: torch.nn.Module, opt: torch.optim.Optimizer,
                    step: int, history: list, rng: np.random.Generator, config: dict) -> None:
    """Everything needed to resume exactly: weights, EMA, optimiser, step, history and RNG states.

    Under ``torchrun`` every process must call it (they exchange RNG states); process 0 writes.
    """
    rank, world = distributed()
    rngs = _gather(rng.bit_generator.state, world)
    torch_rngs = _gather(torch.get_rng_state(), world)
    if rank:
        return
    tmp = path.with_suffix(".ckpt.tmp")
    torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(), "step": step,
                "history": history, "rng": rngs[0], "torch_rng": torch_rngs[0], "rngs": rngs,
                "torch_rngs": torch_rngs, "config": config}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str, model: torch.nn.Module, ema: torch.nn.Module, opt: torch.optim.Optimizer,
                    rng: np.random.Generator) -> tuple[int, list]:
    """Restore a :func:`save_checkpoint` file in place (this process's RNG states); returns the step and history."""
    rank, world = distributed()
    state = torch.load(path, weights_only=False, map_location="cpu")
    model.load_state_dict(state["model"])
    ema.load_state_dict(state["ema"])
    opt.load_state_dict(state["opt"])
    rngs, torch_rngs = state.get("rngs", [state["rng"]]), state.get("torch_rngs", [state["torch_rng"]])
    if len(rngs) != world:
        raise ValueError(f"{path}: written by {len(rngs)} processes, resumed with {world}")
    rng.bit_generator.state = rngs[rank]
    torch.set_rng_state(torch_rngs[rank])
    return state["step"], state["history"]


class _LossOf(torch.nn.Module):
    """Wraps a model so that DDP's forward is the batch loss (DDP syncs gradients of what forward computes)."""

    def __init__(self, model: torch.nn.Module, batch_loss: Callable) -> None:
        super().__init__()
        self.model = model
        self.batch_loss = batch_loss

    def forward(self, rng: np.random.Generator) -> tuple[torch.Tensor, dict]:
        return self.batch_loss(self.model, rng)


class LoopConfig(Protocol):
    """The fields of a training config that :func:`run_training` reads."""

    out: str
    steps: int
    lr: float
    warmup: int
    ema: float
    clip: float
    seed: int
    val_every: int
    ckpt_every: int
    resume: str | None
    minutes: float  # wall-clock budget of this call (0: none); the schedule still runs to ``steps``


def _out_of_time(deadline: float | None, world: int, device: str) -> bool:
    """Whether this call's time budget is spent; under ``torchrun`` process 0's clock decides for all."""
    if deadline is None:
        return False
    late = time.time() >= deadline
    if world > 1:
        flag = torch.tensor([float(late)], device=device)  # NCCL broadcasts GPU tensors only
        dist.broadcast(flag, 0)
        late = bool(flag.item())
    return late


def _autocast(device: str, enabled: bool):
    """bf16 autocast on a GPU when the model allows it; fp32 on the CPU."""
    if enabled and device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def run_training(cfg: LoopConfig, model: torch.nn.Module,
                 batch_loss: Callable[[torch.nn.Module, np.random.Generator], tuple[torch.Tensor, dict]],
                 validate: Callable[[torch.nn.Module], float],
                 meta: Callable[[int, list, float], dict], *, val_label: str = "val",
                 progress: bool = True, device: str = "cpu") -> dict:
    """Train ``model`` (or resume ``cfg.resume``) to ``cfg.steps``; returns the final metadata.

    ``batch_loss(model, rng)`` draws a batch (on the model's device) and returns
    the loss in bits/dim with extra progress-bar fields; ``validate(ema)`` gives
    validation bits/dim of the averaged weights, which are written to
    ``cfg.out.safetensors`` with ``meta(step, history, val_bpd)`` at every
    validation; a checkpoint goes to ``cfg.out.ckpt`` every ``cfg.ckpt_every``
    steps. With ``cfg.minutes > 0`` the call stops once that much wall-clock
    time has passed, after validating, writing the weights and a checkpoint; a
    ``--resume`` of it goes on under the same schedule (chained calls on a
    leased GPU). Under ``torchrun`` each process runs this with its own batches.
    A model with ``supports_autocast = False`` (the integer flows, whose
    rounding needs fp32) trains in fp32 on GPUs too.
    """
    from tqdm import tqdm


    rank, world, device = init_distributed(device)
    out = Path(cfg.out)
    ckpt_path = out.with_suffix(".ckpt")
    model.to(device)
    ema = copy.deepcopy(model)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed + rank)
    step, history = 0, list[dict]()
    if cfg.resume:
        step, history = load_checkpoint(cfg.resume, model, ema, opt, rng)
    trainer: torch.nn.Module = _LossOf(model, batch_loss)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        trainer = DistributedDataParallel(trainer)
    amp = getattr(model, "supports_autocast", True)
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress or rank > 0, unit="step", dynamic_ncols=True)
    t0 = time.time()
    deadline = t0 + 60.0 * cfg.minutes if cfg.minutes > 0 else None
    while step < cfg.steps:
        model.train()
        with _autocast(device, amp):
            loss, postfix = trainer(rng)
        loss = loss.float()
        shown = loss.detach().clone()
        if world > 1:  # every process stops together on a non-finite loss anywhere
            dist.all_reduce(shown)
            shown /= world
        try:
            optimise(loss if torch.isfinite(shown) else shown, model, opt,
                     cosine_lr(step, cfg.lr, cfg.warmup, cfg.steps), cfg.clip, step, ckpt_path)
        except FloatingPointError:
            bar.close()
            raise
        ema_update(ema, model, step, cfg.ema)
        step += 1
        bar.update(1)
        bar.set_postfix(bpd=f"{shown.item():.3f}", **postfix)
        stop = _out_of_time(deadline, world, device)
        if (step % cfg.val_every == 0 or step == cfg.steps or stop) and rank == 0:
            vb = validate(ema)
            history.append({"step": step, "train_bpd": round(shown.item(), 4), "val_bpd": round(vb, 4),
                            "seconds": round(time.time() - t0, 1)})
            bar.write(f"step {step}: {val_label} {vb:.4f} bits/dim (EMA)")
            save_weights(ema, out.with_suffix(".safetensors"), meta(step, history, vb))
        if step % cfg.ckpt_every == 0 or step == cfg.steps or stop:
            save_checkpoint(ckpt_path, model, ema, opt, step, history, rng, asdict(cfg))  # type: ignore[call-overload]
        if stop and step < cfg.steps:
            bar.write(f"stopped at step {step} of {cfg.steps} after {cfg.minutes:g} minutes; "
                      f"go on with --resume {ckpt_path}")
            break
    bar.close()
    if world > 1:
        dist.barrier()
    return meta(step, history, history[-1]["val_bpd"] if history else float("nan"))
