"""Pieces shared by the training loops (:mod:`nlc.train`, :mod:`nlc.train_latent`).

Learning-rate schedule, EMA (Polyak) averaging, exact-resume checkpoints and
the optimisation step with a clean stop on a non-finite loss.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

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
