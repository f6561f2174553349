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
clamped); sums of grid values are clamped to ``+-LIMIT``. Only the matrix
products (:func:`products`) reassociate and fuse their exact sums; the rest has
no fast-math (the rounding of :func:`round_half_even` depends on it): the
same numbers as the numpy steps, which ``tests/models/test_exact.py`` checks on every
pixel of images, and the golden files decode with it.
"""

from __future__ import annotations

import decimal
import math

import numpy as np
from numba import njit

from .blas import contiguous, products_blas

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
    """:func:`nlc.fixed.snap_array` of one value: rounded half to even to ``1/unit``, clamped to ``+-limit``.
    Clamped first, to the integer ``limit * unit``, which gives what rounding first gives (rounding is
    monotone and keeps integers) and leaves a value far below ``2^51``, where adding and subtracting
    ``1.5 * 2^52`` rounds it exactly: no branch, so loops over it vectorize."""
    top = limit * unit
    y = min(max(x * unit, -top), top)
    return ((y + _MAGIC) - _MAGIC) * (1.0 / unit)  # unit is a power of two: exact


@njit(cache=True)
def _clamp(x, limit):
    return min(max(x, -limit), limit)


@njit(cache=True)
def lut_at(table, scale, offset, x):
    """:meth:`nlc.fixed.Lut.at` of one value: the position truncated, then clamped to the table."""
    i = min(max(np.int64(x * scale + offset), 0), table.shape[0] - 1)
    return table[np.uint64(i)]  # (unsigned: no wrap-around test, so loops over it vectorize)


def _exp_table(start: int, step_bits: int, sign: int, n: int) -> np.ndarray:
    """``exp(start + sign * i / 2^step_bits)`` for ``i < n``, each correctly rounded to float64 (50-digit
    :mod:`decimal` arithmetic: the same table on every machine)."""
    ctx = decimal.Context(prec=50)
    value = ctx.exp(decimal.Decimal(start))
    ratio = ctx.exp(ctx.divide(decimal.Decimal(sign), decimal.Decimal(2**step_bits)))
    out = np.empty(n)
    for i in range(n):
        out[i] = float(value)
        value = ctx.multiply(value, ratio)
    return out


# Factors of exp at the positions of the ELU table (nlc.fixed.elu_lut), small enough for the first-level
# cache: the big table's 1.5 MB of entries, read at random, cost a trip to the last-level cache each (a
# quarter of a Kodak row's vertical stream). Entry i of the table, exp(-12 + i / 2^14) - 1 on the 2^-16 grid,
# is _ELU_HI[i >> 7] * _ELU_LO[i & 127] - 1 rounded to the grid: the factors are correctly rounded and the
# rest is IEEE arithmetic without fast-math, so every machine computes the same doubles, and
# tests/models/test_exact_steps.py checks that they round to the table's value at every entry (the
# closest to a rounding tie is 4e-7 of a grid unit away, the doubles' error below 1e-10). (The gates'
# sigmoid the same way needs a division, which does not vectorize here: 4.6 ns a gate against 2.6 ns
# with the table.)
_ELU_HI = _exp_table(-12, 7, 1, 1537)
_ELU_LO = _exp_table(0, 14, 1, 128)


@njit(cache=True)
def elu_neg_at(table, scale, offset, x):
    """:func:`lut_at` of the ELU table (:func:`nlc.fixed.elu_lut`), computed from two small tables of
    factors (see ``_ELU_HI``): the same value, without the big table's cache misses."""
    i = min(max(np.int64(x * scale + offset), 0), table.shape[0] - 1)
    z = (_ELU_HI[np.uint64(i >> 7)] * _ELU_LO[np.uint64(i & 127)] - 1.0) * 65536.0
    return ((z + _MAGIC) - _MAGIC) * (1.0 / 65536.0)


@njit(cache=True)
def _elu(x, table, scale, offset):
    return elu_neg_at(table, scale, offset, x) + max(x, 0.0)


BLAS_MIN_TILES = 4  # a step's products through BLAS from this many tiles: PixelCNN++'s step per pixel, 16 tiles of
# 128 2.75 -> 2.11 us, 3 tiles 2.76 -> 2.66, one tile 3.81 -> 4.21 (its small layers cost more through BLAS's calls;
# scratch runs/s16/pstep.py, loops and BLAS alternated in one process, medians of five)


