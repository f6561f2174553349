"""Two interchangeable backends for writing a vertical (row-causal) network once.

A network's topology is written as a function of an ``ops`` object. With
:class:`FullOps` it runs on whole ``(B, C, H, W)`` tensors (training, likelihood
in one pass). With :class:`RowOps` each call returns a :class:`RowNode`, and
``node.row(r)`` computes output row ``r`` on demand from the input rows it needs,
keeping only the last few rows of every node. Asking for the rows of the final
node in order therefore evaluates every layer once per row, which is what makes
autoregressive decoding cost about as much as encoding.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .exact import FLOAT, FloatArithmetic
from .layers import DownShiftedConv2d, Nin, UpsampleConvT2d

_KEEP_ROWS = 1  # consumers read rows r-1 and r of their inputs (at their own scale)


class FullOps:
    """Whole-tensor backend: every op maps ``(B, C, H, W)`` tensors.

    ``arith`` rounds what the layers compute (:mod:`nlc.models.exact`); the
    default is plain float arithmetic.
    """

    def __init__(self, arith: FloatArithmetic = FLOAT) -> None:
        self.a = arith

    def conv(self, m: DownShiftedConv2d, x: torch.Tensor) -> torch.Tensor:
        """Causal (possibly strided) convolution."""
        return self.a.lin(m(x))

    def up(self, m: UpsampleConvT2d, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Upsample ``x`` to the spatial size of ``like``."""
        return self.a.lin(m(x, like.shape[2], like.shape[3]))

    def nin(self, m: Nin, x: torch.Tensor) -> torch.Tensor:
        """1x1 projection."""
        return self.a.lin(m(x))

    def elu(self, x: torch.Tensor) -> torch.Tensor:
        """ELU."""
        return self.a.elu(x)

    def add(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Sum."""
        return self.a.add(x, y)

    def gate(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Gated residual ``x + a * sigmoid(b)`` with ``(a, b) = c``."""
        a, b = c.chunk(2, dim=1)
        return self.a.gate(x, a, b)

    def tanh_gate(self, c: torch.Tensor) -> torch.Tensor:
        """Gated activation :func:`~nlc.models.layers.tanh_gate`."""
        return self.a.tanh_gate(c)

    def dropout(self, m: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Dropout module (identity in eval mode)."""
        return m(x)

    def down_shift(self, x: torch.Tensor) -> torch.Tensor:
        """Shift down one row so that row ``r`` holds what was row ``r-1``."""
        return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


class RowNode:
    """A lazily evaluated feature map: ``row(r)`` gives ``(B, C, W)`` for row ``r``."""

    __slots__ = ("fn", "zeros", "cache")

    def __init__(self, fn: Callable[[int], torch.Tensor], zeros: torch.Tensor) -> None:
        self.fn = fn
        self.zeros = zeros
        self.cache: dict[int, torch.Tensor] = {}

    @property
    def channels(self) -> int:
        """Number of channels."""
        return self.zeros.shape[1]

    @property
    def width(self) -> int:
        """Width of a row."""
        return self.zeros.shape[2]

    def row(self, r: int) -> torch.Tensor:
        """Output row ``r``; rows above the image (``r < 0``) are zeros."""
        if r < 0:
            return self.zeros
        t = self.cache.get(r)
        if t is None:
            t = self.fn(r)
            self.cache[r] = t
            for k in [k for k in self.cache if k < r - _KEEP_ROWS]:
                del self.cache[k]
        return t


class RowOps:
    """Row-at-a-time backend; ``batch``, dtype and device fix the shape and place of zero rows,
    ``arith`` rounds as :class:`FullOps` does."""

    def __init__(self, batch: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                 arith: FloatArithmetic = FLOAT) -> None:
        self.batch, self.dtype, self.device, self.a = batch, dtype, device, arith

    def _zeros(self, channels: int, width: int) -> torch.Tensor:
        return torch.zeros(self.batch, channels, width, dtype=self.dtype, device=self.device)

    def source(self, fn: Callable[[int], torch.Tensor], channels: int, width: int) -> RowNode:
        """A node whose rows come from ``fn`` (the image being coded)."""
        return RowNode(fn, self._zeros(channels, width))

    def conv(self, m: DownShiftedConv2d, x: RowNode) -> RowNode:
        """Causal convolution; strided layers halve the width (rounding up)."""
        width = x.width if m.row_stride == 1 else (x.width + 1) // 2

        def fn(r: int) -> torch.Tensor:
            return self.a.lin(m.row(torch.stack([x.row(i) for i in m.rows_needed(r)], dim=2)))

        return RowNode(fn, self._zeros(m.weight.shape[0], width))

    def up(self, m: UpsampleConvT2d, x: RowNode, like: RowNode) -> RowNode:
        """Upsample to ``like``'s width; output row ``r`` reads input row ``r // 2``."""
        width = like.width
        return RowNode(lambda r: self.a.lin(m.row(x.row(r // 2), r % 2, width)),
                       self._zeros(m.weight.shape[1], width))

    def nin(self, m: Nin, x: RowNode) -> RowNode:
        """1x1 projection."""
        return RowNode(lambda r: self.a.lin(m(x.row(r))), self._zeros(m.lin.out_features, x.width))

    def elu(self, x: RowNode) -> RowNode:
        """ELU."""
        return RowNode(lambda r: self.a.elu(x.row(r)), x.zeros)

    def add(self, x: RowNode, y: RowNode) -> RowNode:
        """Sum."""
        return RowNode(lambda r: self.a.add(x.row(r), y.row(r)), x.zeros)

    def gate(self, x: RowNode, c: RowNode) -> RowNode:
        """Gated residual."""

        def fn(r: int) -> torch.Tensor:
            a, b = c.row(r).chunk(2, dim=1)
            return self.a.gate(x.row(r), a, b)

        return RowNode(fn, x.zeros)

    def tanh_gate(self, c: RowNode) -> RowNode:
        """Gated activation :func:`~nlc.models.layers.tanh_gate`."""
        return RowNode(lambda r: self.a.tanh_gate(c.row(r)), self._zeros(c.channels // 2, c.width))

    def dropout(self, m: torch.nn.Module, x: RowNode) -> RowNode:
        """Dropout is off when coding."""
        return x

    def down_shift(self, x: RowNode) -> RowNode:
        """Row ``r`` is the input's row ``r-1``."""
        return RowNode(lambda r: x.row(r - 1), x.zeros)
