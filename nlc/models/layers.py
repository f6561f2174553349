"""Causal convolution layers shared by the autoregressive image models.

Every layer here works in two modes that compute the same function:

* ``forward(x)`` on a whole ``(B, C, H, W)`` tensor, used for training and for
  measuring likelihoods in one parallel pass;
* ``row(inputs, r)`` which produces only output row ``r`` from the few input rows
  it depends on, used by the row-cached evaluation in
  :mod:`nlc.models.rowgraph` so that decoding never recomputes the network over
  the whole image.

"Vertical" layers (:class:`DownShiftedConv2d`, :class:`DownsampleConv2d`,
:class:`UpsampleConvT2d`) make output row ``r`` depend on input rows ``<= r`` only;
the stream that uses them starts with a one-row shift so that its features at
row ``r`` see image rows ``< r`` only. :class:`RightShiftedConv1d` is causal along
a row and serves the per-pixel horizontal stream.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _init_conv(conv: "DownShiftedConv2d | RightShiftedConv1d | UpsampleConvT2d") -> None:
    nn.init.kaiming_uniform_(conv.weight, a=math.sqrt(5))
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class DownShiftedConv2d(nn.Module):
    """Convolution whose output row ``r`` sees input rows ``r-kh+1 .. r``.

    The kernel is ``kh x kw`` (``kw`` odd), centred horizontally, with zero
    padding on top, left and right.
    """

    row_stride = 1

    def __init__(self, cin: int, cout: int, kh: int = 2, kw: int = 3) -> None:
        super().__init__()
        assert kw % 2 == 1
        self.kh, self.kw = kh, kw
        self.weight = nn.Parameter(torch.empty(cout, cin, kh, kw))
        self.bias = nn.Parameter(torch.empty(cout))
        _init_conv(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Whole-tensor convolution, ``(B, Cin, H, W) -> (B, Cout, H, W)``."""
        pw = self.kw // 2
        return F.conv2d(F.pad(x, (pw, pw, self.kh - 1, 0)), self.weight, self.bias)

    def rows_needed(self, r: int) -> list[int]:
        """Input rows that output row ``r`` reads (negative rows are zeros)."""
        return [r - self.kh + 1 + i for i in range(self.kh)]

    def row(self, rows: torch.Tensor) -> torch.Tensor:
        """One output row from its input rows stacked as ``(B, Cin, kh, W)``."""
        pw = self.kw // 2
        return F.conv2d(F.pad(rows, (pw, pw, 0, 0)), self.weight, self.bias)[:, :, 0]


class DownsampleConv2d(DownShiftedConv2d):
    """Stride-2 version of :class:`DownShiftedConv2d` (2x3 kernel).

    Output row ``k`` reads input rows ``2k-1`` and ``2k``: after the one-row shift
    at the start of the stream this keeps every feature strictly above its row.
    """

    row_stride = 2

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(cin, cout, kh=2, kw=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Whole-tensor strided convolution, ``H, W -> ceil(H/2), ceil(W/2)``."""
        return F.conv2d(F.pad(x, (1, 1, 1, 0)), self.weight, self.bias, stride=2)

    def rows_needed(self, r: int) -> list[int]:
        """Input rows ``2r-1`` and ``2r``."""
        return [2 * r - 1, 2 * r]

    def row(self, rows: torch.Tensor) -> torch.Tensor:
        """One output row from input rows ``(B, Cin, 2, W)``."""
        return F.conv2d(F.pad(rows, (1, 1, 0, 0)), self.weight, self.bias, stride=(1, 2))[:, :, 0]


class UpsampleConvT2d(nn.Module):
    """2x2 stride-2 transposed convolution: output row ``r`` reads input row ``r // 2``."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cin, cout, 2, 2))
        self.bias = nn.Parameter(torch.empty(cout))
        _init_conv(self)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Whole-tensor upsampling, cropped to ``(height, width)``."""
        y = F.conv_transpose2d(x, self.weight, self.bias, stride=2)
        return y[:, :, :height, :width]

    def row(self, row: torch.Tensor, parity: int, width: int) -> torch.Tensor:
        """Output row ``2k + parity`` from input row ``k`` given as ``(B, Cin, W')``."""
        y = F.conv_transpose2d(row.unsqueeze(2), self.weight[:, :, parity : parity + 1], self.bias, stride=(1, 2))
        return y[:, :, 0, :width]


class Nin(nn.Module):
    """1x1 convolution (network in network) over the channel axis."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.lin = nn.Linear(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply to ``(B, C, ...)`` tensors of any trailing shape (4-D ones as a 1x1 convolution, faster)."""
        if x.dim() == 4:
            return F.conv2d(x, self.lin.weight[:, :, None, None], self.lin.bias)
        return torch.movedim(self.lin(torch.movedim(x, 1, -1)), -1, 1)


class RightShiftedConv1d(nn.Module):
    """Convolution along a row whose output at column ``c`` reads columns ``c-k+1 .. c``.

    Applied to ``(B, C, H, W)`` tensors with a ``1 x k`` kernel; with ``shift=True``
    the input is first shifted right by one column so the output at ``c`` reads
    ``c-k .. c-1`` only (used on the raw pixels of the current row).
    """

    def __init__(self, cin: int, cout: int, k: int = 2, shift: bool = False) -> None:
        super().__init__()
        self.k, self.shift = k, shift
        self.weight = nn.Parameter(torch.empty(cout, cin, 1, k))
        self.bias = nn.Parameter(torch.empty(cout))
        _init_conv(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Whole-tensor causal convolution along the width."""
        if self.shift:
            x = F.pad(x, (1, 0))[..., :-1]
        return F.conv2d(F.pad(x, (self.k - 1, 0)), self.weight, self.bias)

    def matrix(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Weights as a ``(k*Cin, Cout)`` matrix for a window ``[c-k+1 .. c]`` laid out
        as ``(oldest column first, channels inner)``, and the bias."""
        w = self.weight[:, :, 0, :]  # (cout, cin, k)
        return w.permute(2, 1, 0).reshape(-1, w.shape[0]).contiguous(), self.bias


def tanh_gate(c: torch.Tensor) -> torch.Tensor:
    """Gated activation ``tanh(a) * sigmoid(b)`` with ``(a, b)`` the two halves of ``c``'s axis 1 (Gated PixelCNN)."""
    a, b = c.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedResnet(nn.Module):
    """PixelCNN++ gated residual block: ``x + a * sigmoid(b)`` with ``(a, b) = conv(elu(conv(elu x)))``.

    ``conv1``/``conv2`` are causal layers of one kind (vertical or horizontal); an
    optional auxiliary input enters through a 1x1 projection after ``conv1``.
    """

    def __init__(self, conv1: nn.Module, conv2: "DownShiftedConv2d | RightShiftedConv1d", channels: int,
                 aux: int = 0, dropout: float = 0.0):
        super().__init__()
        self.conv1, self.conv2 = conv1, conv2
        self.aux = Nin(aux, channels) if aux else None
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        # A zero-initialised gate makes each block start as the identity.
        nn.init.zeros_(conv2.weight)
        if conv2.bias is not None:
            nn.init.zeros_(conv2.bias)

    def forward(self, x: torch.Tensor, a: torch.Tensor | None = None) -> torch.Tensor:
        """Whole-tensor block."""
        c = self.conv1(F.elu(x))
        if self.aux is not None and a is not None:
            c = c + self.aux(F.elu(a))
        c = self.conv2(self.dropout(F.elu(c)))
        u, g = c.chunk(2, dim=1)
        return x + u * torch.sigmoid(g)
