"""Priors of an integer flow's latents: discretized logistic mixtures coded in stages.

A latent ``z`` of ``C`` channels (the part a level factors out) gets
``p(z | cond) = prod_s p(z_s | cond, z_<s)``: the stages split ``z`` into
channel groups and, within each group, the two colours of a checkerboard. All
positions of a stage are independent given what came before, so decoding takes
one network pass per stage (4 by default), never a per-pixel loop.
``cond`` is the part of the level the flow keeps (``None`` at the top level).
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..heads import integer_logistic_log_prob
from ..image_model import zero_
from .bijections import OUT, _Res, net_input

LOG_SCALE_MIN = -4.0
LOG_SCALE_INIT = 2.0


class StagedPrior(nn.Module):
    """Discretized logistic mixtures over integers for ``channels`` maps, stage by stage."""

    def __init__(self, channels: int, cond_channels: int, hidden: int, blocks: int, mixtures: int,
                 groups: int = 2, checkerboard: bool = True, head_blocks: int = 0) -> None:
        super().__init__()
        if channels % groups:
            raise ValueError(f"{channels} channels do not split into {groups} groups")
        self.channels, self.mixtures, self.groups = channels, mixtures, groups
        self.parities = 2 if checkerboard else 1
        self.trunk_in = nn.Conv2d(max(cond_channels, 1), hidden, 3, padding=1)
        self.trunk = nn.ModuleList(_Res(hidden) for _ in range(blocks))
        self.head_in = nn.Conv2d(hidden + 2 * channels, hidden, 3, padding=1)
        # residual blocks that widen the view of the known entries (3x3 -> 3 + 2 * head_blocks);
        # zero-initialised outputs, so a prior grown from saved weights starts as exactly that prior
        head = [_Res(hidden) for _ in range(head_blocks)]
        for b in head:
            zero_(b.c2)
        self.head_blocks = nn.ModuleList(head)
        self.head_mid = nn.Conv2d(hidden, hidden, 1)
        self.head_out = nn.Conv2d(hidden, 3 * mixtures * channels, 1)
        zero_(self.head_out)

    @property
    def stages(self) -> int:
        """Network passes needed to code the latent."""
        return self.groups * self.parities

    def stage_masks(self, height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """``(stages, C, H, W)`` booleans: which entries each stage codes (they partition the latent)."""
        rows = torch.arange(height, device=device).view(-1, 1)
        cols = torch.arange(width, device=device).view(1, -1)
        parity = (rows + cols) % 2
        group = torch.arange(self.channels, device=device) // (self.channels // self.groups)
        masks = []
        for g in range(self.groups):
            for p in range(self.parities):
                spatial = parity == p if self.parities == 2 else torch.ones_like(parity, dtype=torch.bool)
                masks.append((group == g).view(-1, 1, 1) & spatial.unsqueeze(0))
        return torch.stack(masks)

    def features(self, cond: torch.Tensor | None, batch: int, height: int, width: int) -> torch.Tensor:
        """Trunk features of the conditioning part (a constant input at the top level)."""
        if cond is None:
            weight = self.trunk_in.weight
            inp = torch.ones(batch, 1, height, width, device=weight.device, dtype=weight.dtype)
        else:
            inp = net_input(cond.contiguous())
        h = self.trunk_in(inp)
        for b in self.trunk:
            h = b(h)
        return h

    def stage_params(self, feats: torch.Tensor, z: torch.Tensor, known: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mixture ``(logits, means, log_scales)``, each ``(B, M, C, H, W)``, given the ``known`` entries of ``z``."""
        k = known.expand_as(z)
        # where(), not a product: unknown entries are exactly +0.0 on the encoder's and the decoder's side
        h = self.head_in(torch.cat([F.relu(feats), net_input(torch.where(k, z, 0.0)), k.to(z.dtype)], 1))
        for b in self.head_blocks:
            h = b(h)
        h = self.head_out(F.relu(self.head_mid(F.relu(h))))
        b, _, hh, ww = h.shape
        logits, means, log_scales = h.view(b, 3, self.mixtures, self.channels, hh, ww).unbind(1)
        return logits, means * (2 * OUT), (log_scales + LOG_SCALE_INIT).clamp(min=LOG_SCALE_MIN)

    def stages_of(self, z: torch.Tensor, cond: torch.Tensor | None
                  ) -> Iterator[tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]:
        """Yield each stage's mask ``(C, H, W)`` and mixture parameters, in coding order.

        Stage ``s`` reads the entries of ``z`` coded by earlier stages when it is
        reached, so a decoder fills them in between (the others may hold anything).
        """
        b, _, h, w = z.shape
        feats = self.features(cond, b, h, w)
        masks = self.stage_masks(h, w, z.device)
        known = torch.zeros_like(masks[0])
        for mask in masks:
            yield mask, self.stage_params(feats, z, known)
            known = known | mask

    def log_prob(self, z: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """``log p(z | cond)`` in nats, ``(B,)``."""
        total = z.new_zeros(z.shape[0])
        for mask, params in self.stages_of(z, cond):
            total = total + (integer_logistic_log_prob(z, *params) * mask).flatten(1).sum(1)
        return total