@njit(cache=True, nogil=True)
def products(x, wt, bias, out, blas=0):
    """``out[b, j] = bias[j] + sum_k x[b, k] * wt[j, k]``: each tile's activations ``x`` ``(B, K)`` times a
    layer's weights ``wt`` ``(J, K)`` (one output per row). With ``blas`` (:func:`~nlc.models.blas.dgemm_address`,
    not 0) and :data:`BLAS_MIN_TILES` tiles or more one BLAS product, else :func:`_products_loops`: exact sums,
    so the same numbers."""
    if blas != 0 and x.shape[0] >= BLAS_MIN_TILES and contiguous(x) and contiguous(wt) and contiguous(out):
        for b in range(x.shape[0]):
            for j in range(wt.shape[0]):
                out[b, j] = bias[j]
        products_blas(blas, x, wt, out)
    else:
        _products_loops(x, wt, bias, out)


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _products_loops(x, wt, bias, out):
    """:func:`products` in numba's loops: three tiles share each pass over a weight row, and the sums run
    along it in vector partial sums: exact sums of exact products are the same in any order, so
    reassociating and fusing them (this function's only fast-math flags) changes no number."""
    nb, kk = x.shape
    jj = wt.shape[0]
    b = 0
    while b + 3 <= nb:
        x0, x1, x2 = x[b], x[b + 1], x[b + 2]
        for j in range(jj):
            w = wt[j]
            s0 = 0.0
            s1 = 0.0
            s2 = 0.0
            for k in range(kk):
                v = w[k]
                s0 += x0[k] * v
                s1 += x1[k] * v
                s2 += x2[k] * v
            out[b, j] = s0 + bias[j]
            out[b + 1, j] = s1 + bias[j]
            out[b + 2, j] = s2 + bias[j]
        b += 3
    while b < nb:
        x0 = x[b]
        for j in range(jj):
            w = wt[j]
            s0 = 0.0
            for k in range(kk):
                s0 += x0[k] * w[k]
            out[b, j] = s0 + bias[j]
        b += 1


@njit(cache=True, nogil=True)
def _input_layer(xs, row, cl, c, w_in, b_in, vertical, h, unit, limit, blas=0):
    """``h`` ``(B, C)`` = the horizontal stream's input: the layer over the three pixels left of column ``cl``
    (``(column, channel)`` order) rounded, plus the vertical stream's ``vertical[:, c]``, clamped."""
    nb, nc = h.shape
    win = np.empty((nb, w_in.shape[1]))
    for b in range(nb):
        for k in range(3):
            for ch in range(4):
                win[b, k * 4 + ch] = xs[b, ch, row, cl - 3 + k]
    acc = np.empty((nb, nc))
    products(win, w_in, b_in, acc, blas)
    for b in range(nb):
        for j in range(nc):
            h[b, j] = _clamp(_snap(acc[b, j], unit, limit) + vertical[b, c, j], limit)


@njit(cache=True, nogil=True)
def _head_and_skip(features, w_head, b_head, xs, row, cl, c, above, nw, w_left, unit, limit, blas=0):
    """The mixture parameters ``(B, P)``: the head over ``features`` plus the neighbourhood skip (its part
    from the rows above, ``above[:, c]``, and its left features: W, WW, ``|W - NW|`` and ``|W - WW|`` of
    the colours), summed exactly and rounded once."""
    nb, npar = features.shape[0], b_head.shape[0]
    left = np.empty((nb, w_left.shape[1]))
    for b in range(nb):
        for ch in range(4):
            left[b, ch] = xs[b, ch, row, cl - 1]
            left[b, 4 + ch] = xs[b, ch, row, cl - 2]
        for ch in range(3):
            left[b, 8 + ch] = abs(left[b, ch] - nw[b, c, ch])
            left[b, 11 + ch] = abs(left[b, ch] - left[b, 4 + ch])
    out = np.empty((nb, npar))
    products(features, w_head, b_head, out, blas)
    skip = np.empty((nb, npar))
    products(left, w_left, np.zeros(npar), skip, blas)
    for b in range(nb):
        for p in range(npar):
            out[b, p] = _snap(out[b, p] + above[b, c, p] + skip[b, p], unit, limit)
    return out


