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


class MaskedConv2d(nn.Module):
    """A ``k x k`` convolution (``k`` odd) with mask ``"A"`` or ``"B"``; same-size output."""

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
