"""PixelCNN++ with a row-cached vertical stream and a per-pixel horizontal stream.

Architecture (Salimans et al. 2017, arranged so decoding is cheap):

* **Vertical stream** ``u`` (``v_channels`` wide, by default ``channels``): a
  U-net of gated resnets over ``levels`` resolutions (down-sampling pass, then
  up-sampling pass with shortcut connections from the first pass), built from
  down-shifted convolutions after a one-row shift, so the features of row ``r``
  depend on image rows ``< r`` only. It is evaluated one row at a time with
  :class:`~nlc.models.rowgraph.RowOps` when coding.
* **Horizontal stream** ``h``: at full resolution, gated resnets with ``1 x 2``
  causal kernels over the current row, conditioned on ``u`` at the same position;
  its input reads the three pixels to the left. When coding it runs one pixel
  at a time, caching one column per layer.
* **Skip**: a linear map from the causal neighbourhood (W, WW, N, NN, NW, NE
  and their absolute differences) straight to the mixture parameters, started
  as the classical predictor ``0.75 W + 0.75 N - 0.5 NW``. It makes the model
  useful from the first step; the streams learn what it misses.
* **Head**: a mixture of ``mixtures`` discretized logistics with the linear
  dependence of G on R and of B on R, G (:mod:`nlc.models.mixture`).

The input has a fourth channel of ones so the network sees where the image
(or tile) ends; outside it everything is zero.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from .. import fixed
from ..threads import vertical_parts, vertical_worker_count
from . import mixture
from .exact import NUMPY_EXACT
from .exact_steps import pixel_step
from .image_model import MixtureImageModel, RasterStepper, zero_
from .layers import (
    DownsampleConv2d,
    DownShiftedConv2d,
    GatedResnet,
    Nin,
    RightShiftedConv1d,
    UpsampleConvT2d,
)
from .neighbours import IN_CHANNELS, apply_skip, predictor_skip
from .rowgraph import FullOps, RowOps
from .vertical_kernel import CompiledRows, Program, TapeOps, row_tables


@dataclass(frozen=True)
class PixelCNNPPConfig:
    """Hyper-parameters of :class:`PixelCNNPP` (stored in the codec TOML)."""

    channels: int = 32
    levels: int = 3
    nr_resnet: int = 2
    h_layers: int = 3
    mixtures: int = 10
    dropout: float = 0.0
    v_channels: int = 0  # width of the vertical stream; 0: ``channels``

    @property
    def vertical_width(self) -> int:
        """Channels of the vertical stream (``v_channels``, or ``channels`` when it is 0)."""
        return self.v_channels or self.channels


def _vresnet(c: int, aux: int, dropout: float) -> GatedResnet:
    return GatedResnet(DownShiftedConv2d(c, c), DownShiftedConv2d(c, 2 * c), c, aux=aux, dropout=dropout)


def _hresnet(c: int, cv: int, dropout: float) -> GatedResnet:
    return GatedResnet(RightShiftedConv1d(c, c), RightShiftedConv1d(c, 2 * c), c, aux=cv, dropout=dropout)


def _resnet(ops, blk: GatedResnet, x, a=None):
    """A gated resnet written against an ``ops`` backend (see :mod:`nlc.models.rowgraph`)."""
    c = ops.conv(blk.conv1, ops.elu(x))
    if a is not None:
        c = ops.add(c, ops.nin(blk.aux, ops.elu(a)))
    c = ops.conv(blk.conv2, ops.dropout(blk.dropout, ops.elu(c)))
    return ops.gate(x, c)


class PixelCNNPP(MixtureImageModel):
    """The PixelCNN++ likelihood model; see the module docstring."""

    exact_joint = (("head.lin", "skip"),)  # summed before rounding in exact arithmetic (:mod:`.exact`)
    exact_input_limits = {"skip": 2.0}  # the skip reads pixels and their differences

    def __init__(self, config: PixelCNNPPConfig = PixelCNNPPConfig()) -> None:
        super().__init__()
        self.config = config
        c, cv, d = config.channels, config.vertical_width, config.dropout
        self.u_in = DownShiftedConv2d(IN_CHANNELS, cv)
        self.up_blocks = nn.ModuleList(
            nn.ModuleList(_vresnet(cv, 0, d) for _ in range(config.nr_resnet)) for _ in range(config.levels)
        )
        self.downsample = nn.ModuleList(DownsampleConv2d(cv, cv) for _ in range(config.levels - 1))
        self.down_blocks = nn.ModuleList(
            nn.ModuleList(_vresnet(cv, cv, d) for _ in range(config.nr_resnet + 1)) for _ in range(config.levels)
        )
        self.upsample = nn.ModuleList(UpsampleConvT2d(cv, cv) for _ in range(config.levels - 1))
        self.h_in = RightShiftedConv1d(IN_CHANNELS, c, k=3, shift=True)
        self.h_u = Nin(cv, c)
        self.h_blocks = nn.ModuleList(_hresnet(c, cv, d) for _ in range(config.h_layers))
        self.head = Nin(c, mixture.num_params(config.mixtures))
        self.skip = predictor_skip(config.mixtures)
        zero_(self.head)  # the streams start silent: the skip's classical predictor speaks first

    # -- topology ------------------------------------------------------------
    def vertical(self, ops, x):
        """The vertical U-net on an ``ops`` backend; features at row r see rows < r."""
        u = ops.down_shift(ops.conv(self.u_in, x))
        skips = [u]
        levels = self.config.levels
        for lvl in range(levels):
            for blk in self.up_blocks[lvl]:
                u = _resnet(ops, blk, u)
                skips.append(u)
            if lvl < levels - 1:
                u = ops.conv(self.downsample[lvl], u)
                skips.append(u)
        for lvl in reversed(range(levels)):
            for blk in self.down_blocks[lvl]:
                u = _resnet(ops, blk, u, skips.pop())
            if lvl > 0:
                u = ops.up(self.upsample[lvl - 1], u, skips[-1])
        return u

    # -- parallel evaluation ---------------------------------------------------
    def forward_x4(self, x4: torch.Tensor) -> torch.Tensor:
        """Like :meth:`forward` on input that already has the ones channel (zero outside the image).

        Computed in the model's arithmetic (``self.arith``: float, or exact
        for the twin from :func:`~nlc.models.exact.make_exact`).
        """
        A = self.arith
        ops = FullOps(A)
        x4 = A.input(x4)
        u = self.vertical(ops, x4)
        eu = A.elu(u)
        h = A.add(A.lin(self.h_in(x4)), A.lin(self.h_u(eu)))
        for blk in self.h_blocks:
            h = _resnet(ops, cast(GatedResnet, blk), h, u)
        return A.lin(self.head(A.elu(h)) + apply_skip(self.skip, x4))

    def stepper(self, batch: int, height: int, width: int) -> "PixelStepper":
        """An incremental evaluator for coding ``batch`` tiles of ``height x width``."""
        return PixelStepper(self, batch, height, width)


def vertical_program(model: PixelCNNPP, width: int) -> Program:
    """``model``'s vertical stream for tiles ``width`` wide, and the projections the per-pixel steps read
    (``h_u`` and each horizontal block's ``aux`` of its ELU), recorded for the compiled rows (kept on the
    model, one per width)."""
    programs = model.__dict__.setdefault("_vertical_programs", {})
    program = programs.get(width)
    if program is None:
        ops = TapeOps()
        u = model.vertical(ops, ops.source(None, IN_CHANNELS, width))
        eu = ops.elu(u)
        outputs = [ops.nin(model.h_u, eu)] + [ops.nin(blk.aux, eu) for blk in model.h_blocks]
        program = programs[width] = Program.record(ops.nodes, [o.id for o in outputs])
    return program


class PixelStepper(RasterStepper):
    """Evaluates :class:`PixelCNNPP` one pixel at a time in raster order (see :class:`RasterStepper`).

    The vertical stream runs a row at a time: for an exact model on a CPU as one
    compiled call per row (:mod:`~nlc.models.vertical_kernel`), otherwise in the
    model's arithmetic on torch tensors; the per-pixel horizontal stream in
    ``self.steps``, which for an exact model on a CPU is a compiled kernel
    (:func:`~nlc.models.exact_steps.pixel_step`) or numpy, the same numbers.
    """

    numpy_steps = True
    compiled = True  # an exact model's steps on a CPU run as one compiled kernel (exact_steps); False: numpy calls
    compiled_vertical = True  # and its vertical stream one compiled call per row (vertical_kernel); False: torch rows

    @torch.no_grad()
    def __init__(self, model: Any, batch: int, height: int, width: int) -> None:  # the model (its ModuleLists of blocks are untyped)
        super().__init__(model, batch, height, width)
        S = self.steps
        self.kernel = self.compiled and S is NUMPY_EXACT
        # An exact model's vertical stream runs as independent graphs over slices of the tiles (the same
        # numbers: every tile's arithmetic is exact and its own): slices small enough to keep a row's work in
        # the cache, shared out to single-threaded workers (nlc.threads.vertical_worker_count), or in turn.
        self.parts = vertical_parts(batch, width) if getattr(self.arith, "exact", False) and self.device.type == "cpu" \
            else [slice(0, batch)]
        self.u_parts = []
        self.program = vertical_program(model, width) if self.kernel and self.compiled_vertical else None
        if self.program is not None:  # one compiled call per row and slice (nlc.models.vertical_kernel)
            self.rows = CompiledRows(self.program, batch, height, width, self.parts, self.xs, self.TOP, self.LEFT,
                                     row_tables(S))
        else:
            for part in self.parts:
                ops = RowOps(part.stop - part.start, dtype=self.x.dtype, device=self.device, arith=self.arith)
                self.u_parts.append(model.vertical(ops, self.row_source(ops, part)))
        workers = min(len(self.parts), vertical_worker_count())
        self.pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
        self.w_in, self.b_in = (S.array(t) for t in model.h_in.matrix())
        self.blocks = [tuple(tuple(S.array(t) for t in conv.matrix()) for conv in (b.conv1, b.conv2))
                       for b in model.h_blocks]
        self.head = self.linear_weights(model.head)
        self.zero = S.array(torch.zeros(batch, model.config.channels, dtype=self.x.dtype, device=self.device))
        if self.kernel:  # the step's weights laid out for exact_steps.pixel_step: one output per row
            self.k_w1, self.k_b1, self.k_w2, self.k_b2 = (
                np.ascontiguousarray(np.stack([blk[i][0].T if j == 0 else blk[i][1] for blk in self.blocks]))
                for i in (0, 1) for j in (0, 1))
            self.k_head_wt = np.ascontiguousarray(self.head[0])
            self.k_w_in = np.ascontiguousarray(self.w_in.T)
            self.k_w_left = np.ascontiguousarray(self.skip.w_left.T)
            self.k_luts = (*cast(Any, S).elu_neg.kernel_args, *cast(Any, S).sigmoid.kernel_args)  # numpy exact steps

    @torch.no_grad()
    def start_row(self, r: int) -> None:
        """Compute everything of row ``r`` that depends on the rows above only."""
        super().start_row(r)
        if self.program is not None:
            out = self.rows.row(r, self.pool)
            self.hu, self.k_aux = out[0], out[1:]
            self.k_prev = np.zeros((2, len(self.blocks), *self.zero.shape))
            return
        m = self.model
        A, S = self.arith, self.steps
        if self.pool is None:
            u = torch.cat([g.row(r) for g in self.u_parts])
        else:
            u = torch.cat(list(self.pool.map(lambda g: g.row(r), self.u_parts)))
        eu = A.elu(u)  # (B, C, W)
        self.hu = S.array(A.lin(m.h_u(eu)).transpose(1, 2).contiguous())  # (B, W, C)
        self.aux = [S.array(A.lin(blk.aux(eu)).transpose(1, 2).contiguous()) for blk in m.h_blocks]
        self.prev = [[self.zero, self.zero] for _ in m.h_blocks]
        if self.kernel:
            self.k_aux = np.stack(self.aux)
            self.k_prev = np.zeros((2, len(self.blocks), *self.zero.shape))

    def kernel_row(self) -> tuple:
        """The current row's arguments of :func:`~nlc.models.exact_steps.pixel_step` but the column (the
        buffer's left margin in its place), for a compiled loop over the row's pixels; only where
        :attr:`kernel` is set (an exact model on a CPU), after :meth:`start_row`."""
        args = self._kernel_args(self.LEFT)
        return args[:3] + args[4:]

    def _kernel_args(self, cl: int, c: int = 0) -> tuple:
        """:func:`~nlc.models.exact_steps.pixel_step`'s arguments for buffer column ``cl`` and column ``c``."""
        sk = self.skip
        return (self.xs, self.r + self.TOP, cl, c, self.k_w_in, self.b_in, self.hu, self.k_w1, self.k_b1, self.k_w2,
                self.k_b2, self.k_aux, self.k_prev[0], self.k_prev[1], self.k_head_wt, self.head[1], sk.above, sk.nw,
                self.k_w_left, *self.k_luts, 2.0**fixed.GRID_BITS, fixed.LIMIT)

    def release(self) -> None:
        """Drop the row caches now (their closures refer back to this stepper, a reference cycle)."""
        if self.pool is not None:
            self.pool.shutdown()
        self.u_parts = self.skip = self.aux = self.hu = self.prev = self.pool = None  # type: ignore[assignment]  # the caches go
        if self.program is not None:
            self.rows.release()  # the compiled stream's buffers

    @torch.no_grad()
    def params(self, c: int) -> torch.Tensor | np.ndarray:
        """Mixture parameters ``(B, 10*M)`` of pixel ``(r, c)`` (a numpy array where ``self.steps`` is numpy's)."""
        S = self.steps
        if self.kernel:
            step: Any = pixel_step  # a compiled kernel
            return step(*self._kernel_args(c + self.LEFT, c))
        row = self.xs[:, :, self.r + self.TOP]
        cl = c + self.LEFT
        window = row[:, :, cl - 3 : cl].swapaxes(1, 2).reshape(self.batch, -1)
        h = S.add(S.lin(S.mm(self.b_in, window, self.w_in)), self.hu[:, c])
        for i, ((w1, b1), (w2, b2)) in enumerate(self.blocks):
            prev = self.prev[i]
            e = S.elu(h)
            c1 = S.elu(S.add(S.lin(S.mm(b1, S.cat([prev[0], e]), w1)), self.aux[i][:, c]))
            c2 = S.lin(S.mm(b2, S.cat([prev[1], c1]), w2))
            half = c2.shape[1] // 2
            h = S.gate(h, c2[:, :half], c2[:, half:])
            prev[0], prev[1] = e, c1
        return S.lin(self.skip.params(c, S.linear(S.elu(h), *self.head)))


