"""Compiled kernels of the exact integer tables (:mod:`nlc.coding.exact_tables`), through numba.

The decoder (and the adaptive encoder) builds one step's tables at a time: a
few hundred pixels' worth of work in some hundred numpy calls. These kernels
do a channel's stages in a few calls with the same operations in the same
order: means rounded half to even to the ``2^-10``-level grid, exact table
positions ``a + i d``, lookups truncated and clamped as :meth:`nlc.fixed.Lut.at_positions`,
integer-valued mixture sums, one correctly rounded division per weight. No
fast-math, so nothing is reordered or fused; ``tests/models/test_exact.py`` checks
them against the numpy functions, and the golden files decode with them.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..models.exact_steps import round_half_even


@njit(cache=True)
def channel_levels(means, coeffs, ch, x0, x1, mean_scale, mean_unit):
    """Channel ``ch``'s component means in levels on the ``2^-10`` grid (``ExactMixture.levels``):
    ``means``, ``coeffs`` ``(n, 3, M)``, ``x0``/``x1`` the earlier channels' values ``(n,)``."""
    out = np.empty((means.shape[0], means.shape[2]))
    channel_levels_into(means, coeffs, ch, x0, x1, mean_scale, mean_unit, out)
    return out


@njit(cache=True)
def channel_levels_into(means, coeffs, ch, x0, x1, mean_scale, mean_unit, out):
    """:func:`channel_levels` into ``out`` ``(n, M)``."""
    n, _, m = means.shape
    for i in range(n):
        for k in range(m):
            mean = means[i, ch, k]
            if ch == 1:
                mean = mean + coeffs[i, 0, k] * x0[i]
            elif ch == 2:
                mean = mean + coeffs[i, 1, k] * x0[i] + coeffs[i, 2, k] * x1[i]
            out[i, k] = round_half_even((mean + 1.0) * mean_scale) * mean_unit


@njit(cache=True)
def _cdf(table, pos):
    last = table.shape[0] - 1
    return table[min(max(int(pos), 0), last)]


@njit(cache=True)
def level_cdf(inv_scale, level, v, cdf_table, steps, const, one):
    """A component's CDF (an integer out of ``one``) at the upper edge of level ``v``, as the tables form it:
    0 below level 0, ``one`` from level 255, else the table at the exact position ``a + v d`` (``d`` the
    inverse scale in table steps, ``a`` edge 0's position; :meth:`~nlc.coding.exact_tables.ExactMixture.cdfs_at`)."""
    if v < 0:
        return 0.0
    if v >= 255:
        return one
    d = inv_scale * steps
    a = (0.5 - level) * d + const
    return _cdf(cdf_table, a + float(v) * d)


@njit(cache=True)
def _stage_table(weights, cdfs, width, floor_):
    """The table over the intervals between consecutive CDF points ``cdfs`` ``(n, M, E)``: the exact
    weighted mixture's differences plus the uniform floor of ``width`` levels (``exact_tables.stage_table``)."""
    n, m, e = cdfs.shape
    table = np.empty((n, e - 1))
    for i in range(n):
        wsum = 0.0
        for k in range(m):
            wsum += weights[i, k]
        prev = 0.0
        for b in range(e):
            mix = 0.0
            for k in range(m):
                mix += weights[i, k] * cdfs[i, k, b]
            if b > 0:
                table[i, b - 1] = mix - prev + wsum * (floor_ * width)
            prev = mix
    return table


@njit(cache=True)
def outer_table(weights, levels, inv_scales, cdf_table, steps, const, bucket, one, floor_):
    """The bucket stage: its table ``(n, 256 / bucket)`` and every component's CDF at the bucket edges,
    the bounds 0 and ``2^30`` included ``(n, M, 256 / bucket + 1)``."""
    n, m = weights.shape
    nb = 256 // bucket
    bounds = np.empty((n, m, nb + 1))
    for i in range(n):
        for k in range(m):
            d = inv_scales[i, k] * steps
            a = (0.5 - levels[i, k]) * d + const
            bounds[i, k, 0] = 0.0
            for b in range(1, nb):
                bounds[i, k, b] = _cdf(cdf_table, a + (b * bucket - 1.0) * d)
            bounds[i, k, nb] = one
    return _stage_table(weights, bounds, float(bucket), floor_), bounds


@njit(cache=True)
def inner_table(weights, levels, inv_scales, bounds, buckets, cdf_table, steps, const, bucket, floor_):
    """The place stage given each pixel's bucket: its table ``(n, bucket)`` and every component's CDF at
    the bucket's edges, its bounds included ``(n, M, bucket + 1)``."""
    n, m = weights.shape
    local = np.empty((n, m, bucket + 1))
    for i in range(n):
        bk = buckets[i]
        for k in range(m):
            d = inv_scales[i, k] * steps
            a = (0.5 - levels[i, k]) * d + const
            local[i, k, 0] = bounds[i, k, bk]
            for j in range(bucket - 1):
                local[i, k, j + 1] = _cdf(cdf_table, a + (bk * float(bucket) + j) * d)
            local[i, k, bucket] = bounds[i, k, bk + 1]
    return _stage_table(weights, local, 1.0, floor_), local


@njit(cache=True)
def updated_weights(weights, local, places, weight_one):
    """``floor(2^16 w_k p_k / sum_j w_j p_j)`` with ``p_k`` the coded value's probability under component
    ``k``; where every ``w_k p_k`` is zero the weights stay (``exact_tables.updated_weights``)."""
    n, m = weights.shape
    out = np.empty((n, m))
    num = np.empty(m)
    for i in range(n):
        den = 0.0
        for k in range(m):
            num[k] = weights[i, k] * (local[i, k, places[i] + 1] - local[i, k, places[i]])
            den += num[k]
        for k in range(m):
            out[i, k] = math.floor(num[k] * weight_one / max(den, 1.0)) if den > 0 else weights[i, k]
    return out
