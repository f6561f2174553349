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

from .. import fixed
from .exact import FLOAT, FloatArithmetic

QKV_LIMIT = 128.0  # exact attention clamps queries, keys and values to +-this
MAX_EXACT_POSITIONS = 2**14  # keys per query that exact attention sums exactly (128x128 tiles)
QUERY_BLOCK = 256  # queries per block in a whole-tensor exact pass (bounds its memory)


def clamp_qkv(t: torch.Tensor) -> torch.Tensor:
    """Queries, keys or values clamped to ``+-QKV_LIMIT``, as :func:`exact_attend` needs them."""
    return t.clamp(-QKV_LIMIT, QKV_LIMIT)


def exact_attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, first: int | None = None) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d)) v`` in exact arithmetic, the same on every machine.

    ``q`` ``(..., Lq, d)``, ``k`` and ``v`` ``(..., Lk, d)``, grid values (see
    :mod:`nlc.fixed`) already clamped to ``+-QKV_LIMIT`` (:func:`clamp_qkv`: once
    where they are made, not at every decoding step over the whole key/value
    cache). With ``first`` (the position of the first query), query ``t`` sees
    keys ``j <= first + t`` only (causal); without it, every key. With that
    clamp every score is an exact sum (below ``2^50`` units of ``2^-32``), and
    scaling by ``1/sqrt(d)`` (a power of two) and subtracting the row's maximum
    are exact. The weights are integers ``round(2^16 exp(score - max))`` from a
    table; the weighted sum of the values and the sum of the weights are exact
    (below ``2^53`` for up to ``MAX_EXACT_POSITIONS`` keys), and one IEEE
    division, rounded to the grid, gives the output ``(..., Lq, d)``. So a block
    of queries gives exactly the rows of the whole, and a decoder's one query
    exactly its row.
    """
    d, lq, lk = q.shape[-1], q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(d)
    if math.frexp(scale)[0] != 0.5:
        raise ValueError(f"exact attention needs keys of a power-of-4 size (1/sqrt({d}) is not a power of two)")
    if lk > MAX_EXACT_POSITIONS:
        raise ValueError(f"exact attention sums at most {MAX_EXACT_POSITIONS} positions exactly; this needs {lk}")
    s = torch.matmul(q, k.transpose(-1, -2)).mul_(scale)
    if first is not None:
        rows = torch.arange(first, first + lq, device=s.device).view(-1, 1)
        s.masked_fill_(torch.arange(lk, device=s.device).view(1, -1) > rows, -math.inf)
    s.sub_(s.amax(-1, keepdim=True))
    w = fixed.weight_lut()(s)
    return fixed.snap(torch.matmul(w, v) / w.sum(-1, keepdim=True))


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

    def forward(self, x: torch.Tensor, arith: FloatArithmetic = FLOAT) -> torch.Tensor:
        """Attention output for every position of ``(B, C, H, W)``, same shape (exact with an exact ``arith``)."""
        b, _, h, w = x.shape
        qkv = arith.lin(self.qkv(x.flatten(2).transpose(1, 2))).view(b, h * w, 3, self.heads, self.keys)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, heads, L, keys) each
        if arith.exact:  # in blocks of queries: the scores of all pairs at once would need L^2 memory per tile
            q, k, v = clamp_qkv(q), clamp_qkv(k), clamp_qkv(v)
            o = torch.cat([exact_attend(q[:, :, i : i + QUERY_BLOCK], k[:, :, : i + QUERY_BLOCK],
                                        v[:, :, : i + QUERY_BLOCK], first=i)
                           for i in range(0, h * w, QUERY_BLOCK)], 2)
        else:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return arith.lin(self.out(o.transpose(1, 2).reshape(b, h * w, -1))).transpose(1, 2).reshape(b, -1, h, w)


class AttentionCache:
    """:class:`CausalAttention` one position at a time over ``positions`` raster positions of ``batch`` tiles,
    in the arithmetic ``arith`` (exact: :func:`exact_attend`)."""

    def __init__(self, attn: CausalAttention, batch: int, positions: int, device: torch.device,
                 arith: FloatArithmetic = FLOAT, dtype: torch.dtype = torch.float32) -> None:
        self.attn, self.arith = attn, arith
        self.k = torch.zeros(batch * attn.heads, positions, attn.keys, dtype=dtype, device=device)
        self.v = torch.zeros(batch * attn.heads, positions, attn.keys, dtype=dtype, device=device)
        self.scale = 1.0 / math.sqrt(attn.keys)

    def step(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """Output ``(B, C)`` at position ``i`` from its input ``x`` ``(B, C)``; positions ``< i`` must be in."""
        a, b, A = self.attn, x.shape[0], self.arith
        q, k, v = A.lin(a.qkv(x)).view(b, 3, a.heads * a.keys).unbind(1)
        if A.exact:
            q, k, v = clamp_qkv(q), clamp_qkv(k), clamp_qkv(v)
        self.k[:, i] = k.reshape(-1, a.keys)
        self.v[:, i] = v.reshape(-1, a.keys)
        if A.exact:
            o = exact_attend(q.reshape(-1, 1, a.keys), self.k[:, : i + 1], self.v[:, : i + 1])
            return A.lin(a.out(o.view(b, -1)))
        scores = torch.bmm(self.k[:, : i + 1], q.reshape(-1, a.keys, 1)).squeeze(2) * self.scale  # (B*heads, i+1)
        o = torch.bmm(torch.softmax(scores, dim=1).unsqueeze(1), self.v[:, : i + 1])  # (B*heads, 1, keys)
        return a.out(o.view(b, -1))
