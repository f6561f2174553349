"""Any causal image model as a codable one, before it has a fast stepper.

A researcher's network maps ``(B, 4, H, W)`` input (RGB in ``[-1, 1]``, zeros where unknown, and a
ones channel inside the image) to ``(B, 10*M, H, W)`` logistic-mixture parameters (or, with
``head="categorical"``, ``(B, 256*3, H, W)`` logits: a softmax over the 256 values of each channel), each
output pixel depending only on the pixels before it in raster order (masked convolutions, a causal transformer...).
:class:`Causal` wraps it into what the autoregressive coder steps through: the stepper runs the whole
network again for every pixel on the tile as the decoder knows it (the pixels from the current one on
zeroed, for the encoder too, so both compute on the same input), and reads the one output it needs.
That is slow (a full pass per pixel) but correct for any causal network; a fast stepper is the next
step (:class:`nlc.models.image_model.RasterStepper`).

    >>> from nlc.models.adapter import Causal
    >>> from nlc.models.masked import MaskedConv2d
    >>> model = Causal(MaskedConv2d(4, 30, 5, "A"), mixtures=3)   # mask A: never its own pixel or later ones
    >>> model.stepper(2, 8, 8).params(0).shape
    torch.Size([2, 30])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .mixture import HEADS, image_log_likelihood


@dataclass
class CausalConfig:
    """What the coder asks of a model's configuration."""

    mixtures: int
    head: str = "logistic"  # or "categorical" (nlc.models.mixture.HEADS)


class Causal(nn.Module):
    """A causal network ``(B, 4, H, W) -> (B, 10*M, H, W)`` (``head="categorical"``: ``(B, 768, H, W)``) with
    the interface the tiled coder steps through."""

    def __init__(self, net: nn.Module, mixtures: int = 1, head: str = "logistic") -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r} (one of {', '.join(HEADS)})")
        self.net = net
        self.config = CausalConfig(mixtures, head)

    def log_likelihood(self, x4: torch.Tensor, channels: int = 3) -> torch.Tensor:
        """Each image's log-likelihood in nats ``(B,)``: what training maximises (the pixels inside the
        image, by the ones channel)."""
        ll = image_log_likelihood(x4[:, :3], self.net(x4), self.config.mixtures, channels, self.config.head)
        return (ll * x4[:, 3]).flatten(1).sum(1)

    def forward_x4(self, x4: torch.Tensor) -> torch.Tensor:
        """Every pixel's parameters in one pass (training, rate estimates)."""
        return self.net(x4)

    def forward(self, x4: torch.Tensor) -> torch.Tensor:
        """The same as :meth:`forward_x4`."""
        return self.net(x4)

    def stepper(self, batch: int, height: int, width: int) -> "RecomputeStepper":
        """A pixel-by-pixel view of the network over ``batch`` tiles."""
        return RecomputeStepper(self.net, batch, height, width, next(self.parameters()).device)


class RecomputeStepper:
    """Runs the whole network for each pixel on what the decoder knows then (see the module docstring)."""

    def __init__(self, net: nn.Module, batch: int, height: int, width: int, device: torch.device) -> None:
        self.net = net
        self.x = torch.zeros(batch, 4, height, width, device=device)
        self.r = 0

    def fill(self, x4: torch.Tensor) -> None:
        """The tiles' input (the encoder's whole tiles, or the decoder's zeros) and the ones channel."""
        self.x = x4.clone()

    def put(self, index: torch.Tensor, r: int, c: int, rgb: torch.Tensor) -> None:
        """Pixel ``(r, c)`` of the tiles ``index`` once decoded."""
        self.x[index, :3, r, c] = rgb.to(self.x.dtype)

    def start_row(self, r: int) -> None:
        """Row ``r`` comes next."""
        self.r = r

    @torch.no_grad()
    def params(self, c: int) -> torch.Tensor:
        """``(B, 10*M)`` parameters of pixel ``(r, c)``: the network on the tiles with pixel ``(r, c)`` and
        everything after it zeroed."""
        seen = self.x.clone()
        seen[:, :3, self.r, c:] = 0
        seen[:, :3, self.r + 1:] = 0
        return self.net(seen)[:, :, self.r, c]

    def release(self) -> None:
        """Nothing is cached."""
