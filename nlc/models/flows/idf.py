"""The integer discrete flow (IDF): a RealNVP/Glow multi-scale flow on integers.

Level ``l`` squeezes its input (2x2 blocks to channels), runs ``couplings``
steps of [integer 1x1 convolution (or channel reversal), additive coupling],
(or the lifting-based affine coupling, ``coupling = "affine"``), then factors out half of the channels, whose prior is conditioned on the half
it keeps; the kept half goes on to the next level. The top level keeps
everything and codes it with an unconditional prior. Every map is exact on
integers, so ``-log2 p(latents)`` is the image's exact code length.

Pixels enter centred (``0..255 -> -128..127``). Images of any size work: a
level whose input has an odd side first repeats its last row or column (and
the inverse crops it again), so at most one row and one column per level are
padded, at that level's resolution.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from .bijections import COUPLINGS, Bijection, IntegerConv1x1, Reverse, Squeeze
from .priors import StagedPrior


@dataclass
class IDFConfig:
    """Hyper-parameters of :class:`IDF`."""

    channels: int = 3
    levels: int = 5
    couplings: int = 4
    hidden: int = 64
    blocks: int = 1
    prior_hidden: int = 64
    prior_blocks: int = 2
    prior_head_blocks: int = 0  # residual blocks over the known latent entries in each prior's head
    mixtures: int = 5
    groups: int = 2
    checkerboard: bool = True
    conv1x1: bool = True
    coupling: str = "additive"
    level_groups: tuple[int, ...] = ()  # channel groups of each level's prior; empty: ``groups`` everywhere

    def groups_of(self, level: int) -> int:
        """Channel groups of level ``level``'s prior (its stages are groups x checkerboard colours)."""
        if not self.level_groups:
            return self.groups
        if len(self.level_groups) != self.levels:
            raise ValueError(f"level_groups has {len(self.level_groups)} entries for {self.levels} levels")
        return self.level_groups[level]


class Level(nn.Module):
    """Squeeze, ``couplings`` x (1x1 mixing, additive coupling), then the factor-out prior."""

    def __init__(self, cfg: IDFConfig, channels: int, top: bool, groups: int) -> None:
        super().__init__()
        c4 = 4 * channels
        steps: list[Bijection] = [Squeeze()]
        for _ in range(cfg.couplings):
            steps.append(IntegerConv1x1(c4) if cfg.conv1x1 else Reverse())
            steps.append(COUPLINGS[cfg.coupling](c4, cfg.hidden, cfg.blocks))
        self.steps = nn.ModuleList(steps)
        self.keep = 0 if top else c4 // 2
        self.prior = StagedPrior(c4 - self.keep, self.keep, cfg.prior_hidden, cfg.prior_blocks, cfg.mixtures,
                                 groups, cfg.checkerboard, cfg.prior_head_blocks)

    def bijections(self) -> list[Bijection]:
        """The level's steps, typed."""
        return [cast(Bijection, s) for s in self.steps]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The level's bijection (squeeze and steps), before the split."""
        for s in self.bijections():
            x = s(x)
        return x

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`forward`."""
        for s in reversed(self.bijections()):
            z = s.inverse(z)
        return z

    def split(self, z: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``(kept, factored_out)``; nothing is kept at the top level."""
        if not self.keep:
            return None, z
        return z[:, : self.keep], z[:, self.keep :]


class IDF(nn.Module):
    """Integer discrete flow with factor-out priors: exact log-likelihoods of 8-bit images."""

    supports_autocast = False  # rounding to integers needs fp32 in training too

    def __init__(self, config: IDFConfig) -> None:
        super().__init__()
        self.config = config
        levels, c = [], config.channels
        for i in range(config.levels):
            lvl = Level(config, c, top=i == config.levels - 1, groups=config.groups_of(i))
            levels.append(lvl)
            c = lvl.keep
        self.levels = nn.ModuleList(levels)

    def level_list(self) -> list[Level]:
        """The levels, typed."""
        return [cast(Level, lvl) for lvl in self.levels]

    def input_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """``(H, W)`` of every level's input (before its padding to even sides) for an image of that size."""
        sizes = []
        for _ in self.levels:
            sizes.append((height, width))
            height, width = -(-height // 2), -(-width // 2)
        return sizes

    def latents(self, x: torch.Tensor) -> list[tuple[torch.Tensor | None, torch.Tensor]]:
        """Integer image ``(B, C, H, W)`` (centred) -> per level ``(kept, factored_out)``."""
        out: list[tuple[torch.Tensor | None, torch.Tensor]] = []
        for lvl in self.level_list():
            h, w = x.shape[-2:]
            if h % 2 or w % 2:
                x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
            kept, z = lvl.split(lvl(x))
            out.append((kept, z))
            if kept is None:  # the top level keeps nothing
                break
            x = kept
        return out

    def reconstruct(self, level: int, kept: torch.Tensor | None, z: torch.Tensor,
                    size: tuple[int, int]) -> torch.Tensor:
        """Invert level ``level`` from its kept and factored-out parts: its input of ``size`` (the
        previous level's kept part, or the image)."""
        full = z if kept is None else torch.cat([kept, z], 1)
        return self.level_list()[level].inverse(full)[..., : size[0], : size[1]]

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x)`` in nats ``(B,)`` for a centred integer image."""
        total = x.new_zeros(x.shape[0])
        for lvl, (kept, z) in zip(self.level_list(), self.latents(x)):
            total = total + lvl.prior.log_prob(z, kept)
        return total

    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """``log p`` in nats ``(B,)`` of images given in ``[-1, 1]`` (the trainer's pixel scale)."""
        return self.log_prob(torch.round((x + 1.0) * 127.5) - 128.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood in bits per sub-pixel, ``(B,)``, of images in ``[-1, 1]``."""
        return -self.log_likelihood(x) / (x[0].numel() * math.log(2))


_COUPLING_OUT = re.compile(r"^levels\.\d+\.steps\.\d+\.net\.out\.(weight|bias)$")


def affine_from_additive(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weights of an additive-coupling :class:`IDF` grown into the same flow with affine couplings.

    An affine coupling's network outputs one log-scale per channel pair before
    the translations. Zero rows for them in every coupling network's output
    layer give scales of exactly 1, where the four shears are the identity: the
    grown flow computes exactly the additive one's latents and likelihoods, and
    a fine-tune learns the scales from there.
    """
    out = {}
    for name, w in weights.items():
        if _COUPLING_OUT.match(name):
            w = torch.cat([w.new_zeros((w.shape[0] // 2, *w.shape[1:])), w])
        out[name] = w.contiguous()
    return out
