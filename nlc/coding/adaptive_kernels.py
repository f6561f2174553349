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
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .exact_kernels import level_cdf


@njit(cache=True)
def shift_kernel(weights, log_scales, levels, inv_table, inv_steps, inv_const, errors, tiles, r, c, ch, current,
                 coeffs, gain, dr, dc, pad, classes, log_127_5, t_one, coeff_bits, delta_clip, shift_scale,
                 shift_clip, mean_unit, use_neighbours, cross, gate, pixels, use_pixels, t_scale, t_clip):
    """One channel's shifted means: returns (levels to code with, moved levels, features, classes,
    mixture means in 2^-10 levels, inverse scales of the mixtures' typical scale, activity classes).

    With ``use_pixels`` the features end with the neighbours' coded values relative to this pixel's
    mixture mean, normalised like the errors (``pixels`` holds value + 1, 0 where not coded)."""
    n, m = weights.shape
    out = np.empty((n, m))
    moved = np.empty((n, m))
    f = np.empty((n, coeffs.shape[1]), np.int64)
    cls = np.empty(n, np.int64)
    mean = np.empty(n)
    inv = np.empty(n)
    act = np.empty(n, np.int64)
    shift_into(weights, log_scales, levels, inv_table, inv_steps, inv_const, errors, tiles, r, c, ch, current, coeffs,
               gain, dr, dc, pad, classes, log_127_5, t_one, coeff_bits, delta_clip, shift_scale, shift_clip, mean_unit,
               use_neighbours, cross, gate, pixels, use_pixels, t_scale, t_clip, out, moved, f, cls, mean, inv, act)
    return out, moved, f, cls, mean, inv, act


@njit(cache=True)
def shift_into(weights, log_scales, levels, inv_table, inv_steps, inv_const, errors, tiles, r, c, ch, current,
               coeffs, gain, dr, dc, pad, classes, log_127_5, t_one, coeff_bits, delta_clip, shift_scale,
               shift_clip, mean_unit, use_neighbours, cross, gate, pixels, use_pixels, t_scale, t_clip, out, moved,
               f, cls, mean, inv, act):
    """:func:`shift_kernel` into the given arrays (``out``, ``moved`` ``(n, M)``, ``f`` ``(n, d)``, ``cls``,
    ``mean``, ``inv``, ``act`` ``(n,)``; their old contents unread): the compiled step loop's, which
    reuses them from step to step instead of allocating."""
    n, m = weights.shape
    channels = errors.shape[1]
    d = coeffs.shape[1]
    for i in range(n):
        for k in range(m):
            out[i, k] = levels[i, k]
            moved[i, k] = levels[i, k]
        for q in range(d):
            f[i, q] = 0
        cls[i] = 0
        act[i] = 0
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
        if use_pixels:
            for q in range(dr.shape[0]):
                v = pixels[tile, ch, r + pad + dr[q], c + pad + dc[q]]
                if v > 0:
                    ti = math.floor(((v - 1) * 1024.0 - mean[i]) * inv[i] * t_scale)
                    f[i, j] = int(min(max(ti, -t_clip), t_clip))
                j += 1
        activity = 0  # |t| of W, N, NW, NE: the scale's context, floor(log2) - 5 clipped to [0, 5]
        for q in range(1, 5):
            activity += abs(f[i, q])
        if activity > 0:
            act[i] = min(max(math.frexp(float(activity))[1] - 6, 0), 5)
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


@intrinsic
def _to_bits(typingctx, x):
    """A float64's IEEE bits as an int64."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def _from_bits(typingctx, u):
    """The float64 whose IEEE bits are the int64 ``u``."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


_NORMAL = 2.0**-1000  # far above the subnormals: the bits' rounding below holds from here up


@njit(cache=True)
def _round_significant(x, bits):
    """``x > 0`` rounded half up to ``bits`` significant bits (as the inverse-scale table's entries):
    ``floor(m 2^bits + 0.5) 2^(e - bits)`` for ``x = m 2^e``, ``0.5 <= m < 1``. For a normal ``x`` that
    is adding half a unit of the last kept bit to the IEEE bits and clearing the bits below it (a carry
    into the exponent is the next power of two, as the floor gives); ``tests/coding/test_adaptive.py``
    checks it against the definition."""
    if x < _NORMAL:
        mant, ex = math.frexp(x)
        return math.ldexp(math.floor(mant * 2.0**bits + 0.5), ex - bits)
    drop = 53 - bits
    u = _to_bits(x) + (np.int64(1) << (drop - 1))
    return _from_bits(u & ~((np.int64(1) << drop) - 1))