@njit(cache=True, nogil=True)
def pixel_step(xs, row, cl, c, w_in, b_in, hu, w1, b1, w2, b2, aux, prev0, prev1, head_wt, head_b, above, nw,
               w_left, elu_table, elu_scale, elu_offset, sig_table, sig_scale, sig_offset, unit, limit, blas=0):
    """Mixture parameters ``(B, P)`` of pixel column ``c`` of every tile, as ``PixelStepper.params`` computes them.

    ``xs`` ``(B, 4, H', W')`` is the pixel buffer (row ``row``, column ``cl`` of
    the pixel); every weight matrix is laid out one output per row (see
    :func:`products`): ``w_in`` ``(C, 12)``/``b_in`` the input layer; ``hu``
    ``(B, W, C)`` the vertical stream's projection of the row; ``w1`` ``(L, C,
    2C)``, ``b1``, ``w2`` ``(L, 2C, 2C)``, ``b2`` the gate blocks' two layers
    stacked; ``aux`` ``(L, B, W, C)`` their vertical inputs; ``prev0``/``prev1``
    ``(L, B, C)`` each block's inputs at the previous column (updated in
    place); ``head_wt`` ``(P, C)``, ``head_b`` the head; ``above`` ``(B, W,
    P)``, ``nw`` ``(B, W, 4)``, ``w_left`` ``(P, 14)`` the neighbourhood skip; ``blas``
    :func:`~nlc.models.blas.dgemm_address` (0: the products in numba's loops; the same numbers).
    """
    nb, nc = xs.shape[0], b_in.shape[0]
    nl = w1.shape[0]
    h = np.empty((nb, nc))
    cat = np.empty((nb, 2 * nc))  # a layer's input: the block's input at the previous column, then this one's
    acc = np.empty((nb, 2 * nc))
    _input_layer(xs, row, cl, c, w_in, b_in, hu, h, unit, limit, blas)
    for lay in range(nl):
        for b in range(nb):
            for j in range(nc):
                cat[b, j] = prev0[lay, b, j]
                e = _elu(h[b, j], elu_table, elu_scale, elu_offset)
                cat[b, nc + j] = e
                prev0[lay, b, j] = e
        products(cat, w1[lay], b1[lay], acc, blas)
        for b in range(nb):
            for j in range(nc):
                s = _clamp(_snap(acc[b, j], unit, limit) + aux[lay, b, c, j], limit)
                cat[b, j] = prev1[lay, b, j]
                c1 = _elu(s, elu_table, elu_scale, elu_offset)
                cat[b, nc + j] = c1
                prev1[lay, b, j] = c1
        products(cat, w2[lay], b2[lay], acc, blas)
        for b in range(nb):
            for j in range(nc):
                a = _snap(acc[b, j], unit, limit)
                g = _snap(acc[b, nc + j], unit, limit)
                h[b, j] = _clamp(_snap(a * lut_at(sig_table, sig_scale, sig_offset, g), unit, limit) + h[b, j], limit)
    for b in range(nb):
        for j in range(nc):
            h[b, j] = _elu(h[b, j], elu_table, elu_scale, elu_offset)
    return _head_and_skip(h, head_wt, head_b, xs, row, cl, c, above, nw, w_left, unit, limit, blas)


@njit(cache=True, nogil=True)
def gated_step(xs, row, cl, c, w_in, b_in, link_in, w_h, b_h, links, prev, w_skip, b_skip, w_res, b_res, w_out, b_out,
               w_head, b_head, above, nw, w_left, tanh_table, tanh_scale, tanh_offset, sig_table, sig_scale,
               sig_offset, unit, limit):
    """Mixture parameters ``(B, P)`` of pixel column ``c`` of every tile for an exact Gated PixelCNN, as
    ``GatedStepper.params`` computes them in numpy.

    Weights one output per row (see :func:`products`): ``w_in`` ``(C, 12)`` the horizontal input; per
    layer (stacked on axis 0) ``w_h`` ``(2C, 2C)`` the ``1 x 2`` convolution over the previous and the
    current column, ``w_skip`` ``(S, C)``, ``w_res`` ``(C, C)``; ``w_out`` ``(S, S)``, ``w_head``
    ``(P, S)``; ``link_in`` ``(B, W, C)`` and ``links`` ``(L, B, W, 2C)`` the vertical stack's row;
    ``prev`` ``(L, B, C)`` each layer's input at the previous column (updated in place); ``above``,
    ``nw``, ``w_left`` ``(P, 14)`` the neighbourhood skip.
    """
    nb, nc = xs.shape[0], b_in.shape[0]
    nl, ns = w_h.shape[0], b_out.shape[0]
    h = np.empty((nb, nc))
    cat = np.empty((nb, 2 * nc))
    pre = np.empty((nb, 2 * nc))
    g = np.empty((nb, nc))
    proj = np.empty((nb, max(ns, nc)))
    skip = np.zeros((nb, ns))
    _input_layer(xs, row, cl, c, w_in, b_in, link_in, h, unit, limit)
    for lay in range(nl):
        for b in range(nb):
            for j in range(nc):
                cat[b, j] = prev[lay, b, j]
                cat[b, nc + j] = h[b, j]
                prev[lay, b, j] = h[b, j]
        products(cat, w_h[lay], b_h[lay], pre)
        for b in range(nb):
            for j in range(nc):
                a = _clamp(_snap(pre[b, j], unit, limit) + links[lay, b, c, j], limit)
                s = _clamp(_snap(pre[b, nc + j], unit, limit) + links[lay, b, c, nc + j], limit)
                g[b, j] = _snap(lut_at(tanh_table, tanh_scale, tanh_offset, a)
                                * lut_at(sig_table, sig_scale, sig_offset, s), unit, limit)
        products(g, w_skip[lay], b_skip[lay], proj)
        for b in range(nb):
            for j in range(ns):
                skip[b, j] = _clamp(skip[b, j] + _snap(proj[b, j], unit, limit), limit)
        products(g, w_res[lay], b_res[lay], proj)
        for b in range(nb):
            for j in range(nc):
                h[b, j] = _clamp(h[b, j] + _snap(proj[b, j], unit, limit), limit)
    for b in range(nb):
        for j in range(ns):
            skip[b, j] = max(skip[b, j], 0.0)
    products(skip, w_out, b_out, proj)
    for b in range(nb):
        for j in range(ns):
            proj[b, j] = max(_snap(proj[b, j], unit, limit), 0.0)
    return _head_and_skip(proj[:, :ns], w_head, b_head, xs, row, cl, c, above, nw, w_left, unit, limit)
