"""PixelSNAIL (Chen et al. 2017): causal convolutions interleaved with causal self-attention.

* A ``first_kernel`` mask-A convolution reads the pixels before the current one.
* ``blocks`` blocks, each ``res_layers`` gated residual layers
  ``h + a * sigmoid(b)`` with ``(a, b) = W elu(maskB_3x3(elu h))`` followed by a
  causal self-attention layer (:mod:`.attention`: ``heads`` heads with keys and
  values of ``key_channels``) added to the stream. The convolutions alone would keep
  the PixelCNN's blind spot; attention over every earlier position removes it
  and reaches the whole tile.
* Head: ``elu -> 1x1`` to the shared discretized logistic mixture, plus the
  shared causal-neighbourhood skip (:mod:`.neighbours`).

Coding evaluates every layer at one position per step (:class:`SnailStepper`):
the convolutions read cached channel-last maps, attention a key/value cache.
The model trains on crops, so its codec codes tiles of the crop size.

Every layer computes through the model's arithmetic (``self.arith``), so
:func:`~nlc.models.exact.make_exact` gives an exact twin (the codec
``pixelsnail-exact``), whose attention is :func:`~nlc.models.attention.exact_attend`.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from .. import fixed
from ..threads import vertical_worker_count
from . import mixture
from .attention import QKV_LIMIT, AttentionCache, CausalAttention
from .blas import dgemm_address
from .exact import FLOAT, NUMPY_EXACT, FloatArithmetic
from .image_model import MixtureImageModel, zero_
from .layers import Nin
from .masked import MaskedConv2d, MaskedStackStepper, window3
from .neighbours import IN_CHANNELS, apply_skip, predictor_skip
from .snail_steps import cache_shape, snail_step


@dataclass(frozen=True)
class PixelSNAILConfig:
    """Hyper-parameters of :class:`PixelSNAIL` (stored in the codec TOML)."""

    channels: int = 48
    blocks: int = 2
    res_layers: int = 3
    first_kernel: int = 5
    key_channels: int = 16
    heads: int = 2
    mixtures: int = 10
    dropout: float = 0.0


class GatedMaskedLayer(nn.Module):
    """``h + a * sigmoid(b)`` with ``(a, b) = gate(dropout(elu(maskB_3x3(elu h))))``; the gate starts at zero."""

    def __init__(self, channels: int, dropout: float) -> None:
        super().__init__()
        self.conv = MaskedConv2d(channels, channels, 3, "B")
        self.gate = zero_(Nin(channels, 2 * channels))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, h: torch.Tensor, arith: FloatArithmetic = FLOAT) -> torch.Tensor:
        """Whole-tensor layer, in the arithmetic ``arith``."""
        A = arith
        a, b = A.lin(self.gate(self.dropout(A.elu(A.lin(self.conv(A.elu(h))))))).chunk(2, dim=1)
        return A.gate(h, a, b)


class PixelSNAIL(MixtureImageModel):
    """The PixelSNAIL likelihood model; see the module docstring."""

    exact_joint = (("head.lin", "skip"),)  # summed before rounding in exact arithmetic (:mod:`.exact`)
    exact_input_limits = {"skip": 2.0}  # the skip reads pixels and their differences

    def __init__(self, config: PixelSNAILConfig = PixelSNAILConfig()) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        self.conv_in = MaskedConv2d(IN_CHANNELS, c, config.first_kernel, "A")
        self.layers = nn.ModuleList(
            nn.ModuleList(GatedMaskedLayer(c, config.dropout) for _ in range(config.res_layers))
            for _ in range(config.blocks))
        self.attention = nn.ModuleList(
            CausalAttention(c, config.key_channels, config.heads) for _ in range(config.blocks))
        self.head = zero_(Nin(c, mixture.num_params(config.mixtures)))
        self.skip = predictor_skip(config.mixtures)

    def forward_x4(self, x4: torch.Tensor) -> torch.Tensor:
        """Mixture parameters for every pixel of ``(B, 4, H, W)`` input, in the model's arithmetic
        (``self.arith``: float, or exact for the twin from :func:`~nlc.models.exact.make_exact`)."""
        A = self.arith
        x4 = A.input(x4)
        h = A.lin(self.conv_in(x4))
        for layers, attn in zip(self.layers, self.attention):
            for layer in cast(nn.ModuleList, layers):
                h = layer(h, A)
            h = A.add(h, attn(A.elu(h), A))
        return A.lin(self.head(A.elu(h)) + apply_skip(self.skip, x4))

    def stepper(self, batch: int, height: int, width: int) -> "SnailStepper":
        """An incremental evaluator for coding ``batch`` tiles of ``height x width``."""
        return SnailStepper(self, batch, height, width)


class SnailStepper(MaskedStackStepper):
    """Evaluates :class:`PixelSNAIL` one pixel at a time in raster order (see :class:`MaskedStackStepper`).

    Each attention layer keeps the keys and values of the positions so far. An exact model on a CPU
    computes each step in one compiled call (:func:`~nlc.models.snail_steps.snail_step`, the same
    numbers), on slices of the tiles shared out to threads; the coding layer then decodes each step's
    column in one compiled call (:attr:`snail_kernel`).
    """

    compiled = True  # an exact model's steps on a CPU as one compiled kernel (snail_steps.snail_step); False: torch

    @property
    def numpy_steps(self) -> bool:  # type: ignore[override]
        """Whether the steps (and the skip's) run in numpy arrays on a CPU: where they are compiled."""
        return self.compiled

    @torch.no_grad()
    def __init__(self, model: Any, batch: int, height: int, width: int) -> None:  # the model (its ModuleLists of blocks are untyped)
        super().__init__(model, batch, height, width, model.config.first_kernel // 2)
        self.snail_kernel = self.compiled and self.steps is NUMPY_EXACT
        if self.snail_kernel:
            self._compile(model, batch, height * width)
            return
        c = model.config.channels
        self.w_in, self.b_in = model.conv_in.matrix()
        self.layers = [[(layer.conv.matrix(), layer.gate.lin.weight.t().contiguous(), layer.gate.lin.bias,
                         self.new_map(c)) for layer in layers] for layers in model.layers]
        self.caches = [AttentionCache(a, batch, height * width, self.device, self.arith, self.x.dtype)
                       for a in model.attention]

    def _compile(self, model: Any, batch: int, positions: int) -> None:
        """The weights laid out for :func:`~nlc.models.snail_steps.snail_step` (one output per row), and per
        slice of the tiles its maps and its key/value caches: float32, chunk-major (the keys and values
        are multiples of ``2^-16`` below ``QKV_LIMIT`` = 2^7, exact in float32's 24 bits; the decoder reads
        the whole cache at every step, so its size is the step's memory traffic)."""
        def rows(t: torch.Tensor) -> np.ndarray:
            return np.ascontiguousarray(t.detach().numpy())

        layers = [layer for block in model.layers for layer in block]
        attention = list(model.attention)
        c, keys, heads = model.config.channels, model.config.key_channels, model.config.heads
        w_in, b_in = model.conv_in.matrix()
        self.k_in = (model.config.first_kernel, rows(w_in.t()), rows(b_in))
        self.k_layers = (np.stack([rows(lay.conv.matrix()[0].t()) for lay in layers]),
                         np.stack([rows(lay.conv.bias) for lay in layers]),
                         np.stack([rows(lay.gate.lin.weight) for lay in layers]),
                         np.stack([rows(lay.gate.lin.bias) for lay in layers]))
        self.k_attention = (np.stack([rows(a.qkv.weight) for a in attention]),
                            np.stack([rows(a.qkv.bias) for a in attention]),
                            np.stack([rows(a.out.weight) for a in attention]),
                            np.stack([rows(a.out.bias) for a in attention]))
        self.k_head = (rows(model.head.lin.weight), rows(model.head.lin.bias))
        self.k_w_left = np.ascontiguousarray(self.skip.w_left.T)
        S = cast(Any, self.steps)
        self.k_luts = (*S.elu_neg.kernel_args, *S.sigmoid.kernel_args, *fixed.weight_lut().kernel_args,
                       1.0 / math.sqrt(keys), QKV_LIMIT, 2.0**fixed.GRID_BITS, fixed.LIMIT)
        workers = min(vertical_worker_count(), batch)
        self.parts = [slice(round(i * batch / (2 * workers)), round((i + 1) * batch / (2 * workers)))
                      for i in range(2 * workers)] if workers > 1 and batch >= 4 * workers else [slice(0, batch)]
        def state(n: int) -> tuple[np.ndarray, ...]:  # maps, keys, values and the scores' scratch of n tiles
            cache = cache_shape(len(attention), n, heads, keys, positions)
            return (np.zeros((len(layers), n, 2, self.width + 2, c)), np.zeros(cache, np.float32),
                    np.zeros(cache, np.float32), np.empty((n, heads, cache[1] * cache[-1])))

        self.k_state = [state(p.stop - p.start) for p in self.parts]
        self.pool = ThreadPoolExecutor(max_workers=workers) if len(self.parts) > 1 else None
        self.k_params = np.empty((batch, self.k_head[1].shape[0]))

    @torch.no_grad()
    def start_row(self, r: int) -> None:
        """Start row ``r``: the maps' current row becomes the row above."""
        super().start_row(r)
        if self.snail_kernel and r > 0:
            for maps, *_ in self.k_state:
                maps[:, :, 0] = maps[:, :, 1]  # the stale row 1 is overwritten before it is read

    def release(self) -> None:
        """Drop the caches (and end the threads)."""
        pool = getattr(self, "pool", None)
        if pool is not None:
            pool.shutdown()
        self.maps = self.layers = self.caches = self.skip = self.pool = None  # type: ignore[assignment]  # the caches go
        self.k_state = []

    def _step(self, i: int, c: int) -> None:
        """:func:`~nlc.models.snail_steps.snail_step` at column ``c`` of the current row for the tiles of slice
        ``i``, into :attr:`k_params`."""
        part, (maps, keys, values, scores) = self.parts[i], self.k_state[i]
        k, w_in, b_in = self.k_in
        neighbours = self.skip
        step: Any = snail_step  # a compiled kernel
        self.k_params[part] = step(self.xs[part], self.r + self.TOP, c + self.LEFT, c, self.r * self.width + c, k,
                                   w_in, b_in, *self.k_layers, maps, *self.k_attention, keys, values, scores,
                                   *self.k_head, neighbours.above[part], neighbours.nw[part], self.k_w_left,
                                   *self.k_luts, dgemm_address())

    @torch.no_grad()
    def params(self, c: int) -> torch.Tensor | np.ndarray:
        """Mixture parameters ``(B, 10*M)`` of pixel ``(r, c)`` (a numpy array from the compiled step, the
        slices of the tiles shared out to the threads: the array is reused at the next step)."""
        if self.snail_kernel:
            if self.pool is None:
                for i in range(len(self.parts)):
                    self._step(i, c)
            else:
                list(self.pool.map(self._step, range(len(self.parts)), [c] * len(self.parts)))
            return self.k_params
        r, A = self.r, self.arith
        h = A.lin(torch.addmm(self.b_in, self.model.conv_in.window(self.x_cl, r, c), self.w_in))
        for layers, cache in zip(self.layers, self.caches):
            for (w, bias), gw, gb, m in layers:
                a, g = A.lin(torch.addmm(gb, A.elu(A.lin(torch.addmm(bias, A.elu(window3(m, h, c)), w))),
                                         gw)).chunk(2, dim=1)
                h = A.gate(h, a, g)
            h = A.add(h, cache.step(A.elu(h), r * self.width + c))
        return A.lin(self.skip.params(c, self.model.head(A.elu(h))))
