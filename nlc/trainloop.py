"""Pieces shared by the training loops (:mod:`nlc.train`, :mod:`nlc.train_latent`).

Learning-rate schedule, EMA (Polyak) averaging, exact-resume checkpoints, the
optimisation step with a clean stop on a non-finite loss, and the loop that
runs them (:func:`run_training`).
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch


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


def save_checkpoint(path: Path, model: torch.nn.Module, ema: torch.nn.Module, opt: torch.optim.Optimizer,
                    step: int, history: list, rng: np.random.Generator, config: dict) -> None:
    """Everything needed to resume exactly: weights, EMA, optimiser, step, history and RNG states."""
    tmp = path.with_suffix(".ckpt.tmp")
    torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(), "step": step,
                "history": history, "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                "config": config}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str, model: torch.nn.Module, ema: torch.nn.Module, opt: torch.optim.Optimizer,
                    rng: np.random.Generator) -> tuple[int, list]:
    """Restore a :func:`save_checkpoint` file in place; returns the step and the history."""
    state = torch.load(path, weights_only=False)
    model.load_state_dict(state["model"])
    ema.load_state_dict(state["ema"])
    opt.load_state_dict(state["opt"])
    rng.bit_generator.state = state["rng"]
    torch.set_rng_state(state["torch_rng"])
    return state["step"], state["history"]


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


def run_training(cfg: LoopConfig, model: torch.nn.Module,
                 batch_loss: Callable[[torch.nn.Module, np.random.Generator], tuple[torch.Tensor, dict]],
                 validate: Callable[[torch.nn.Module], float],
                 meta: Callable[[int, list, float], dict], *, val_label: str = "val",
                 progress: bool = True) -> dict:
    """Train ``model`` (or resume ``cfg.resume``) to ``cfg.steps``; returns the final metadata.

    ``batch_loss(model, rng)`` draws a batch and returns the loss in bits/dim
    with extra progress-bar fields; ``validate(ema)`` gives validation bits/dim
    of the averaged weights, which are written to ``cfg.out.safetensors`` with
    ``meta(step, history, val_bpd)`` at every validation; a checkpoint goes to
    ``cfg.out.ckpt`` every ``cfg.ckpt_every`` steps.
    """
    from tqdm import tqdm

    from .train import save_weights

    out = Path(cfg.out)
    ckpt_path = out.with_suffix(".ckpt")
    ema = copy.deepcopy(model)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    step, history = 0, []
    if cfg.resume:
        step, history = load_checkpoint(cfg.resume, model, ema, opt, rng)
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, unit="step", dynamic_ncols=True)
    t0 = time.time()
    while step < cfg.steps:
        model.train()
        loss, postfix = batch_loss(model, rng)
        try:
            optimise(loss, model, opt, cosine_lr(step, cfg.lr, cfg.warmup, cfg.steps), cfg.clip, step, ckpt_path)
        except FloatingPointError:
            bar.close()
            raise
        ema_update(ema, model, step, cfg.ema)
        step += 1
        bar.update(1)
        bar.set_postfix(bpd=f"{loss.item():.3f}", **postfix)
        if step % cfg.val_every == 0 or step == cfg.steps:
            vb = validate(ema)
            history.append({"step": step, "train_bpd": round(loss.item(), 4), "val_bpd": round(vb, 4),
                            "seconds": round(time.time() - t0, 1)})
            bar.write(f"step {step}: {val_label} {vb:.4f} bits/dim (EMA)")
            save_weights(ema, out.with_suffix(".safetensors"), meta(step, history, vb))
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            save_checkpoint(ckpt_path, model, ema, opt, step, history, rng, asdict(cfg))
    bar.close()
    return meta(step, history, history[-1]["val_bpd"] if history else float("nan"))