def widen_vertical(model: PixelCNNPP, width: int, seed: int = 0) -> PixelCNNPP:
    """The same function as ``model`` with its vertical stream ``width`` channels wide.

    Every weight of ``model`` is kept; the added channels get a fresh
    initialisation, and every weight from an added channel into an old one is
    zero, so the old channels (and the mixture parameters) are unchanged until
    training moves those zeros. The gate blocks' ``[a | b]`` halves widen half
    by half. ``seed`` fixes the added channels' initialisation. A fine-tune can
    so grow the part of the network that coding evaluates once per row, not
    once per pixel.
    """
    old_cfg = model.config
    c = old_cfg.vertical_width
    if width < c:
        raise ValueError(f"width {width} is below the vertical stream's {c} channels")
    with torch.random.fork_rng():  # the caller's random state is left as it was
        torch.manual_seed(seed)
        wide = PixelCNNPP(PixelCNNPPConfig(**{**asdict(old_cfg), "v_channels": width}))
    old = model.state_dict()
    state = {}
    for name, fresh in wide.state_dict().items():
        kept = old[name]
        index = []
        for size, old_size in zip(fresh.shape, kept.shape):
            if size == old_size:
                index.append(torch.arange(size))
            else:
                k = old_size // c  # a dimension of k blocks of the stream's width
                index.append(torch.cat([j * width + torch.arange(c) for j in range(k)]))
        out_dim = 1 if name.startswith("upsample.") and name.endswith(".weight") else 0
        added = torch.ones(fresh.shape[out_dim], dtype=torch.bool)
        added[index[out_dim]] = False
        added = added.nonzero()[:, 0]  # the new output channels keep their fresh weights
        w = torch.zeros_like(fresh).index_copy_(out_dim, added, fresh.index_select(out_dim, added))
        w[torch.meshgrid(*index, indexing="ij")] = kept
        state[name] = w
    wide.load_state_dict(state)
    return wide
