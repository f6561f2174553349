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

from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from . import mixture
from .attention import AttentionCache, CausalAttention
from .exact import FLOAT, FloatArithmetic
from .image_model import MixtureImageModel, zero_
from .layers import Nin
from .masked import MaskedConv2d, MaskedStackStepper, window3
from .neighbours import IN_CHANNELS, apply_skip, predictor_skip


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

    Each attention layer keeps the keys and values of the positions so far.
    """

    @torch.no_grad()
    def __init__(self, model: Any, batch: int, height: int, width: int) -> None:  # the model (its ModuleLists of blocks are untyped)
        super().__init__(model, batch, height, width, model.config.first_kernel // 2)
        c = model.config.channels
        self.w_in, self.b_in = model.conv_in.matrix()
        self.layers = [[(layer.conv.matrix(), layer.gate.lin.weight.t().contiguous(), layer.gate.lin.bias,
                         self.new_map(c)) for layer in layers] for layers in model.layers]
        self.caches = [AttentionCache(a, batch, height * width, self.device, self.arith, self.x.dtype)
                       for a in model.attention]

    def release(self) -> None:
        """Drop the caches."""
        self.maps = self.layers = self.caches = self.skip = None  # type: ignore[assignment]  # the caches go

    @torch.no_grad()
    def params(self, c: int) -> torch.Tensor:
        """Mixture parameters ``(B, 10*M)`` of pixel ``(r, c)``."""
        r, A = self.r, self.arith
        h = A.lin(torch.addmm(self.b_in, self.model.conv_in.window(self.x_cl, r, c), self.w_in))
        for layers, cache in zip(self.layers, self.caches):
            for (w, bias), gw, gb, m in layers:
                a, g = A.lin(torch.addmm(gb, A.elu(A.lin(torch.addmm(bias, A.elu(window3(m, h, c)), w))),
                                         gw)).chunk(2, dim=1)
                h = A.gate(h, a, g)
            h = A.add(h, cache.step(A.elu(h), r * self.width + c))
        return A.lin(self.skip.params(c, self.model.head(A.elu(h))))
