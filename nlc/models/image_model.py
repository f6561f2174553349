"""What every autoregressive image model shares: input layout, likelihood, config.

A model maps ``(B, 4, H, W)`` input (RGB in ``[-1, 1]`` and a ones channel that
is zero outside the image or tile) to discretized-logistic-mixture parameters
``(B, 10*M, H, W)`` for every pixel in one parallel pass (:meth:`forward_x4`),
and offers a :meth:`stepper` that gives the same parameters one pixel at a time
in raster order for coding (see :class:`nlc.coding.autoregressive.Stepper`).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from . import mixture
from .exact import FLOAT
from .neighbours import IN_CHANNELS, SkipStepper, with_ones


class MixtureImageModel(nn.Module):
    """Base class: subclasses set ``config`` (with ``mixtures``) and define ``forward_x4`` and ``stepper``."""

    config: Any  # each architecture's dataclass, with ``mixtures``
    arith = FLOAT  # how layers round (an exact twin from :func:`~nlc.models.exact.make_exact` has its own)

    def forward_x4(self, x4: torch.Tensor) -> torch.Tensor:
        """Mixture parameters for every pixel of input that already has the ones channel."""
        raise NotImplementedError

    with_ones = staticmethod(with_ones)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mixture parameters for every pixel, ``(B, 3, H, W) -> (B, 10*M, H, W)``."""
        return self.forward_x4(with_ones(x))

    def log_likelihood(self, x: torch.Tensor, channels: int = 3) -> torch.Tensor:
        """Per-pixel log-likelihood in nats of ``(B, 3, H, W)`` input in ``[-1, 1]``."""
        return mixture.log_likelihood(x, self(x), self.config.mixtures, channels)

    def hyperparameters(self) -> dict:
        """The config as a plain dict."""
        return asdict(self.config)


def zero_(module: nn.Module) -> nn.Module:
    """Zero a layer's weights and biases in place (a block or head that starts silent)."""
    with torch.no_grad():
        for p in module.parameters():
            p.zero_()
    return module


class RasterStepper:
    """Base of the models' incremental evaluators: the padded pixel buffer and how pixels enter it.

    ``x`` is ``(B, 4, H + TOP, W + LEFT + 1)``: zero rows on top, zero columns
    left and one right, so causal windows near the border read zeros. Pixels
    enter through :meth:`fill` (an encoder may load the whole image up front:
    nothing after the current pixel is read) or :meth:`put` (a decoder adds each
    pixel once decoded). Subclasses compute :meth:`params` one pixel at a time:
    :meth:`start_row` once per row, then ``params(c)`` for ``c = 0, 1, ...``,
    and add their network's output to the neighbourhood skip's (``self.skip``).
    """

    TOP, LEFT = 2, 3
    numpy_steps = False  # whether params() can run in numpy arrays (``self.steps``, see FloatArithmetic.steps)

    def __init__(self, model: Any, batch: int, height: int, width: int) -> None:  # a MixtureImageModel
        self.model, self.batch, self.width = model, batch, width
        self.arith = getattr(model, "arith", FLOAT)
        weight = next(model.parameters())
        self.device = weight.device
        self.x = torch.zeros(batch, IN_CHANNELS, height + self.TOP, width + self.LEFT + 1, dtype=weight.dtype,
                             device=self.device)
        # the arithmetic of the per-pixel steps: numpy for an exact model on a CPU, where a subclass allows it
        self.steps = self.arith.steps(self.device) if self.numpy_steps else self.arith
        self.xs = self.steps.array(self.x)  # ``x`` as the steps see it (for numpy, a view)
        self.skip = SkipStepper(model.skip, self.x, self.TOP, self.LEFT, width, self.steps)

    def linear_weights(self, nin: Any) -> tuple:  # a Nin
        """A :class:`~nlc.models.layers.Nin`'s weight and bias as the per-pixel steps' arrays."""
        return self.steps.array(nin.lin.weight), self.steps.array(nin.lin.bias)

    def row_source(self, ops, part: slice = slice(None)):
        """The image rows (of the tiles ``part``) as the source node of a row-at-a-time network
        (:class:`~nlc.models.rowgraph.RowOps`)."""
        t, lf, w = self.TOP, self.LEFT, self.width
        return ops.source(lambda r: self.x[part, :, r + t, lf : lf + w], IN_CHANNELS, w)

    @torch.no_grad()
    def start_row(self, r: int) -> None:
        """Start row ``r`` (subclasses add what depends on the rows above only)."""
        self.r = r
        self.skip.start_row(r)

    @torch.no_grad()
    def fill(self, x4: torch.Tensor) -> None:
        """Load ``(B, 4, H, W)`` input (RGB in ``[-1, 1]`` and the ones channel)."""
        self.x[:, :, self.TOP :, self.LEFT : self.LEFT + self.width] = self.arith.input(x4)

    @torch.no_grad()
    def put(self, index: torch.Tensor, r: int, c: int, rgb: torch.Tensor) -> None:
        """Set pixel ``(r, c)`` of the tiles ``index`` to ``rgb`` ``(n, 3)`` in ``[-1, 1]``."""
        self.x[index, :3, r + self.TOP, c + self.LEFT] = self.arith.input(rgb)
