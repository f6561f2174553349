"""Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders").

Two stacks remove the PixelCNN's blind spot:

* **Vertical stack** ``v``: down-shifted ``2 x 3`` convolutions after a one-row
  shift, so its features at row ``r`` see every pixel of the rows above within
  its growing receptive field, and nothing of row ``r``. Each layer is
  ``v + tanh(a) * sigmoid(b)`` of ``(a, b) = conv(v)``. Written once against
  the row backends of :mod:`nlc.models.rowgraph`, it is evaluated a row at a
  time when coding.
* **Horizontal stack** ``h``: ``1 x 2`` causal convolutions along the current
  row (its input reads the three pixels to the left), each layer fed the
  vertical stack's pre-activation through a ``1 x 1`` link; gated activation,
  a ``1 x 1`` residual projection and a ``1 x 1`` skip connection per layer.
* **Head**: ``relu -> 1x1 -> relu -> 1x1`` on the summed skips, to the shared
  discretized logistic mixture, plus the shared causal-neighbourhood skip
  (:mod:`.neighbours`).

When coding, the vertical stack costs one row pass per row and the horizontal
stack one small matrix product per layer per pixel (:class:`GatedStepper`).
Every layer computes through the model's arithmetic (``self.arith``), so
:func:`~nlc.models.exact.make_exact` gives an exact twin (``gated-pixelcnn-exact``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import fixed
from ..threads import vertical_parts, vertical_worker_count
from . import mixture
from .exact import NUMPY_EXACT
from .exact_steps import gated_step
from .image_model import MixtureImageModel, RasterStepper, zero_
from .layers import DownShiftedConv2d, Nin, RightShiftedConv1d
from .neighbours import IN_CHANNELS, apply_skip, predictor_skip
from .rowgraph import FullOps, RowOps
from .vertical_kernel import CompiledRows, Program, TapeOps, row_tables


@dataclass(frozen=True)
class GatedPixelCNNConfig:
    """Hyper-parameters of :class:`GatedPixelCNN` (stored in the codec TOML)."""

    channels: int = 64
    layers: int = 8
    skip_channels: int = 64
    mixtures: int = 10
    dropout: float = 0.0


class GatedPixelCNN(MixtureImageModel):
    """The Gated PixelCNN likelihood model; see the module docstring."""

    exact_joint = (("head.lin", "skip"),)  # summed before rounding in exact arithmetic (:mod:`.exact`)
    exact_input_limits = {"skip": 2.0}  # the skip reads pixels and their differences

    def __init__(self, config: GatedPixelCNNConfig = GatedPixelCNNConfig()) -> None:
        super().__init__()
        self.config = config
        c, s, n = config.channels, config.skip_channels, config.layers
        self.v_in = DownShiftedConv2d(IN_CHANNELS, c)
        self.v_convs = nn.ModuleList(DownShiftedConv2d(c, 2 * c) for _ in range(n))
        self.h_in = RightShiftedConv1d(IN_CHANNELS, c, k=3, shift=True)
        self.link_in = Nin(c, c)
        self.links = nn.ModuleList(Nin(2 * c, 2 * c) for _ in range(n))
        self.h_convs = nn.ModuleList(RightShiftedConv1d(c, 2 * c, k=2) for _ in range(n))
        self.h_res = nn.ModuleList(zero_(Nin(c, c)) for _ in range(n))
        self.h_skips = nn.ModuleList(Nin(c, s) for _ in range(n))
        self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self.out = Nin(s, s)
        self.head = zero_(Nin(s, mixture.num_params(config.mixtures)))
        self.skip = predictor_skip(config.mixtures)

    def vertical(self, ops, x):
        """The vertical stack on an ``ops`` backend: its input features and each layer's pre-activation."""
        v = ops.down_shift(ops.conv(self.v_in, x))
        first, pres = v, []
        for i, conv in enumerate(self.v_convs):
            pre = ops.conv(conv, v)
            pres.append(pre)
            if i + 1 < len(self.v_convs):
                v = ops.add(v, ops.tanh_gate(pre))
        return first, pres

    def forward_x4(self, x4: torch.Tensor) -> torch.Tensor:
        """Mixture parameters for every pixel of ``(B, 4, H, W)`` input."""
        A = self.arith  # float, or exact for the twin from make_exact
        x4 = A.input(x4)
        v0, pres = self.vertical(FullOps(A), x4)
        h = A.add(A.lin(self.h_in(x4)), A.lin(self.link_in(v0)))
        skip: Any = 0.0  # a tensor from the first layer on
        for conv, link, res, sk, pre in zip(self.h_convs, self.links, self.h_res, self.h_skips, pres):
            g = self.dropout(A.tanh_gate(A.add(A.lin(conv(h)), A.lin(link(pre)))))
            skip = A.add(skip, A.lin(sk(g)))
            h = A.add(h, A.lin(res(g)))
        return A.lin(self.head(F.relu(A.lin(self.out(F.relu(skip))))) + apply_skip(self.skip, x4))

    def stepper(self, batch: int, height: int, width: int) -> "GatedStepper":
        """An incremental evaluator for coding ``batch`` tiles of ``height x width``."""
        return GatedStepper(self, batch, height, width)


