"""Training loop for the latent-variable models on 28x28 image datasets (``nlc train --model vae-fmnist``).

Trains on the first 55,000 Fashion-MNIST training images with random horizontal
flips and validates −ELBO in bits/dim on the last 5,000 (a tenth for smaller
folders; the test set is the
benchmark and is never seen). Adam with warm-up and cosine decay, gradient
clipping, Polyak (EMA) averaging of the weights (the averaged weights are
shipped), checkpoints that resume exactly, and a clean stop on a non-finite loss.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..datasets import binarize, load_fashion_mnist
from ..registry import ARCHITECTURES, build_model
from .loop import git_revision, run_training

VAL_SIZE = 5000


@dataclass
class LatentTrainConfig:
    """Everything that determines a latent-model training run."""

    architecture: str  # "vae", "bitswap" or "vrnn"
    data: str
    out: str
    hyperparameters: dict = field(default_factory=dict)
    steps: int = 20000
    batch: int = 64
    lr: float = 2e-3
    warmup: int = 200
    ema: float = 0.999
    clip: float = 50.0
    seed: int = 0
    val_every: int = 1000
    ckpt_every: int = 1000
    resume: str | None = None
    minutes: float = 0.0  # stop this call after so many minutes of wall-clock time (0: run to ``steps``)
    threads: int = 0
    flips: bool = True
    init: str = ""  # start from these weights (a safetensors file; the parameters it has, by name; "base=FILE"
    # loads FILE's parameters as the model's "base." ones, e.g. a trained MADE as an integer MAF's base)


def split_init(init: str) -> tuple[str, str]:
    """``(prefix, file)`` of an ``--init`` value: ``"base=FILE"`` gives ``("base", FILE)`` (FILE's parameters
    as the model's ``base.`` ones), a plain ``FILE`` ``("", FILE)``."""
    prefix, _, path = init.rpartition("=")
    return prefix, path


def build_latent_model(architecture: str, hp: dict) -> torch.nn.Module:
    """An untrained latent-variable model by architecture name (the registry's factory)."""
    if architecture not in ARCHITECTURES or ARCHITECTURES[architecture].family not in ("bitsback", "sequence", "setflow"):
        raise ValueError(f"unknown latent architecture {architecture!r}")
    return build_model(architecture, hp)


def dataset(folder: str, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation images (binarized when ``bits == 1``)."""
    imgs = load_fashion_mnist(folder, "train")
    if bits == 1:
        imgs = binarize(imgs)
    n_val = min(VAL_SIZE, len(imgs) // 10)
    return imgs[: len(imgs) - n_val], imgs[len(imgs) - n_val :]


@torch.no_grad()
def neg_elbo_bits(model: Any, items: np.ndarray, batch: int = 500, seed: int = 0) -> np.ndarray:
    """Per-item −ELBO in bits (one posterior sample per item, fixed noise seed)."""
    model.eval()
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    out = []
    for i in range(0, len(items), batch):
        t = model.loss_terms(torch.from_numpy(items[i : i + batch].astype(np.int64)))
        out.append(sum(t.values()).double().numpy() / math.log(2))
    torch.set_rng_state(state)
    return np.concatenate(out) if out else np.zeros(0)


def neg_elbo_bpd(model: Any, images: np.ndarray) -> float:
    """Average single-sample −ELBO in bits per pixel."""
    return float(neg_elbo_bits(model, images).sum() / images.size)


def train_latent(cfg: LatentTrainConfig, command: str | None = None, progress: bool = True) -> dict:
    """Run (or resume) a latent-model training run; returns the final metadata."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model: Any = build_latent_model(cfg.architecture, cfg.hyperparameters)  # any latent or sequence model
    if cfg.init:
        from safetensors.torch import load_file

        prefix, path = split_init(cfg.init)
        weights = {f"{prefix}.{k}" if prefix else k: v for k, v in load_file(path).items()}
        missing, unexpected = model.load_state_dict(weights, strict=False)
        if unexpected:
            raise ValueError(f"{cfg.init} has parameters the model lacks: {', '.join(unexpected[:5])}")
        print(f"started from {cfg.init}; new parameters: {', '.join(sorted({k.split('.')[0] for k in missing}))}")
    bits = model.config.bits
    train_x, val_x = dataset(cfg.data, bits)
    dims = train_x[0].size * math.log(2)

    def batch_loss(m: Any, rng: np.random.Generator) -> tuple[torch.Tensor, dict]:
        xb = train_x[rng.integers(len(train_x), size=cfg.batch)]
        if cfg.flips:
            flip = rng.random(cfg.batch) < 0.5
            xb = np.where(flip[:, None, None], xb[:, :, ::-1], xb)
        terms = m.loss_terms(torch.from_numpy(np.ascontiguousarray(xb)))
        return sum(terms.values()).mean() / dims, {k: f"{v.mean().item() / dims:.3f}" for k, v in terms.items()}

    def meta(step: int, history: list, val_bpd: float) -> dict:
        return {"architecture": cfg.architecture, "hyperparameters": cfg.hyperparameters,
                "data": f"{cfg.data} (first {len(train_x)} training images{', binarized > 127' if bits == 1 else ''})",
                "val_set": f"last {len(val_x)} training images of {cfg.data}",
                "steps": step, "schedule_steps": cfg.steps, "batch": cfg.batch,
                "val_neg_elbo_bits_per_dim": round(val_bpd, 4), **({"init": cfg.init} if cfg.init else {}),
                "history": history, "command": command or " ".join(sys.argv), "git_revision": git_revision(),
                "torch": torch.__version__}

    return run_training(cfg, model, batch_loss, lambda ema: neg_elbo_bpd(ema, val_x), meta,
                        val_label="val -ELBO", progress=progress)


def main(argv: list[str] | None = None) -> None:
    """``python -m nlc.train.latent --architecture vae --data DIR --out trained/NAME --hp '{...}' [--steps N]``."""
    import argparse
    import json

    ap = argparse.ArgumentParser(description=__doc__)
    for f in LatentTrainConfig.__dataclass_fields__.values():
        if f.name in ("hyperparameters", "flips"):
            continue
        kind = {int: int, float: float}.get(type(f.default), str)
        ap.add_argument("--" + f.name, type=kind, default=None if f.name in ("architecture", "data", "out") else f.default,
                        required=f.name in ("architecture", "data", "out"))
    ap.add_argument("--hp", default="{}", help="model hyper-parameters as JSON")
    a = ap.parse_args(argv)
    kw = {k: v for k, v in vars(a).items() if k != "hp"}
    train_latent(LatentTrainConfig(hyperparameters=json.loads(a.hp), **kw),
                 command="python -m nlc.train.latent " + " ".join(argv or sys.argv[1:]))


if __name__ == "__main__":
    main()
