"""Causal self-attention over the raster order of an image (PixelSNAIL, Chen et al. 2017).

Position ``i`` (row-major) attends to every position ``j <= i`` of the same
image or tile. The features fed in must already be strictly causal in the
pixels (a position's features see only earlier pixels), so including ``j = i``
leaks nothing. One head with small keys and larger values, as in the paper.

:meth:`CausalAttention.forward` runs on whole ``(B, C, H, W)`` maps;
:class:`AttentionCache` runs it one position at a time with a key/value cache.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class CausalAttention(nn.Module):
    """``x -> out(softmax(q k^T / sqrt(d)) v)`` over the raster order, causal and inclusive."""

    def __init__(self, channels: int, keys: int, values: int) -> None:
        super().__init__()
        self.keys, self.values = keys, values
        self.qkv = nn.Linear(channels, 2 * keys + values)
        self.out = nn.Linear(values, channels)
        with torch.no_grad():  # start silent: the block begins as the identity
            self.out.weight.zero_()
            self.out.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attention output for every position of ``(B, C, H, W)``, same shape."""
        b, _, h, w = x.shape
        q, k, v = self.qkv(x.flatten(2).transpose(1, 2)).split([self.keys, self.keys, self.values], dim=2)
        o = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1), is_causal=True)
        return self.out(o.squeeze(1)).transpose(1, 2).reshape(b, -1, h, w)


class AttentionCache:
    """:class:`CausalAttention` one position at a time over ``positions`` raster positions of ``batch`` tiles."""

    def __init__(self, attn: CausalAttention, batch: int, positions: int, device: torch.device) -> None:
        self.attn = attn
        self.k = torch.zeros(batch, positions, attn.keys, device=device)
        self.v = torch.zeros(batch, positions, attn.values, device=device)
        self.scale = 1.0 / math.sqrt(attn.keys)

    def step(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """Output ``(B, C)`` at position ``i`` from its input ``x`` ``(B, C)``; positions ``< i`` must be in."""
        a = self.attn
        q, k, v = a.qkv(x).split([a.keys, a.keys, a.values], dim=1)
        self.k[:, i] = k
        self.v[:, i] = v
        scores = torch.bmm(self.k[:, : i + 1], q.unsqueeze(2)).squeeze(2) * self.scale  # (B, i+1)
        o = torch.bmm(torch.softmax(scores, dim=1).unsqueeze(1), self.v[:, : i + 1]).squeeze(1)
        return a.out(o)