def gated_program(model: GatedPixelCNN, width: int) -> Program:
    """``model``'s vertical stack for tiles ``width`` wide and the links the per-pixel steps read (the first
    layer's ``link_in`` of its input features, each layer's link of its pre-activation), recorded for the
    compiled rows (kept on the model, one per width)."""
    programs = model.__dict__.setdefault("_vertical_programs", {})
    program = programs.get(width)
    if program is None:
        ops = TapeOps()
        v0, pres = model.vertical(ops, ops.source(None, IN_CHANNELS, width))
        outputs = [ops.nin(model.link_in, v0)] + [ops.nin(link, pre) for link, pre in zip(model.links, pres)]
        program = programs[width] = Program.record(ops.nodes, [o.id for o in outputs])
    return program


class GatedStepper(RasterStepper):
    """Evaluates :class:`GatedPixelCNN` one pixel at a time in raster order (see :class:`RasterStepper`).

    The vertical stack and its links are computed once per row; each horizontal
    layer keeps its input at the previous column.
    """

    numpy_steps = True  # an exact model's per-pixel steps run in numpy on a CPU (``self.steps``)
    compiled = True  # and there as one compiled kernel (exact_steps.gated_step); False: numpy calls
    compiled_vertical = True  # and its vertical stack one compiled call per row (vertical_kernel); False: torch rows

    @torch.no_grad()
    def __init__(self, model: Any, batch: int, height: int, width: int) -> None:  # the model (its ModuleLists of blocks are untyped)
        super().__init__(model, batch, height, width)
        S = self.steps
        # (not ``kernel``: that names PixelCNN++'s compiled row decoder to the coding layer)
        self.compiled_step = self.compiled and S is NUMPY_EXACT
        self.gated_kernel = self.compiled_step  # the coding layer may decode a row per compiled call (kernel_row)
        self.rows: CompiledRows | None = None
        self.pool: ThreadPoolExecutor | None = None
        if self.compiled_step and self.compiled_vertical:  # (exact, on a CPU)
            # the stack and its links as PixelCNN++'s vertical stream runs (nlc.models.vertical_kernel): slices of
            # the tiles, one compiled call per row and slice, in turn or shared out to single-threaded workers
            parts = vertical_parts(batch, width)
            self.rows = CompiledRows(gated_program(model, width), batch, height, width, parts, self.xs, self.TOP,
                                     self.LEFT, row_tables(S))
            workers = min(len(parts), vertical_worker_count())
            self.pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
        else:
            ops = RowOps(batch, dtype=self.x.dtype, device=self.device, arith=self.arith)
            self.v0, self.pres = model.vertical(ops, self.row_source(ops))
        self.w_in, self.b_in = (S.array(t) for t in model.h_in.matrix())
        self.layers = [(tuple(S.array(t) for t in conv.matrix()), self.linear_weights(sk), self.linear_weights(res))
                       for conv, sk, res in zip(model.h_convs, model.h_skips, model.h_res)]
        self.out, self.head = self.linear_weights(model.out), self.linear_weights(model.head)
        self.zero = S.array(torch.zeros(batch, model.config.channels, dtype=self.x.dtype, device=self.device))
        if self.compiled_step:  # the weights laid out for exact_steps.gated_step: one output per row
            def stack(arrays: list) -> np.ndarray:
                return np.ascontiguousarray(np.stack(arrays))

            self.k_w_in = np.ascontiguousarray(self.w_in.T)
            self.k_layers = (stack([w.T for (w, _), _, _ in self.layers]), stack([b for (_, b), _, _ in self.layers]),
                             stack([sk[0] for _, sk, _ in self.layers]), stack([sk[1] for _, sk, _ in self.layers]),
                             stack([res[0] for _, _, res in self.layers]), stack([res[1] for _, _, res in self.layers]))
            self.k_w_left = np.ascontiguousarray(self.skip.w_left.T)
            self.k_luts = (*cast(Any, S).tanh.kernel_args, *cast(Any, S).sigmoid.kernel_args)

    @torch.no_grad()
    def start_row(self, r: int) -> None:
        """Compute the vertical stack's row ``r`` and its links."""
        super().start_row(r)
        if self.rows is not None:
            out = self.rows.row(r, self.pool)
            self.link_in, self.k_links = out[0, :, :, : self.model.config.channels], out[1:]
            self.links: list[np.ndarray] = []
            self.k_prev = np.zeros((len(self.layers), *self.zero.shape))
            return
        m, A, S = self.model, self.arith, self.steps
        self.link_in = S.array(A.lin(m.link_in(self.v0.row(r))).transpose(1, 2).contiguous())  # (B, W, C)
        links = [S.array(A.lin(link(pre.row(r))).transpose(1, 2).contiguous()) for link, pre in zip(m.links, self.pres)]
        self.prev = [self.zero] * len(self.layers)
        if self.compiled_step:  # one stacked copy only
            self.k_links, self.links = np.stack(links), []
            self.k_prev = np.zeros((len(self.layers), *self.zero.shape))
        else:
            self.links = links

    def kernel_row(self) -> tuple:
        """The current row's arguments of :func:`~nlc.models.exact_steps.gated_step` but the column (the
        buffer's left margin in its place), for a compiled loop over the row's pixels; only where
        :attr:`gated_kernel` is set (an exact model on a CPU), after :meth:`start_row`."""
        neighbours = self.skip
        return (self.xs, self.r + self.TOP, self.LEFT, self.k_w_in, self.b_in, self.link_in, *self.k_layers[:2],
                self.k_links, self.k_prev, *self.k_layers[2:], *self.out, *self.head, neighbours.above, neighbours.nw,
                self.k_w_left, *self.k_luts, 2.0**fixed.GRID_BITS, fixed.LIMIT)

    def release(self) -> None:
        """Drop the row caches (their closures refer back to this stepper, a reference cycle)."""
        if self.pool is not None:
            self.pool.shutdown()
        if self.rows is not None:
            self.rows.release()
        self.v0 = self.pres = self.links = self.skip = self.pool = None  # type: ignore[assignment]  # the caches go

    @torch.no_grad()
    def params(self, c: int) -> torch.Tensor | np.ndarray:
        """Mixture parameters ``(B, 10*M)`` of pixel ``(r, c)`` (a numpy array where ``self.steps`` is numpy's)."""
        S = self.steps
        cl = c + self.LEFT
        if self.compiled_step:
            xs, row, left, *rest = self.kernel_row()
            step: Any = gated_step  # a compiled kernel
            return step(xs, row, c + left, c, *rest)
        window = self.xs[:, :, self.r + self.TOP, cl - 3 : cl].swapaxes(1, 2).reshape(self.batch, -1)
        h = S.add(S.lin(S.mm(self.b_in, window, self.w_in)), self.link_in[:, c])
        skip = 0.0
        for i, ((w, b), sk, res) in enumerate(self.layers):
            g = S.tanh_gate(S.add(S.lin(S.mm(b, S.cat([self.prev[i], h]), w)), self.links[i][:, c]))
            self.prev[i] = h
            skip = S.add(skip, S.lin(S.linear(g, *sk)))
            h = S.add(h, S.lin(S.linear(g, *res)))
        return S.lin(self.skip.params(c, S.linear(S.relu(S.lin(S.linear(S.relu(skip), *self.out))), *self.head)))
