"""The causal-neighbourhood skip shared by the autoregressive image models.

A linear map from a pixel's causal neighbourhood (W, WW, N, NN, NW, NE and
some absolute differences) straight to the mixture parameters, started as the
classical predictor ``0.75 W + 0.75 N - 0.5 NW`` with narrow scales. It makes a
model useful from its first training step; the network learns what it misses.

:func:`neighbour_features` evaluates it on whole images (training);
:class:`SkipStepper` splits it into the part that depends on the rows above
(computed once per row) and the part that depends on the current row (per
pixel), for incremental coding.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from numba import njit
from torch import nn

from .exact import FLOAT, NUMPY_EXACT, FloatArithmetic

IN_CHANNELS = 4  # R, G, B and the ones channel that marks where the image is
LEFT_FEATURES = 14  # W, WW (4 channels each), |W-NW|, |W-WW| (RGB)
ABOVE_FEATURES = 25  # N, NN, NW, NE (4 each), |N-NW|, |N-NE|, |N-NN| (RGB)
FEATURES = LEFT_FEATURES + ABOVE_FEATURES


def shift(x: torch.Tensor, down: int, right: int) -> torch.Tensor:
    """``out[..., r, c] = x[..., r - down, c - right]`` with zeros outside (``right`` may be -1)."""
    h, w = x.shape[-2:]
    x = F.pad(x, (max(right, 0), max(-right, 0), down, 0))
    return x[..., :h, max(-right, 0) : max(-right, 0) + w] if right < 0 else x[..., :h, :w]


def with_ones(x: torch.Tensor) -> torch.Tensor:
    """Append the ones channel to ``(B, 3, H, W)`` input in ``[-1, 1]``."""
    return torch.cat([x, torch.ones_like(x[:, :1])], dim=1)


def neighbour_features(x4: torch.Tensor) -> torch.Tensor:
    """Causal neighbourhood features of every pixel, ``(B, 4, H, W) -> (B, 39, H, W)``.

    Order: the 14 left features, then the 25 above features (see the constants).
    """
    w, ww = shift(x4, 0, 1), shift(x4, 0, 2)
    n, nn_, nw, ne = shift(x4, 1, 0), shift(x4, 2, 0), shift(x4, 1, 1), shift(x4, 1, -1)
    rgb = slice(0, 3)
    return torch.cat(
        [w, ww, (w - nw)[:, rgb].abs(), (w - ww)[:, rgb].abs(),
         n, nn_, nw, ne, (n - nw)[:, rgb].abs(), (n - ne)[:, rgb].abs(), (n - nn_)[:, rgb].abs()],
        dim=1,
    )


def predictor_skip(mixtures: int) -> nn.Linear:
    """The skip layer, initialised as the classical predictor with narrow log-scales (-3)."""
    skip = nn.Linear(FEATURES, mixtures * 10)
    m = mixtures
    w = torch.zeros_like(skip.weight)
    b = torch.zeros_like(skip.bias)
    for ch in range(3):
        rows = slice(m + ch * 3 * m, m + ch * 3 * m + m)
        w[rows, ch] = 0.75  # W
        w[rows, LEFT_FEATURES + ch] = 0.75  # N
        w[rows, LEFT_FEATURES + 8 + ch] = -0.5  # NW
        b[m + ch * 3 * m + m : m + ch * 3 * m + 2 * m] = -3.0  # log-scales
    with torch.no_grad():
        skip.weight.copy_(w)
        skip.bias.copy_(b)
    return skip


def apply_skip(skip: nn.Linear, x4: torch.Tensor) -> torch.Tensor:
    """The skip's parameters for every pixel, ``(B, 4, H, W) -> (B, P, H, W)``."""
    return torch.movedim(skip(torch.movedim(neighbour_features(x4), 1, -1)), -1, 1)


