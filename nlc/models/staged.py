"""A likelihood ``p(x|features)`` over 28x28 pixels coded in 4 interleaved stages.

Each 2x2 block of pixels is split into 4 positions; stage ``s`` holds one
position of every block (top-left, bottom-right, top-right, bottom-left), and
its pixels are conditionally independent given the decoder features and the
pixels of earlier stages. With ``stages=1`` every pixel depends on the
features alone (the usual factorized VAE likelihood). Coding needs one network
pass per stage, not per pixel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .heads import obs_channels, obs_log_prob, pixel_log_prob

# (row, col) offset inside each 2x2 block, in coding order
STAGE_OFFSETS = ((0, 0), (1, 1), (0, 1), (1, 0))


def stage_masks(stages: int, height: int = 28, width: int = 28) -> torch.Tensor:
    """``(stages, H, W)`` boolean masks: which pixels each stage codes."""
    if stages == 1:
        return torch.ones(1, height, width, dtype=torch.bool)
    m = torch.zeros(4, height, width, dtype=torch.bool)
    for s, (dy, dx) in enumerate(STAGE_OFFSETS):
        m[s, dy::2, dx::2] = True
    return m


class StagedLikelihood(nn.Module):
    """Likelihood parameters from decoder features and the pixels of earlier stages."""

    masks: torch.Tensor  # a buffer: (stages, 28, 28)

    def __init__(self, features: int, hidden: int, bits: int, mixtures: int, stages: int) -> None:
        super().__init__()
        if stages not in (1, 4):
            raise ValueError("stages must be 1 or 4")
        self.bits, self.mixtures, self.stages = bits, mixtures, stages
        cout = obs_channels(bits, mixtures)
        self.feat = nn.Conv2d(features, hidden, 1)
        if stages > 1:
            self.ctx1 = nn.Conv2d(2, hidden // 2, 3, padding=1)
            self.ctx2 = nn.Conv2d(hidden // 2, hidden, 3, padding=1)
        self.mid = nn.Conv2d(hidden, hidden, 1)
        self.out = nn.Conv2d(hidden, cout, 1)
        self.register_buffer("masks", stage_masks(stages), persistent=False)

    def _context(self, x: torch.Tensor, stage: int) -> torch.Tensor:
        """Pixels of stages before ``stage`` (others zeroed) and their mask, ``(B, 2, 28, 28)``."""
        seen = self.masks[:stage].any(0) if stage else torch.zeros_like(self.masks[0])
        scale = 1.0 if self.bits == 1 else 255.0
        xs = torch.where(seen, x.float() / scale * 2 - 1, 0.0)
        return torch.stack([xs, seen.float().expand_as(xs)], dim=1)

    def params(self, features: torch.Tensor, x: torch.Tensor | None, stage: int) -> torch.Tensor:
        """Parameters ``(B, C, 28, 28)`` valid at the pixels of ``stage`` (``x`` is read only where earlier stages are)."""
        h = self.feat(features)
        if self.stages > 1 and stage > 0:
            assert x is not None  # later stages read the earlier ones
            h = h + self.ctx2(F.elu(self.ctx1(self._context(x, stage))))
        return self.out(F.elu(self.mid(F.elu(h))))

    def log_prob(self, features: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-image log p(x | features) in nats: all stages in one batched pass."""
        if self.stages == 1:
            return obs_log_prob(x, self.params(features, None, 0), self.bits, self.mixtures)
        b = x.shape[0]
        h = self.feat(features)
        ctx = torch.cat([self._context(x, s) for s in range(1, self.stages)])
        c = self.ctx2(F.elu(self.ctx1(ctx))).view(self.stages - 1, b, *h.shape[1:])
        hs = torch.cat([h.unsqueeze(0), h.unsqueeze(0) + c]).flatten(0, 1)
        p = self.out(F.elu(self.mid(F.elu(hs)))).view(self.stages, b, -1, *x.shape[1:])
        total = torch.zeros(b)
        for s in range(self.stages):
            lp = pixel_log_prob(x, p[s], self.bits, self.mixtures)
            total = total + (lp * self.masks[s]).flatten(1).sum(1)
        return total

