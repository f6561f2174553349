"""Causal self-attention over the raster order of an image (PixelSNAIL, Chen et al. 2017).

Position ``i`` (row-major) attends to every position ``j <= i`` of the same
image or tile. The features fed in must already be strictly causal in the
pixels (a position's features see only earlier pixels), so including ``j = i``
leaks nothing. Small keys as in the paper (16); the values are ``heads`` heads
of the key size, which keeps PyTorch on its fused (flash) attention kernel.

:meth:`CausalAttention.forward` runs on whole ``(B, C, H, W)`` maps;
:class:`AttentionCache` runs it one position at a time with a key/value cache.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class CausalAttention(nn.Module):
    """``x -> out(softmax(q k^T / sqrt(d)) v)`` per head over the raster order, causal and inclusive."""

    def __init__(self, channels: int, keys: int, heads: int) -> None:
        super().__init__()
        self.keys, self.heads = keys, heads
        self.qkv = nn.Linear(channels, 3 * heads * keys)
        self.out = nn.Linear(heads * keys, channels)
        with torch.no_grad():  # start silent: the layer begins as the identity
            self.out.weight.zero_()
            self.out.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attention output for every position of ``(B, C, H, W)``, same shape."""
        b, _, h, w = x.shape
        qkv = self.qkv(x.flatten(2).transpose(1, 2)).view(b, h * w, 3, self.heads, self.keys)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, heads, L, keys) each
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(o.transpose(1, 2).reshape(b, h * w, -1)).transpose(1, 2).reshape(b, -1, h, w)


class AttentionCache:
    """:class:`CausalAttention` one position at a time over ``positions`` raster positions of ``batch`` tiles."""

    def __init__(self, attn: CausalAttention, batch: int, positions: int, device: torch.device) -> None:
        self.attn = attn
        self.k = torch.zeros(batch * attn.heads, positions, attn.keys, device=device)
        self.v = torch.zeros(batch * attn.heads, positions, attn.keys, device=device)
        self.scale = 1.0 / math.sqrt(attn.keys)

    def step(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """Output ``(B, C)`` at position ``i`` from its input ``x`` ``(B, C)``; positions ``< i`` must be in."""
        a, b = self.attn, x.shape[0]
        q, k, v = a.qkv(x).view(b, 3, a.heads * a.keys).unbind(1)
        self.k[:, i] = k.reshape(-1, a.keys)
        self.v[:, i] = v.reshape(-1, a.keys)
        scores = torch.bmm(self.k[:, : i + 1], q.reshape(-1, a.keys, 1)).squeeze(2) * self.scale  # (B*heads, i+1)
        o = torch.bmm(torch.softmax(scores, dim=1).unsqueeze(1), self.v[:, : i + 1])  # (B*heads, 1, keys)
        return a.out(o.view(b, -1))
