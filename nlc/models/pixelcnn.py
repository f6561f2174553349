"""PixelCNN (van den Oord et al. 2016): a stack of masked convolutions.

* A ``first_kernel x first_kernel`` convolution with mask A reads the RGB and
  ones channels of the pixels before the current one.
* ``layers`` residual blocks ``h + W2 relu(maskB_3x3(relu h))`` (the second
  projection starts at zero, so each block starts as the identity). The masks
  leave the blind spot to the upper right that the Gated PixelCNN removes.
* Head: ``relu -> 1x1 -> relu -> 1x1`` to the shared discretized logistic
  mixture, plus the shared causal-neighbourhood skip (:mod:`.neighbours`).
  Dependence between R, G and B of one pixel is the mixture's (linear in the
  earlier channels, as in PixelCNN++), not the paper's channel masks.

Coding evaluates every layer at one position per step (:class:`MaskedStepper`),
keeping each block's input map, so a pixel costs one pass through the stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import mixture
from .image_model import MixtureImageModel, zero_
from .layers import Nin
from .masked import MaskedConv2d, MaskedStackStepper, window3
from .neighbours import IN_CHANNELS, apply_skip, predictor_skip


@dataclass(frozen=True)
class PixelCNNConfig:
    """Hyper-parameters of :class:`PixelCNN` (stored in the codec TOML)."""

    channels: int = 64
    layers: int = 8
    first_kernel: int = 7
    mixtures: int = 10
    dropout: float = 0.0


class MaskedResBlock(nn.Module):
    """``h + proj(dropout(relu(conv(relu h))))`` with a mask-B 3x3 ``conv``; ``proj`` starts at zero."""

    def __init__(self, channels: int, dropout: float) -> None:
        super().__init__()
        self.conv = MaskedConv2d(channels, channels, 3, "B")
        self.proj = zero_(Nin(channels, channels))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Whole-tensor block."""
        return h + self.proj(self.dropout(F.relu(self.conv(F.relu(h)))))


class PixelCNN(MixtureImageModel):
    """The PixelCNN likelihood model; see the module docstring."""

    def __init__(self, config: PixelCNNConfig = PixelCNNConfig()) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        self.conv_in = MaskedConv2d(IN_CHANNELS, c, config.first_kernel, "A")
        self.blocks = nn.ModuleList(MaskedResBlock(c, config.dropout) for _ in range(config.layers))
        self.out = Nin(c, c)
        self.head = zero_(Nin(c, mixture.num_params(config.mixtures)))
        self.skip = predictor_skip(config.mixtures)

    def forward_x4(self, x4: torch.Tensor) -> torch.Tensor:
        """Mixture parameters for every pixel of ``(B, 4, H, W)`` input."""
        h = self.conv_in(x4)
        for blk in self.blocks:
            h = blk(h)
        return self.head(F.relu(self.out(F.relu(h)))) + apply_skip(self.skip, x4)

    def stepper(self, batch: int, height: int, width: int) -> "MaskedStepper":
        """An incremental evaluator for coding ``batch`` tiles of ``height x width``."""
        return MaskedStepper(self, batch, height, width)


class MaskedStepper(MaskedStackStepper):
    """Evaluates :class:`PixelCNN` one pixel at a time in raster order (see :class:`MaskedStackStepper`)."""

    @torch.no_grad()
    def __init__(self, model: Any, batch: int, height: int, width: int) -> None:  # the model (its ModuleLists of blocks are untyped)
        super().__init__(model, batch, height, width, model.config.first_kernel // 2)
        for _ in model.blocks:  # one map per block, in self.maps
            self.new_map(model.config.channels)
        self.w_in, self.b_in = model.conv_in.matrix()
        self.blocks = [(blk.conv.matrix(), blk.proj.lin.weight.t().contiguous(), blk.proj.lin.bias)
                       for blk in model.blocks]
        self.w_out, self.b_out = model.out.lin.weight.t().contiguous(), model.out.lin.bias
        self.w_head, self.b_head = model.head.lin.weight.t().contiguous(), model.head.lin.bias

    def release(self) -> None:
        """Drop the caches."""
        self.maps = self.blocks = self.skip = None  # type: ignore[assignment]  # the caches go

    @torch.no_grad()
    def params(self, c: int) -> torch.Tensor:
        """Mixture parameters ``(B, 10*M)`` of pixel ``(r, c)``."""
        r = self.r
        h = torch.addmm(self.b_in, self.model.conv_in.window(self.x_cl, r, c), self.w_in)
        for m, ((w, bias), pw, pb) in zip(self.maps, self.blocks):
            win = F.relu(window3(m, h, c))
            h = h + torch.addmm(pb, F.relu(torch.addmm(bias, win, w)), pw)
        h = torch.addmm(self.b_out, F.relu(h), self.w_out)
        return self.skip.params(c, torch.addmm(self.b_head, F.relu(h), self.w_head))
