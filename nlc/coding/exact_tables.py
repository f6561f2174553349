"""Discretized logistic mixtures -> integer probability tables, the same on every machine.

The exact counterpart of :mod:`nlc.coding.logistic_mixture` for models with
exact arithmetic (:mod:`nlc.models.exact`), whose parameters are multiples of
``2^-16``. Every step is exact integer arithmetic in float64, or a lookup in
a table of :mod:`nlc.fixed`:

* mixture weights ``round(2^16 exp(logit - max))`` from a table;
* a component's mean in pixel levels rounded to ``2^-10`` of a level, its
  inverse scale (from the log-scale) to 14 significant bits, so that the
  logistic's argument at each of the 255 bin edges is an exact product;
* the argument rounded to ``2^-10`` and the CDF read from a table as an
  integer in ``[0, 2^30]``; the mixture's CDF is the exact weighted sum;
* a uniform floor of ``2^-24`` of the total on every bin, so every value
  stays codable;
* each value coded in two stages, its bucket of 16 levels and its place in
  the bucket, whose tables multiply to the full table's probability: the
  CDFs are needed at 30 edges, not 255;
* after each channel, the weights become ``floor(2^16 w_k p_k / sum_j w_j p_j)``
  with ``p_k`` the coded value's probability under component ``k`` (one
  correctly rounded division, the same everywhere).

The tables handed to the coder are integers (as float64), so constriction's
quantization sees the same input everywhere too. The arithmetic runs in numpy:
a step's arrays are small, and numpy's per-operation cost is lower than
torch's.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from .. import fixed
from ..models.mixture import LOG_SCALE_MIN
from . import exact_kernels as kernels
from .logistic_mixture import SymbolFn


class MeanStage(Protocol):
    """What moves a pixel's means before its tables are built and may learn from the coded values: the
    adaptive stages (:class:`~nlc.coding.adaptive.OnlineBias`) and an integer MAF's offsets
    (:class:`~nlc.coding.sequence.LevelOffset`)."""

    def shift(self, ch: int, weights: np.ndarray, log_scales: np.ndarray, inv_scales: np.ndarray,
              levels: np.ndarray) -> np.ndarray:
        """Channel ``ch``'s component means ``levels`` ``(n, M)`` (on the ``2^-10`` grid), moved."""

    def scales(self, ch: int) -> np.ndarray:
        """Channel ``ch``'s inverse scales to build the tables with, after :meth:`shift`."""

    def observe(self, ch: int, values: np.ndarray) -> None:
        """Channel ``ch``'s coded values."""

LOG_SCALE_MAX = 8.0
MEAN_BITS = 10  # a mean is rounded to 2^-10 of a pixel level
CDF_ONE = float(2**fixed.CDF_BITS)
CDF_FLOOR = 2 ** (fixed.CDF_BITS - 24)  # the uniform floor per weight unit: 2^-24 of the total on each bin


