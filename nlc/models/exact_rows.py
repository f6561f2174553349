"""A whole row of an exact PixelCNN++'s per-pixel steps at once, for an encoder that knows every pixel.

The decoder must run :func:`~nlc.models.exact_steps.pixel_step` column by
column: each pixel's parameters need the pixels left of it, which it decodes
one at a time. An encoder has them all, and the horizontal stream reads only
its own column and the one before it (each gated block's two ``1 x 2``
layers), so :func:`row_params` computes every column of a row together: each
layer one matrix product over all the row's positions (the vertical stream's
:func:`~nlc.models.vertical_kernel._gemm`, positions along the inner loop)
instead of a product per pixel over a batch of three tiles. The numbers are
the steps', bit for bit: every product sum is exact, so its order does not
matter, and the element-wise rules (rounding half to even onto the grid,
clamping, the ELU and sigmoid tables) are the same functions applied in the
same order (``tests/models/test_exact_rows.py``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .exact_steps import _clamp, _elu, _snap, lut_at
from .vertical_kernel import _fill_bias, _gemm, _gemm_tap


@njit(cache=True, nogil=True)
def _layer(a, w_out_rows, bias, blas):
    """``bias + w a`` for activations ``a`` ``(K, P)`` (channel-first) and a layer's weights laid out one
    output per row ``(J, K)``: ``(J, P)``."""
    out = np.empty((w_out_rows.shape[0], a.shape[1]))
    _fill_bias(out, bias)
    _gemm(a, np.ascontiguousarray(w_out_rows.T), 0, out, blas)
    return out


@njit(cache=True, nogil=True)
def _causal_layer(e, w_out_rows, bias, ncols, blas):
    """``bias + w [e at the previous column; e]`` for ``e`` ``(C, P)`` (positions ``b * ncols + c``, the
    previous column zero in a row's first): a gated block's ``1 x 2`` layer, the previous column's
    product read in place, shifted by one (:func:`_gemm_tap`), instead of laid out first."""
    nc, npos = e.shape
    wt = np.ascontiguousarray(w_out_rows.T)  # (2C, J): the previous column's rows, then the pixel's own
    out = np.empty((w_out_rows.shape[0], npos))
    _fill_bias(out, bias)
    nb = npos // ncols
    _gemm_tap(e, 0, wt, 0, out, nb, ncols, ncols, -1, 1, ncols, blas)
    _gemm_tap(e, 0, wt, nc, out, nb, ncols, ncols, 0, 0, ncols, blas)
    return out


@njit(cache=True, nogil=True)
def _channel_first(a, ncols):
    """``(B, W, C)`` rows of the vertical stream as ``(C, B * ncols)``, the first ``ncols`` columns."""
    nb, _, nc = a.shape
    out = np.empty((nc, nb * ncols))
    for b in range(nb):
        for c in range(ncols):
            for j in range(nc):
                out[j, b * ncols + c] = a[b, c, j]
    return out


@njit(cache=True, nogil=True)
def row_params(xs, row, left, ncols, w_in, b_in, hu, w1, b1, w2, b2, aux, head_wt, head_b, above, nw, w_left,
               elu_table, elu_scale, elu_offset, sig_table, sig_scale, sig_offset, unit, limit, blas=0):
    """Mixture parameters ``(ncols, B, P)`` of columns ``0 .. ncols-1`` of pixel buffer row ``row`` (buffer
    columns from ``left``), each what :func:`~nlc.models.exact_steps.pixel_step` gives for it when the
    row's columns are stepped in order from the first (its previous-column inputs zero there). The
    arguments are :func:`pixel_step`'s (without its column and the per-layer previous inputs, which this
    computes); every pixel of the row and the rows above must be in ``xs``. ``blas``:
    :func:`~nlc.models.blas.dgemm_address` (0: the products in numba's loops; the same numbers)."""
    nb, nc = xs.shape[0], b_in.shape[0]
    nl = w1.shape[0]
    npos = nb * ncols  # position p = b * ncols + c
    win = np.empty((12, npos))
    for k in range(3):
        for ch in range(4):
            dst = win[k * 4 + ch]
            for b in range(nb):
                for c in range(ncols):
                    dst[b * ncols + c] = xs[b, ch, row, left + c - 3 + k]
    h = _layer(win, w_in, b_in, blas)
    vertical = _channel_first(hu, ncols)
    for j in range(nc):
        hj, vj = h[j], vertical[j]
        for p in range(npos):
            hj[p] = _clamp(_snap(hj[p], unit, limit) + vj[p], limit)
    e = np.empty((nc, npos))
    for lay in range(nl):
        for j in range(nc):
            hj, ej = h[j], e[j]
            for p in range(npos):
                ej[p] = _elu(hj[p], elu_table, elu_scale, elu_offset)
        acc = _causal_layer(e, w1[lay], b1[lay], ncols, blas)
        vertical = _channel_first(aux[lay], ncols)
        for j in range(nc):
            aj, vj, ej = acc[j], vertical[j], e[j]
            for p in range(npos):
                ej[p] = _elu(_clamp(_snap(aj[p], unit, limit) + vj[p], limit), elu_table, elu_scale, elu_offset)
        acc = _causal_layer(e, w2[lay], b2[lay], ncols, blas)
        for j in range(nc):  # the gates: the table's lookups first, alone, so that the products' loop vectorizes
            aj, gj, hj = acc[j], acc[nc + j], h[j]
            for p in range(npos):
                gj[p] = lut_at(sig_table, sig_scale, sig_offset, _snap(gj[p], unit, limit))
            for p in range(npos):
                hj[p] = _clamp(_snap(_snap(aj[p], unit, limit) * gj[p], unit, limit) + hj[p], limit)
    for j in range(nc):
        hj = h[j]
        for p in range(npos):
            hj[p] = _elu(hj[p], elu_table, elu_scale, elu_offset)
    out = _layer(h, head_wt, head_b, blas)
    lf = np.empty((14, npos))
    for b in range(nb):
        for c in range(ncols):
            p = b * ncols + c
            cl = left + c
            for ch in range(4):
                lf[ch, p] = xs[b, ch, row, cl - 1]
                lf[4 + ch, p] = xs[b, ch, row, cl - 2]
            for ch in range(3):
                lf[8 + ch, p] = abs(lf[ch, p] - nw[b, c, ch])
                lf[11 + ch, p] = abs(lf[ch, p] - lf[4 + ch, p])
    skip = _layer(lf, w_left, np.zeros(w_left.shape[0]), blas)
    npar = head_b.shape[0]
    params = np.empty((ncols, nb, npar))
    for b in range(nb):
        for c0 in range(0, ncols, 8):  # blocks of 8 columns: their rows of ``params`` stay in the cache
            c1 = min(c0 + 8, ncols)
            for q in range(npar):
                for c in range(c0, c1):
                    p = b * ncols + c
                    params[c, b, q] = _snap(out[q, p] + above[b, c, q] + skip[q, p], unit, limit)
    return params