class SkipStepper:
    """:func:`apply_skip` one pixel at a time over a padded pixel buffer.

    ``x`` is the coder's ``(B, 4, H + top, W + left + 1)`` buffer with at least
    two zero rows on top and two zero columns left, and one zero column right.
    ``steps`` is the arithmetic of the per-pixel part (its array type: torch,
    or numpy for an exact model's steps on a CPU).
    """

    compiled = True  # an exact model's steps on a CPU: each row's part in one compiled call (:func:`above_row`)

    def __init__(self, skip: nn.Linear, x: torch.Tensor, top: int, left: int, width: int,
                 steps: FloatArithmetic = FLOAT) -> None:
        self.skip, self.x, self.top, self.left, self.width, self.steps = skip, x, top, left, width, steps
        self.xs = steps.array(x)
        self.w_left = steps.array(skip.weight[:, :LEFT_FEATURES].t().contiguous())
        self.w_above = skip.weight[:, LEFT_FEATURES:].t().contiguous()
        self.kernel = self.compiled and steps is NUMPY_EXACT  # exact sums: a compiled row gives torch's numbers
        if self.kernel:
            self.k_w_above, self.k_bias = steps.array(self.w_above), steps.array(skip.bias)
            self.above = np.empty((x.shape[0], width, skip.bias.shape[0]))
            self.nw = np.empty((x.shape[0], width, IN_CHANNELS))

    def start_row(self, r: int) -> None:
        """Compute the part of row ``r`` that reads the rows above."""
        if self.kernel:
            self.r = r
            above_row(self.xs, r + self.top, self.left, self.width, self.k_w_above, self.k_bias, self.above, self.nw)
            return
        x, t, lf, w = self.x, self.top, self.left, self.width
        n = x[:, :, r + t - 1, lf : lf + w]
        nn_ = x[:, :, r + t - 2, lf : lf + w]
        nw = x[:, :, r + t - 1, lf - 1 : lf - 1 + w]
        ne = x[:, :, r + t - 1, lf + 1 : lf + 1 + w]
        above = torch.cat([n, nn_, nw, ne, (n - nw)[:, :3].abs(), (n - ne)[:, :3].abs(), (n - nn_)[:, :3].abs()], 1)
        self.r = r
        self.nw = self.steps.array(nw.transpose(1, 2).contiguous())  # (B, W, 4)
        self.above = self.steps.array(torch.addmm(self.skip.bias, above.transpose(1, 2).reshape(-1, ABOVE_FEATURES),
                                                  self.w_above).view(x.shape[0], w, -1))  # (B, W, P)

    def params(self, c: int, base: torch.Tensor) -> torch.Tensor:
        """``base`` plus the skip's parameters ``(B, P)`` at pixel ``(r, c)`` (reads the row up to ``c - 1``)."""
        row = self.xs[:, :, self.r + self.top]
        cl = c + self.left
        wp, wwp = row[:, :, cl - 1], row[:, :, cl - 2]
        left = self.steps.cat([wp, wwp, abs(wp - self.nw[:, c])[:, :3], abs(wp - wwp)[:, :3]])
        return base + self.above[:, c] + left @ self.w_left


@njit(cache=True, nogil=True)
def above_row(xs, row, left, width, w_above, bias, above, nw):
    """:meth:`SkipStepper.start_row` of an exact model in one compiled call: the skip's parameters from
    the rows above, ``above`` ``(B, W, P)``, and the NW pixels ``nw`` ``(B, W, 4)``, of buffer row ``row``
    of ``xs`` ``(B, 4, H', W')`` (columns from ``left``). Every sum is exact, so the order of the
    products is free: the same numbers as torch's ``addmm``."""
    f = np.empty(ABOVE_FEATURES)
    for b in range(xs.shape[0]):
        for c in range(width):
            x = left + c
            for ch in range(IN_CHANNELS):
                f[ch] = xs[b, ch, row - 1, x]
                f[4 + ch] = xs[b, ch, row - 2, x]
                f[8 + ch] = xs[b, ch, row - 1, x - 1]
                f[12 + ch] = xs[b, ch, row - 1, x + 1]
                nw[b, c, ch] = f[8 + ch]
            for ch in range(3):
                f[16 + ch] = abs(f[ch] - f[8 + ch])
                f[19 + ch] = abs(f[ch] - f[12 + ch])
                f[22 + ch] = abs(f[ch] - f[4 + ch])
            for p in range(bias.shape[0]):
                s = bias[p]
                for k in range(ABOVE_FEATURES):
                    s += f[k] * w_above[k, p]
                above[b, c, p] = s