class ExactMixture:
    """The mixture parameters of ``n`` pixels in their exact forms (see the module docstring)."""

    def __init__(self, params: torch.Tensor | np.ndarray, mixtures: int) -> None:
        m = mixtures
        p = params.double().cpu().numpy() if isinstance(params, torch.Tensor) else np.asarray(params, np.float64)
        logits = p[:, :m]
        tail = p[:, m:].reshape(p.shape[0], 3, 3 * m)
        self.weights = fixed.weight_lut().at(logits - logits.max(1, keepdims=True))  # (n, M) integers
        self.means = tail[:, :, :m]  # (n, 3, M) on the 2^-16 grid
        self.log_scales = np.clip(tail[:, :, m : 2 * m], LOG_SCALE_MIN, LOG_SCALE_MAX)  # (n, 3, M), 2^-16 grid
        self.inv_scales = fixed.inverse_scale_lut().at(self.log_scales)
        self.coeffs = fixed.tanh_lut().at(tail[:, :, 2 * m :])

    def take(self, rows: np.ndarray) -> "ExactMixture":
        """The mixtures of pixels ``rows`` (an encoder builds one step's from its row's at once)."""
        part = object.__new__(ExactMixture)
        for name in ("weights", "means", "log_scales", "inv_scales", "coeffs"):
            setattr(part, name, getattr(self, name)[rows])
        return part

    def channel_mean(self, ch: int, xs: list[np.ndarray]) -> np.ndarray:
        """Means ``(n, M)`` of channel ``ch`` given the earlier channels' values ``xs`` (each ``(n, 1)``)."""
        mean = self.means[:, ch]
        if ch == 1:
            mean = mean + self.coeffs[:, 0] * xs[0]
        elif ch == 2:
            mean = mean + self.coeffs[:, 1] * xs[0] + self.coeffs[:, 2] * xs[1]
        return mean

    def levels(self, ch: int, xs: list[np.ndarray]) -> np.ndarray:
        """Means ``(n, M)`` of channel ``ch`` in pixel levels, rounded (half to even) to ``2^-10`` of a level."""
        return np.round((self.channel_mean(ch, xs) + 1) * (127.5 * 2**MEAN_BITS)) * 2.0**-MEAN_BITS

    def progression(self, ch: int, levels: np.ndarray, inv_scales: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """``(a, d)``, each ``(n, M, 1)``: the CDF table position at bin edge ``i`` is ``a + i * d`` before
        rounding (see :meth:`cdfs_at`); ``inv_scales`` ``(n, M)`` replace channel ``ch``'s (an adaptive stage's)."""
        lut = fixed.cdf_lut()
        steps = 2.0**lut.in_bits
        d = (self.inv_scales[:, ch] if inv_scales is None else inv_scales) * steps  # (n, M)
        a = (0.5 - levels) * d + (0.5 - lut.lo * steps)  # the table position at edge 0, before rounding
        return a[:, :, None], d[:, :, None]

    @staticmethod
    def cdfs_at(progression: tuple[np.ndarray, np.ndarray], edges: np.ndarray) -> np.ndarray:
        """Each component's CDF at bin edges ``edges`` ``(n, E)`` or ``(E,)`` (edge ``i`` lies at level
        ``i + 0.5``), integers in ``[0, 2^30]``: ``(n, M, E)``.

        The logistic's argument ``(i + 0.5 - mean) * inv_scale`` is exact (a
        mean of 2^-10 levels times 14 significant bits); it is written as
        ``a + i * d`` (exact as well, ``progression``) and rounded half up to
        the CDF table's ``2^-10`` steps.
        """
        a, d = progression
        e = edges[None, None, :] if edges.ndim == 1 else edges[:, None, :]
        return fixed.cdf_lut().at_positions(a + e * d)  # exact positions


BUCKET = 16  # a value is coded as its bucket of 16 levels, then its place in the bucket
_BUCKET_EDGES = np.arange(1, 256 // BUCKET, dtype=np.float64) * BUCKET - 1  # edges 15, 31, ..., 239
_INNER = np.arange(BUCKET - 1, dtype=np.float64)  # edges 16b + 0 .. 16b + 14 of bucket b


def stage_table(weights: np.ndarray, cdfs: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                width: int) -> tuple[np.ndarray, np.ndarray]:
    """A table over the ``E + 1`` intervals cut by ``E`` edges between two bounds, with the uniform floor.

    ``cdfs`` ``(n, M, E)`` are the components' CDFs at the edges, ``lower`` and
    ``upper`` ``(n, M)`` at the bounds; every interval holds ``width`` pixel
    levels. Returns the table ``(n, E + 1)`` (integers as float64) and the
    components' CDFs at the bounds and edges ``(n, M, E + 2)``.
    """
    full = np.concatenate([lower[:, :, None], cdfs, upper[:, :, None]], 2)
    mix = np.einsum("nm,nme->ne", weights, full)  # exact: integers below 2^53, in any order
    table = mix[:, 1:] - mix[:, :-1]
    table += (weights.sum(1) * (CDF_FLOOR * width))[:, None]
    return table, full


def updated_weights(weights: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """``floor(2^16 w_k p_k / sum_j w_j p_j)``; where every ``w_k p_k`` is zero the weights stay."""
    num = weights * probs  # exact: below 2^46
    den = num.sum(1, keepdims=True)
    new = np.floor(num * float(fixed.WEIGHT_ONE) / np.maximum(den, 1.0))
    return np.where(den > 0, new, weights)


def _pick(t: np.ndarray, j: np.ndarray) -> np.ndarray:
    """``t[i, :, j[i]]`` for ``(n, M, K)`` ``t``: ``(n, M)``."""
    return t[np.arange(len(j)), :, j]


def code_pixels_exact(params: torch.Tensor | np.ndarray | ExactMixture, mixtures: int, channels: int,
                      symbol_fn: SymbolFn, with_bits: bool = True, adapt: "MeanStage | None" = None
                      ) -> tuple[np.ndarray, np.ndarray | None]:
    """Code one pixel per row of ``params`` ``(n, 10*M)`` (from a model with exact arithmetic), or of their
    :class:`ExactMixture`.

    Each channel's value is coded in two stages, each through
    ``symbol_fn(stage, table)`` with ``stage = 2 * channel + k``: ``k = 0``
    codes its bucket ``value // 16`` under a table ``(n, 16)``, ``k = 1`` its
    place ``value % 16`` in the bucket under a table ``(n, 16)`` (integers as
    float64); ``symbol_fn`` returns the ``(n,)`` symbols it coded
    (:func:`stage_symbols` gives an encoder's). The two tables' product is the
    mixture's probability of the value, so the stages cost what one table
    would, with 30 CDF evaluations per component instead of 255. Returns the
    values ``(n, channels)`` and, with ``with_bits``, each pixel's
    information content in bits under these tables.

    ``adapt`` (an :class:`~nlc.coding.adaptive.OnlineBias` positioned at this
    step) shifts each channel's means before its tables are built and learns
    from each coded channel. The tables come from the compiled kernels of
    :mod:`nlc.coding.exact_kernels`, the same numbers as :func:`code_pixels_exact_numpy`.
    """
    mx = params if isinstance(params, ExactMixture) else ExactMixture(params, mixtures)
    n = mx.weights.shape[0]
    lut = fixed.cdf_lut()
    steps = 2.0**lut.in_bits
    const = 0.5 - lut.lo * steps
    levels_table = fixed.pixel_levels().numpy()
    w = mx.weights
    syms = np.empty((n, channels), np.uint8)
    bits = np.zeros(n) if with_bits else None
    xs = [np.zeros(n), np.zeros(n)]
    rows = np.arange(n)
    for ch in range(channels):
        levels = kernels.channel_levels(mx.means, mx.coeffs, ch, xs[0], xs[1], 127.5 * 2**MEAN_BITS,
                                        2.0**-MEAN_BITS)
        inv = mx.inv_scales[:, ch]
        if adapt is not None:
            levels = adapt.shift(ch, w, mx.log_scales[:, ch], inv, levels)
            inv = adapt.scales(ch)
        inv = np.ascontiguousarray(inv)
        outer, bounds = kernels.outer_table(w, levels, inv, lut.array, steps, const, BUCKET, CDF_ONE, float(CDF_FLOOR))
        bucket = np.asarray(symbol_fn(2 * ch, outer)).astype(np.int64)
        table, local = kernels.inner_table(w, levels, inv, bounds, bucket, lut.array, steps, const, BUCKET,
                                           float(CDF_FLOOR))
        place = np.asarray(symbol_fn(2 * ch + 1, table)).astype(np.int64)
        value = bucket * BUCKET + place
        syms[:, ch] = value
        if adapt is not None:
            adapt.observe(ch, value)
        if bits is not None:
            bits -= np.log2(outer[rows, bucket] / outer.sum(1))
            bits -= np.log2(table[rows, place] / table.sum(1))
        if ch + 1 < channels:
            w = kernels.updated_weights(w, local, place, float(fixed.WEIGHT_ONE))
            xs[ch] = levels_table[value]
    return syms, bits


def code_pixels_exact_numpy(params: torch.Tensor | np.ndarray, mixtures: int, channels: int, symbol_fn: SymbolFn,
                            with_bits: bool = True, adapt: "MeanStage | None" = None
                            ) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`code_pixels_exact` (same arguments, same results) in plain numpy: the readable reference
    that ``tests/models/test_exact.py`` checks the compiled kernels against, stage by stage."""
    mx = ExactMixture(params, mixtures)
    n = mx.weights.shape[0]
    levels_table = fixed.pixel_levels().numpy()
    zeros = np.zeros((n, mixtures))
    ones = np.full((n, mixtures), CDF_ONE)
    w = mx.weights
    syms = np.empty((n, channels), np.uint8)
    bits = np.zeros(n) if with_bits else None
    xs: list[np.ndarray] = []
    rows = np.arange(n)
    for ch in range(channels):
        levels = mx.levels(ch, xs)
        inv = mx.inv_scales[:, ch]
        if adapt is not None:
            levels = adapt.shift(ch, w, mx.log_scales[:, ch], inv, levels)
            inv = adapt.scales(ch)
        prog = mx.progression(ch, levels, inv)
        outer, bounds = stage_table(w, mx.cdfs_at(prog, _BUCKET_EDGES), zeros, ones, BUCKET)
        bucket = np.asarray(symbol_fn(2 * ch, outer)).astype(np.int64)
        edges = bucket[:, None] * float(BUCKET) + _INNER
        table, local = stage_table(w, mx.cdfs_at(prog, edges), _pick(bounds, bucket), _pick(bounds, bucket + 1), 1)
        place = np.asarray(symbol_fn(2 * ch + 1, table)).astype(np.int64)
        value = bucket * BUCKET + place
        syms[:, ch] = value
        if adapt is not None:
            adapt.observe(ch, value)
        if bits is not None:
            bits -= np.log2(outer[rows, bucket] / outer.sum(1))
            bits -= np.log2(table[rows, place] / table.sum(1))
        if ch + 1 < channels:
            w = updated_weights(w, _pick(local, place + 1) - _pick(local, place))
            xs.append(levels_table[value][:, None])
    return syms, bits


def stage_symbols(values: np.ndarray, stage: int) -> np.ndarray:
    """What :func:`code_pixels_exact`'s stage ``stage`` codes for known ``values`` ``(n, channels)``."""
    v = values[:, stage // 2].astype(np.int64)
    return v // BUCKET if stage % 2 == 0 else v % BUCKET
