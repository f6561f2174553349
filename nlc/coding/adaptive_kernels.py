"""Compiled per-step kernels of the adaptive stage (:mod:`nlc.coding.adaptive`), through numba.

A step's arrays are small (one pixel per tile), so numpy's per-call cost
dominated: these loops do a channel's whole shift and update in one call
each. They compute the same numbers as the operations they replace: every
value is an integer or a correctly rounded division of exact operands (no
fast-math, so the compiler neither reorders nor fuses), and the sums are of
integers below ``2^53``. The golden files written before the kernels existed
decode with them.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def shift_kernel(weights, log_scales, levels, inv_table, inv_steps, inv_const, errors, tiles, r, c, ch, current,
                 coeffs, gain, dr, dc, pad, classes, log_127_5, t_one, coeff_bits, delta_clip, shift_scale,
                 shift_clip, mean_unit, use_neighbours, cross, gate):
    """One channel's shifted means: returns (levels to code with, moved levels, features, classes,
    mixture means in 2^-10 levels, inverse scales of the mixtures' typical scale)."""
    n, m = weights.shape
    channels = errors.shape[1]
    d = coeffs.shape[1]
    out = levels.copy()
    moved = levels.copy()
    f = np.zeros((n, d), np.int64)
    cls = np.zeros(n, np.int64)
    mean = np.zeros(n)
    inv = np.zeros(n)
    last = inv_table.shape[0] - 1
    for i in range(n):
        den = 0.0
        num_ls = 0.0
        num_mu = 0.0
        for k in range(m):
            den += weights[i, k]
            num_ls += weights[i, k] * np.round(log_scales[i, k] * 65536.0)
            num_mu += weights[i, k] * np.round(levels[i, k] * 1024.0)
        lsm = math.floor(num_ls / den)
        cl = math.floor((lsm + log_127_5) / 65536.0)
        cl = min(max(cl, 0.0), classes - 1.0)
        cls[i] = int(cl)
        pos = int(lsm / 65536.0 * inv_steps + inv_const)
        inv[i] = inv_table[min(max(pos, 0), last)]
        mean[i] = math.floor(num_mu / den)
        tile = tiles[i]
        f[i, 0] = t_one
        j = 1
        for q in range(dr.shape[0]):
            if use_neighbours:
                f[i, j] = errors[tile, ch, r + pad + dr[q], c + pad + dc[q]]
            j += 1
        for other in range(channels):
            if other != ch:
                if cross:
                    f[i, j] = errors[tile, other, r + pad + dr[0], c + pad + dc[0]]
                    f[i, j + 1] = errors[tile, other, r + pad + dr[1], c + pad + dc[1]]
                j += 2
        for q in range(current.shape[1]):
            f[i, j] = current[i, q]
            j += 1
        acc = 0
        for q in range(d):
            acc += f[i, q] * coeffs[cls[i], q]
        delta = min(max(acc >> coeff_bits, -delta_clip), delta_clip)
        shift = math.floor(delta * shift_scale / inv[i] + 0.5)
        shift = min(max(shift, -shift_clip), shift_clip)
        open_ = (not gate) or gain[cls[i]] > 0
        for k in range(m):
            moved[i, k] = levels[i, k] + shift * mean_unit
            if open_:
                out[i, k] = moved[i, k]
    return out, moved, f, cls, mean, inv


@njit(cache=True)
def _probability(weights, levels, inv_scales, value, i, cdf_table, cdf_steps, cdf_const, one, floor_):
    """The mixture's probability of ``value`` for pixel ``i`` as the integer numerator of the exact
    tables (:mod:`nlc.coding.exact_tables`: component CDFs from the table at the value's two bin
    edges, positions formed exactly as there, the uniform floor added)."""
    m = weights.shape[1]
    last = cdf_table.shape[0] - 1
    total = 0.0
    wsum = 0.0
    v = float(value)
    for k in range(m):
        d = inv_scales[i, k] * cdf_steps
        a = (0.5 - levels[i, k]) * d + cdf_const
        if value >= 255:
            upper = one
        else:
            upper = cdf_table[min(max(int(a + v * d), 0), last)]
        if value <= 0:
            lower = 0.0
        else:
            lower = cdf_table[min(max(int(a + (v - 1.0) * d), 0), last)]
        total += weights[i, k] * (upper - lower)
        wsum += weights[i, k]
    return total + wsum * floor_


@njit(cache=True)
def _log2(p, log2_table, in_bits, log_bits):
    """``log2 p`` of a positive integer in ``2^-log_bits`` units, the mantissa truncated to ``in_bits``."""
    mant, ex = math.frexp(p)
    idx = int(mant * 2.0**in_bits) - (1 << (in_bits - 1))
    return ex * (1 << log_bits) + log2_table[idx]


@njit(cache=True)
def observe_kernel(values, f, cls, mean, inv, weights, levels, moved, inv_scales, errors, tiles, r, c, ch, pad,
                   gram, moment, gain, t_scale, t_clip, forget_bits, ridge, cdf_table, cdf_steps, cdf_const, one,
                   floor_, log2_table, log_in_bits, log_bits):
    """Learn from one channel's coded ``values``: store the normalised errors, decay and update the
    least-squares statistics and the gate. Returns the errors ``t``."""
    n = values.shape[0]
    classes, d = moment.shape
    t = np.zeros(n, np.int64)
    for k in range(classes):
        for a in range(d):
            for b in range(d):
                gram[k, a, b] -= gram[k, a, b] >> forget_bits
            gram[k, a, a] += ridge
            moment[k, a] -= moment[k, a] >> forget_bits
        gain[k] -= gain[k] >> forget_bits
    for i in range(n):
        e = float(values[i]) * 1024.0 - mean[i]
        ti = math.floor(e * inv[i] * t_scale)
        ti = min(max(ti, -t_clip), t_clip)
        t[i] = int(ti)
        errors[tiles[i], ch, r + pad, c + pad] = t[i]
        k = cls[i]
        for a in range(d):
            for b in range(d):
                gram[k, a, b] += f[i, a] * f[i, b]
            moment[k, a] += f[i, a] * t[i]
        p1 = _probability(weights, moved, inv_scales, values[i], i, cdf_table, cdf_steps, cdf_const, one, floor_)
        p0 = _probability(weights, levels, inv_scales, values[i], i, cdf_table, cdf_steps, cdf_const, one, floor_)
        gain[k] += _log2(p1, log2_table, log_in_bits, log_bits) - _log2(p0, log2_table, log_in_bits, log_bits)
    return t