@njit(cache=True)
def scaled_inverse(inv_scales, factor, bits):
    """Every component's inverse scale times ``factor``, rounded to ``bits`` significant bits."""
    n, m = inv_scales.shape
    out = np.empty((n, m))
    for i in range(n):
        for k in range(m):
            out[i, k] = _round_significant(inv_scales[i, k] * factor, bits)
    return out


@njit(cache=True)
def scale_kernel(inv_scales, cls, act, losses, factors, neutral, bits):
    """The inverse scales to code with: per pixel, the factor whose decayed code length in its context
    (``losses[class, activity, q]``) is the least, the neutral factor unless another is strictly less."""
    out = np.empty(inv_scales.shape)
    scale_into(inv_scales, cls, act, losses, factors, neutral, bits, out)
    return out


@njit(cache=True)
def scale_into(inv_scales, cls, act, losses, factors, neutral, bits, out):
    """:func:`scale_kernel` into ``out`` ``(n, M)`` (its old contents unread)."""
    n, m = inv_scales.shape
    for i in range(n):
        for k in range(m):
            out[i, k] = inv_scales[i, k]
    for i in range(n):
        row = losses[cls[i], act[i]]
        best = neutral
        for q in range(factors.shape[0]):
            if row[q] < row[best]:
                best = q
        if best != neutral:
            for k in range(m):
                out[i, k] = _round_significant(inv_scales[i, k] * factors[best], bits)
    return out

@njit(cache=True)
def _probability(weights, levels, inv_scales, value, i, cdf_table, cdf_steps, cdf_const, one, floor_):
    """The mixture's probability of ``value`` for pixel ``i`` as the integer numerator of the exact
    tables (:mod:`nlc.coding.exact_tables`: component CDFs from the table at the value's two bin
    edges, positions formed exactly as there, the uniform floor added)."""
    total = 0.0
    wsum = 0.0
    for k in range(weights.shape[1]):
        upper = level_cdf(inv_scales[i, k], levels[i, k], value, cdf_table, cdf_steps, cdf_const, one)
        lower = level_cdf(inv_scales[i, k], levels[i, k], value - 1, cdf_table, cdf_steps, cdf_const, one)
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
def _decay(x, forget_bits):
    """Every value of the contiguous ``x`` less its ``2^-forget_bits`` part (floored), in place: one flat
    loop, which vectorizes."""
    flat = x.reshape(-1)
    for t in range(flat.shape[0]):
        flat[t] -= flat[t] >> forget_bits


@njit(cache=True)
def _same_row(a, b, i):
    """Whether row ``i`` of ``a`` and of ``b`` hold the same values."""
    for k in range(a.shape[1]):
        if a[i, k] != b[i, k]:
            return False
    return True


@njit(cache=True)
def observe_kernel(values, f, cls, mean, inv, weights, levels, moved, inv_scales, errors, tiles, r, c, ch, pad,
                   gram, moment, gain, t_scale, t_clip, forget_bits, ridge, cdf_table, cdf_steps, cdf_const, one,
                   floor_, log2_table, log_in_bits, log_bits, pixels, act, coded, base_inv, losses, factors, bits,
                   use_scale, coded_mass):
    """Learn from one channel's coded ``values``: store the normalised errors (and the values), decay and
    update the least-squares statistics and the gate, and with ``use_scale`` each scale factor's code
    length in the pixel's context (under the means ``coded`` the tables used). Returns the errors ``t``.

    ``coded_mass`` ``(n,)`` is each value's mixture mass under the tables it was coded with (means
    ``coded``, inverse scales ``inv_scales``: the lazy tables' place stage has it), or negative where not
    known: a probability asked for under exactly those means and scales is that mass plus the floor, the
    same integer that the lookups give."""
    t = np.empty(values.shape[0], np.int64)
    observe_into(values, f, cls, mean, inv, weights, levels, moved, inv_scales, errors, tiles, r, c, ch, pad, gram,
                 moment, gain, t_scale, t_clip, forget_bits, ridge, cdf_table, cdf_steps, cdf_const, one, floor_,
                 log2_table, log_in_bits, log_bits, pixels, act, coded, base_inv, losses, factors, bits, use_scale,
                 coded_mass, t, np.empty(weights.shape[1]))
    return t


