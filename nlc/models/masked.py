"""Masked convolutions (PixelCNN, van den Oord et al. 2016).

A ``k x k`` kernel is multiplied by a mask that keeps only the taps above the
centre row and left of the centre in the centre row: mask ``A`` leaves out the
centre itself (first layer: a pixel never sees itself), mask ``B`` keeps it
(later layers: a feature sees its own position's earlier features). Stacked,
they leave the PixelCNN's blind spot to the upper right.

Only the top ``k//2 + 1`` kernel rows can hold kept taps, so only they are
stored and convolved (a ``3 x 3`` mask-B layer costs 6 taps, not 9). For coding
one position at a time, the kept taps of a row-major window of those rows are
always a prefix: :meth:`MaskedConv2d.taps` of them, and
:meth:`MaskedConv2d.matrix` lays the weights out to match a channel-last map.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .image_model import RasterStepper


class MaskedConv2d(nn.Module):
    """A ``k x k`` convolution (``k`` odd) with mask ``"A"`` or ``"B"``; same-size output."""

    mask: torch.Tensor  # a buffer

    def __init__(self, cin: int, cout: int, k: int, mask: str) -> None:
        super().__init__()
        if k % 2 != 1 or mask not in ("A", "B"):
            raise ValueError("kernel size must be odd and mask 'A' or 'B'")
        self.k, self.kind = k, mask
        self.weight = nn.Parameter(torch.empty(cout, cin, k // 2 + 1, k))
        self.bias = nn.Parameter(torch.zeros(cout))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        m = torch.zeros(k // 2 + 1, k)
        m.view(-1)[: self.taps] = 1.0
        self.register_buffer("mask", m, persistent=False)

    @property
    def taps(self) -> int:
        """Kept taps, a prefix of the row-major ``(k//2 + 1) x k`` window ending at the centre."""
        p = self.k // 2
        return p * self.k + p + (self.kind == "B")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Whole-tensor masked convolution, zero padded, same size."""
        p = self.k // 2
        return F.conv2d(F.pad(x, (p, p, p, 0)), self.weight * self.mask, self.bias)

    def matrix(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Weights as ``(taps * Cin, Cout)`` for a window flattened as ``(taps, Cin)``, and the bias."""
        w = self.weight.flatten(2)[:, :, : self.taps]  # (cout, cin, taps)
        return w.permute(2, 1, 0).reshape(-1, w.shape[0]).contiguous(), self.bias

    def window(self, padded: torch.Tensor, r: int, c: int) -> torch.Tensor:
        """The kept taps at ``(r, c)``, ``(B, taps * Cin)``, of a channel-last ``(B, H', W', Cin)`` map
        padded by ``k//2`` rows on top and ``k//2`` columns left and right."""
        k, p = self.k, self.k // 2
        b, cin = padded.shape[0], padded.shape[3]
        return padded[:, r : r + p + 1, c : c + k].reshape(b, -1, cin)[:, : self.taps].reshape(b, -1)


class MaskedStackStepper(RasterStepper):
    """Base of the steppers of masked-convolution stacks (PixelCNN, PixelSNAIL).

    Besides the base's pixel buffer (read by the neighbourhood skip), the pixels
    are kept channel-last and padded by ``pad`` for the first layer's window,
    and :meth:`new_map` gives the channel-last map a mask-B ``3 x 3`` layer reads
    through :func:`window3`: rows ``r - 1`` and ``r`` only, padded left and
    right, rolled up at each :meth:`start_row`, so memory does not grow with
    the tile's height.
    """

    def __init__(self, model: nn.Module, batch: int, height: int, width: int, pad: int) -> None:
        super().__init__(model, batch, height, width)
        self.p = pad
        self.x_cl = torch.zeros(batch, height + pad, width + 2 * pad, 4, dtype=self.x.dtype, device=self.device)
        self.maps: list[torch.Tensor] = []

    def new_map(self, channels: int) -> torch.Tensor:
        """A zero ``(B, 2, W + 2, channels)`` map (rows ``r - 1`` and ``r``) for a mask-B ``3 x 3`` layer."""
        m = torch.zeros(self.batch, 2, self.width + 2, channels, dtype=self.x.dtype, device=self.device)
        self.maps.append(m)
        return m

    @torch.no_grad()
    def fill(self, x4: torch.Tensor) -> None:
        """Load ``(B, 4, H, W)`` input (RGB in ``[-1, 1]`` and the ones channel)."""
        super().fill(x4)
        self.x_cl[:, self.p :, self.p : self.p + self.width] = self.arith.input(x4).permute(0, 2, 3, 1)

    @torch.no_grad()
    def put(self, index: torch.Tensor, r: int, c: int, rgb: torch.Tensor) -> None:
        """Set pixel ``(r, c)`` of the tiles ``index`` to ``rgb`` ``(n, 3)`` in ``[-1, 1]``."""
        super().put(index, r, c, rgb)
        self.x_cl[index, r + self.p, c + self.p, :3] = self.arith.input(rgb)

    @torch.no_grad()
    def start_row(self, r: int) -> None:
        """Start row ``r``: the maps' current row becomes the row above."""
        super().start_row(r)
        if r > 0:
            for m in self.maps:
                m[:, 0] = m[:, 1]  # the stale row 1 is overwritten left to right before it is read


def window3(m: torch.Tensor, h: torch.Tensor, c: int) -> torch.Tensor:
    """Write ``h`` ``(B, C)`` at column ``c`` of the current row of map ``m`` (see
    :meth:`MaskedStackStepper.new_map`) and return the mask-B ``3 x 3`` taps there,
    ``(B, 5 * C)`` in :meth:`MaskedConv2d.matrix` order."""
    m[:, 1, c + 1] = h
    b = m.shape[0]
    return m[:, :, c : c + 3].reshape(b, 6, -1)[:, :5].reshape(b, -1)
