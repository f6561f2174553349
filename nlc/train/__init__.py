"""Training loop for the image likelihood models (``nlc train``).

Random crops and horizontal flips from a folder of photos, Adam with warm-up and
cosine decay, gradient clipping, an exponential moving average (Polyak
averaging) of the weights that is what gets shipped, periodic validation in
bits/dim on fixed crops of a validation folder, checkpoints that resume exactly
(model, EMA, optimiser, step, RNG states), and a clean stop on a non-finite loss
that keeps the last good checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..images import list_images
from ..models.pixelcnnpp import PixelCNNPPConfig
from ..registry import build_model
from .loop import distributed, git_revision, run_training


@dataclass
class TrainConfig:
    """Everything that determines a training run."""

    data: str
    val: str
    out: str = "trained/pixelcnnpp"
    steps: int = 10000
    batch: int = 16
    crop: int = 32
    lr: float = 2e-3
    warmup: int = 200
    ema: float = 0.999
    clip: float = 1.0
    seed: int = 0
    val_every: int = 500
    val_crop: int = 64  # side of the fixed validation crops (8 per image); flows' top levels need large ones
    ckpt_every: int = 500
    resume: str | None = None
    minutes: float = 0.0  # stop this call after so many minutes of wall-clock time (0: run to ``steps``)
    init: str | None = None  # safetensors to start from (a fine-tune), instead of a fresh initialisation
    freeze: str | None = None  # regular expression: parameters whose names contain a match stay fixed
    threads: int = 0
    device: str = "cpu"
    architecture: str = "pixelcnnpp"
    model: dict = field(default_factory=lambda: asdict(PixelCNNPPConfig()))


def load_rgb(folder: str | Path, shard: tuple[int, int] = (0, 1)) -> list[np.ndarray]:
    """The images of a folder as ``(H, W, 3)`` uint8; with ``shard = (rank, processes)`` only that process's
    share, ``files[rank::processes]`` (so each process of a distributed run reads its own files)."""
    from PIL import Image

    if "kodak" in str(Path(folder).resolve()).lower():
        raise ValueError(f"{folder}: refusing to train or validate on Kodak, the benchmark")
    rank, processes = shard
    files = list_images(folder)
    mine = files[rank::processes]
    if not mine:
        raise ValueError(f"{folder}: {len(files)} images for {processes} processes; each process needs one")
    if processes > 1:
        print(f"rank {rank}/{processes} reads {len(mine)} of {len(files)} images: "
              + ", ".join(p.name for p in mine), file=sys.stderr)
    return [np.asarray(Image.open(p).convert("RGB")) for p in mine]


def to_model_range(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, H, W, 3)`` -> float ``(B, 3, H, W)`` in ``[-1, 1]``."""
    t = torch.as_tensor(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float()
    return t / 127.5 - 1.0


def random_crops(images: list[np.ndarray], n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random ``size x size`` crops with random horizontal flips."""
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        im = images[rng.integers(len(images))]
        y = rng.integers(im.shape[0] - size + 1)
        x = rng.integers(im.shape[1] - size + 1)
        crop = im[y : y + size, x : x + size]
        out[i] = crop[:, ::-1] if rng.random() < 0.5 else crop
    return out


def val_crops(images: list[np.ndarray], size: int = 64, per_image: int = 8) -> np.ndarray:
    """Fixed validation crops: a deterministic grid of ``per_image`` crops per image."""
    rng = np.random.default_rng(1234)
    return np.concatenate([random_crops([im], per_image, size, rng) for im in images])


@torch.no_grad()
def bits_per_dim(model: Any, crops: np.ndarray, batch: int = 16) -> float:
    """Model bits per sub-pixel over uint8 crops."""
    model.eval()
    dev = next(model.parameters()).device
    total = 0.0
    for i in range(0, len(crops), batch):
        total -= model.log_likelihood(to_model_range(crops[i : i + batch]).to(dev)).sum().item()
    return total / (crops.size * math.log(2))


def start_fine_tune(model: torch.nn.Module, init: str | None, freeze: str | None, architecture: str
                    ) -> tuple[str | None, list[str]]:
    """Load ``init`` weights into ``model`` and fix the parameters whose names contain a match of
    ``freeze``. Returns the sha256 of ``init`` (``None`` without one) and the modules ``init`` has no
    weights for: layers the model gained, which keep their fresh initialisation (a grown model).
    Bad input is a ``ValueError``: weights of another model (a name the model lacks, a shape that
    differs, or nothing in common), a bad regex, a regex that matches nothing."""
    init_sha, fresh = None, []
    if init:
        from safetensors.torch import load_file

        from ..registry import sha256_file

        init_sha = sha256_file(init)
        try:
            weights = load_file(init)
            missing, unexpected = model.load_state_dict(weights, strict=False)
        except Exception as e:  # a file that is no safetensors, or weights of another shape
            raise ValueError(f"{init}: not weights of this {architecture} model ({str(e).splitlines()[0]})") from None
        if unexpected or not weights:  # every name known: nothing in common only when the file is empty
            names = ", ".join(sorted(unexpected)[:3]) or "no weight in common"
            raise ValueError(f"{init}: not weights of this {architecture} model ({names})")
        fresh = sorted({k.rsplit(".", 1)[0] for k in missing})
    if freeze:
        try:
            pattern = re.compile(freeze)
        except re.error as e:
            raise ValueError(f"--freeze {freeze!r}: {e}") from None
        frozen = [p for n, p in model.named_parameters() if pattern.search(n)]
        if not frozen:
            raise ValueError(f"--freeze {freeze!r} matches no parameter")
        for p in frozen:
            p.requires_grad_(False)
    return init_sha, fresh


def train(cfg: TrainConfig, command: str | None = None, progress: bool = True) -> dict:
    """Run (or resume) a training run; returns the final metadata."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    train_imgs = load_rgb(cfg.data, distributed())  # under torchrun, each process reads its own share
    vcrops = val_crops(load_rgb(cfg.val), cfg.val_crop)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.architecture, cfg.model)
    init_sha, fresh = start_fine_tune(model, cfg.init, cfg.freeze, cfg.architecture)
    if fresh and progress:
        print(f"{len(fresh)} modules are not in {cfg.init} and start fresh: {', '.join(fresh[:4])}"
              + (", ..." if len(fresh) > 4 else ""), file=sys.stderr)

    def batch_loss(m: Any, rng: np.random.Generator) -> tuple[torch.Tensor, dict]:
        x = to_model_range(random_crops(train_imgs, cfg.batch, cfg.crop, rng)).to(next(m.parameters()).device)
        # log_likelihood is per pixel (autoregressive models) or per image (flows): sum, then per sub-pixel
        return -m.log_likelihood(x).sum() / (x.numel() * math.log(2)), {}

    def meta(step: int, history: list, val_bpd: float) -> dict:
        return {
            "architecture": cfg.architecture,
            "hyperparameters": cfg.model,
            "data": str(cfg.data),
            "val": str(cfg.val),
            "steps": step,
            "schedule_steps": cfg.steps,  # the cosine schedule's length: larger than steps mid-schedule
            "batch": cfg.batch,
            "crop": cfg.crop,
            "val_bits_per_dim": round(val_bpd, 4),
            "val_set": f"{len(vcrops)} fixed {cfg.val_crop}x{cfg.val_crop} crops of {cfg.val}",
            "history": history,
            "command": command or " ".join(sys.argv),
            "git_revision": git_revision(),
            "torch": torch.__version__,
            "device": cfg.device,
            "processes": int(os.environ.get("WORLD_SIZE", "1")),
            "data_shards": "each process reads files[rank::processes] of the training folder",
            **({"init": cfg.init, "init_sha256": init_sha} if cfg.init else {}),
            **({"init_fresh": fresh} if fresh else {}),
            **({"freeze": cfg.freeze} if cfg.freeze else {}),
        }

    return run_training(cfg, model, batch_loss, lambda ema: bits_per_dim(ema, vcrops), meta, progress=progress,
                        device=cfg.device)


def main(argv: list[str] | None = None) -> None:
    """``python -m nlc.train --data DIR --val DIR [--steps N] ...`` (same options as ``nlc train``)."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    for f in TrainConfig.__dataclass_fields__.values():
        if f.name == "model":
            continue
        kind = {int: int, float: float}.get(type(f.default), str)
        ap.add_argument("--" + f.name, type=kind, default=None if f.name in ("data", "val") else f.default,
                        required=f.name in ("data", "val"))
    ap.add_argument("--model-json", default=None, help="model hyper-parameters as JSON")
    ap.add_argument("--codec", default=None, help="take architecture and hyper-parameters from this codec")
    a = ap.parse_args(argv)
    kw = {k: v for k, v in vars(a).items() if k not in ("model_json", "codec")}
    if a.codec:  # the codec's architecture and hyper-parameters, with --model-json's changes
        from ..registry import get_spec

        spec = get_spec(a.codec)
        kw.update(architecture=spec.architecture,
                  model=dict(spec.hyperparameters, **json.loads(a.model_json or "{}")))
    elif a.model_json:
        kw["model"] = dict(asdict(PixelCNNPPConfig()), **json.loads(a.model_json))
    train(TrainConfig(**kw), command="python -m nlc.train " + shlex.join(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
