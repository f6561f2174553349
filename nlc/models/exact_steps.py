"""A compiled kernel for one per-pixel step of an exact PixelCNN++ (its horizontal stream, head and skip).

An exact model's decoder evaluates the horizontal stream once per pixel for
a batch of tiles: a few small matrix products and a few dozen element-wise
operations, each a numpy call on a ``(B, 32)`` array, so the calls' overhead
costs more than their arithmetic. :func:`pixel_step` does the whole step in
one call with the rules of :class:`~nlc.models.exact.NumpyExactArithmetic`:
every product sum is exact (weights with 14 significant bits per output
channel on activations of the ``2^-16`` grid), so its order does not matter;
each linear output is rounded half to even onto the grid and clamped; ELU and
the gate's sigmoid are the same table lookups (positions truncated, then
clamped); sums of grid values are clamped to ``+-LIMIT``. No fast-math: the
same numbers as the numpy steps, which ``tests/models/test_exact.py`` checks on every
pixel of images, and the golden files decode with it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_MAGIC = 6755399441055744.0  # 1.5 * 2^52: adding and subtracting it rounds to an integer, half to even


@njit(cache=True)
def round_half_even(x):
    """``x`` rounded to an integer, half to even: IEEE addition in the default rounding mode does it for
    ``|x| < 2^51`` (no fast-math, so the two additions stay); larger doubles take the floor's path."""
    if -2251799813685248.0 < x < 2251799813685248.0:
        return (x + _MAGIC) - _MAGIC
    r = math.floor(x)
    diff = x - r
    if diff > 0.5 or (diff == 0.5 and r % 2.0 != 0.0):
        return r + 1.0
    return r


@njit(cache=True)
def _snap(x, unit, limit):
    """:func:`nlc.fixed.snap_array` of one value: rounded half to even to ``1/unit``, clamped to ``+-limit``."""
    y = round_half_even(x * unit)
    top = limit * unit
    if y > top:
        y = top
    elif y < -top:
        y = -top
    return y * (1.0 / unit)  # unit is a power of two: exact


@njit(cache=True)
def _clamp(x, limit):
    if x > limit:
        return limit
    if x < -limit:
        return -limit
    return x


@njit(cache=True)
def lut_at(table, scale, offset, x):
    """:meth:`nlc.fixed.Lut.at` of one value: the position truncated, then clamped to the table."""
    i = np.int64(x * scale + offset)
    if i < 0:
        i = 0
    elif i >= table.shape[0]:
        i = table.shape[0] - 1
    return table[i]


@njit(cache=True)
def _elu(x, table, scale, offset):
    return lut_at(table, scale, offset, x) + max(x, 0.0)


@njit(cache=True)
def pixel_step(xs, row, cl, c, w_in, b_in, hu, w1, b1, w2, b2, aux, prev0, prev1, head_wt, head_b, above, nw,
               w_left, elu_table, elu_scale, elu_offset, sig_table, sig_scale, sig_offset, unit, limit):
    """Mixture parameters ``(B, P)`` of pixel column ``c`` of every tile, as ``PixelStepper.params`` computes them.

    ``xs`` ``(B, 4, H', W')`` is the pixel buffer (row ``row``, column ``cl`` of
    the pixel); ``w_in``/``b_in`` the input layer; ``hu`` ``(B, W, C)`` the
    vertical stream's projection of the row; ``w1, b1, w2, b2`` the gate
    blocks' two layers stacked ``(L, ...)``; ``aux`` ``(L, B, W, C)`` their
    vertical inputs; ``prev0``/``prev1`` ``(L, B, C)`` each block's inputs at
    the previous column (updated in place); ``head_wt`` ``(C, P)``, ``head_b``
    the head; ``above`` ``(B, W, P)``, ``nw`` ``(B, W, 4)``, ``w_left`` the
    neighbourhood skip.
    """
    nb, nc = xs.shape[0], b_in.shape[0]
    nl, npar = w1.shape[0], head_b.shape[0]
    out = np.empty((nb, npar))
    h = np.empty(nc)
    e = np.empty(nc)
    c1 = np.empty(nc)
    acc = np.empty(2 * nc)
    win = np.empty(w_in.shape[0])
    left = np.empty(w_left.shape[0])
    for b in range(nb):
        for k in range(3):  # the window of the three pixels left of the current one: (column, channel)
            for ch in range(4):
                win[k * 4 + ch] = xs[b, ch, row, cl - 3 + k]
        acc[:nc] = 0.0
        for i in range(win.shape[0]):
            v = win[i]
            for j in range(nc):
                acc[j] += v * w_in[i, j]
        for j in range(nc):
            h[j] = _clamp(_snap(acc[j] + b_in[j], unit, limit) + hu[b, c, j], limit)
        for lay in range(nl):
            for j in range(nc):
                e[j] = _elu(h[j], elu_table, elu_scale, elu_offset)
            acc[:nc] = 0.0
            for i in range(nc):
                v = prev0[lay, b, i]
                for j in range(nc):
                    acc[j] += v * w1[lay, i, j]
            for i in range(nc):
                v = e[i]
                for j in range(nc):
                    acc[j] += v * w1[lay, nc + i, j]
            for j in range(nc):
                s = _clamp(_snap(acc[j] + b1[lay, j], unit, limit) + aux[lay, b, c, j], limit)
                c1[j] = _elu(s, elu_table, elu_scale, elu_offset)
            acc[:] = 0.0
            for i in range(nc):
                v = prev1[lay, b, i]
                for j in range(2 * nc):
                    acc[j] += v * w2[lay, i, j]
            for i in range(nc):
                v = c1[i]
                for j in range(2 * nc):
                    acc[j] += v * w2[lay, nc + i, j]
            for j in range(nc):
                a = _snap(acc[j] + b2[lay, j], unit, limit)
                g = _snap(acc[nc + j] + b2[lay, nc + j], unit, limit)
                h[j] = _clamp(_snap(a * lut_at(sig_table, sig_scale, sig_offset, g), unit, limit) + h[j], limit)
            for j in range(nc):
                prev0[lay, b, j] = e[j]
                prev1[lay, b, j] = c1[j]
        for j in range(nc):
            e[j] = _elu(h[j], elu_table, elu_scale, elu_offset)
        for ch in range(4):  # the skip's left features: W, WW, |W - NW| and |W - WW| of the colours
            left[ch] = xs[b, ch, row, cl - 1]
            left[4 + ch] = xs[b, ch, row, cl - 2]
        for ch in range(3):
            left[8 + ch] = abs(left[ch] - nw[b, c, ch])
            left[11 + ch] = abs(left[ch] - left[4 + ch])
        for p in range(npar):
            out[b, p] = 0.0
        for i in range(nc):
            v = e[i]
            for p in range(npar):
                out[b, p] += v * head_wt[i, p]
        for p in range(npar):
            out[b, p] = out[b, p] + head_b[p] + above[b, c, p]
        for i in range(w_left.shape[0]):
            v = left[i]
            for p in range(npar):
                out[b, p] += v * w_left[i, p]
        for p in range(npar):
            out[b, p] = _snap(out[b, p], unit, limit)
    return out