@njit(cache=True)
def observe_into(values, f, cls, mean, inv, weights, levels, moved, inv_scales, errors, tiles, r, c, ch, pad,
                 gram, moment, gain, t_scale, t_clip, forget_bits, ridge, cdf_table, cdf_steps, cdf_const, one,
                 floor_, log2_table, log_in_bits, log_bits, pixels, act, coded, base_inv, losses, factors, bits,
                 use_scale, coded_mass, t, scaled):
    """:func:`observe_kernel` with the errors written to ``t`` ``(n,)`` and ``scaled`` ``(M,)`` scratch."""
    n = values.shape[0]
    classes, d = moment.shape
    _decay(gram, forget_bits)
    _decay(moment, forget_bits)
    for k in range(classes):
        for a in range(d):
            gram[k, a, a] += ridge
    _decay(gain, forget_bits)
    if use_scale:
        _decay(losses, forget_bits)
    nq = factors.shape[0]
    m = weights.shape[1]
    for i in range(n):
        pixels[tiles[i], ch, r + pad, c + pad] = values[i] + 1
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
        wsum = 0.0
        for j in range(m):
            wsum += weights[i, j]
        known = coded_mass[i] >= 0.0
        if known and _same_row(moved, coded, i):
            p1 = coded_mass[i] + wsum * floor_
        else:
            p1 = _probability(weights, moved, inv_scales, values[i], i, cdf_table, cdf_steps, cdf_const, one, floor_)
        if known and _same_row(levels, coded, i):
            p0 = coded_mass[i] + wsum * floor_
        else:
            p0 = _probability(weights, levels, inv_scales, values[i], i, cdf_table, cdf_steps, cdf_const, one, floor_)
        gain[k] += _log2(p1, log2_table, log_in_bits, log_bits) - _log2(p0, log2_table, log_in_bits, log_bits)
        if use_scale:  # the value's probability under each factor (the exact tables' formula)
            for q in range(nq):
                for j in range(m):
                    scaled[j] = _round_significant(base_inv[i, j] * factors[q], bits)
                same = known
                for j in range(m):
                    same = same and scaled[j] == inv_scales[i, j]
                if same:  # the scales the value was coded with
                    total = coded_mass[i]
                else:
                    total = 0.0
                    for j in range(m):
                        upper = level_cdf(scaled[j], coded[i, j], values[i], cdf_table, cdf_steps, cdf_const, one)
                        lower = level_cdf(scaled[j], coded[i, j], values[i] - 1, cdf_table, cdf_steps, cdf_const, one)
                        total += weights[i, j] * (upper - lower)
                losses[k, act[i], q] -= _log2(total + wsum * floor_, log2_table, log_in_bits, log_bits)


@njit(cache=True)
def solve_kernel(gram, moment, coeff_bits):
    """Every class's least-squares coefficients ``(K, d)`` from its statistics, rounded half up to
    ``2^-coeff_bits``: ``A x = b`` by Gaussian elimination with the operations, order and skips of
    :func:`nlc.coding.adaptive._solve` (IEEE doubles, no fast-math: the same numbers)."""
    classes, d = moment.shape
    out = np.zeros((classes, d), np.int64)
    for k in range(classes):
        a = np.empty((d, d))
        b = np.empty(d)
        for i in range(d):
            b[i] = float(moment[k, i])
            for j in range(d):
                a[i, j] = float(gram[k, i, j])
        for p in range(d):
            pivot = a[p, p]
            for i in range(p + 1, d):
                f = a[i, p] / pivot
                if f != 0.0:
                    for j in range(p, d):
                        a[i, j] = a[i, j] - f * a[p, j]
                    b[i] = b[i] - f * b[p]
        x = np.zeros(d)
        for i in range(d - 1, -1, -1):
            s = b[i]
            for j in range(i + 1, d):
                s = s - a[i, j] * x[j]
            x[i] = s / a[i, i]
        for i in range(d):
            out[k, i] = np.int64(math.floor(x[i] * 2.0**coeff_bits + 0.5))
    return out
