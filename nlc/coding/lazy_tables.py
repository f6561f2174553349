"""One symbol of an exact stage table coded without building the table, compiled.

A pixel's value is coded in two stages of 16 symbols (:mod:`nlc.coding.exact_tables`:
its bucket of 16 levels, then its place in the bucket). Each stage's table is
the mixture's mass between consecutive edges plus a uniform floor, and
:func:`~nlc.coding.exact_kernels.outer_table` and
:func:`~nlc.coding.exact_kernels.inner_table` build all of it: every
component's CDF at 15 edges, 150 table lookups per stage for 10 components.
The coder reads two entries of the quantized CDF (the encoder, those of the
known symbol) or a bisection's four (the decoder), so this module computes
only the edges it reads.

The numbers are the full tables', bit for bit. Every table entry is an
integer below ``2^53`` (weights of at most ``2^16`` times CDFs of at most
``2^30``, ten components), so every sum the full path forms is exact whatever
its order: the running sum of the first ``s`` entries that the range coder's
quantization (:func:`~nlc.coding.range_kernels.quantized_cdf`) multiplies by
``(2^24 - K) / total`` is exactly ``M(s) - M(0) + s * wsum * floor * width``
(``M(e)`` the weighted mixture of the CDFs at edge ``e``), and ``total`` is
that at ``s = K``. The quantized CDF is then the same float product truncated
the same way, so the coder narrows to the same interval and writes the same
words (``tests/coding/test_lazy_tables.py`` codes random stages both ways,
and the golden files decode).

A stage's edge ``e`` (``0 .. K``) lies at the upper edge of level
``first + e * step - 1``: the bucket stage has ``first = 0, step = 16``
(edges below level 0 and above level 255 are the bounds 0 and ``2^30``), the
place stage ``first = 16 * bucket, step = 1``, its bounds the bucket's edges.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .exact_kernels import level_cdf
from .range_kernels import _TOTAL, decode_interval, decode_quantile, encode_interval


@njit(cache=True)
def edge_cdfs(weights, levels, inv_scales, i, v, cdf_table, steps, const, one, out):
    """Pixel ``i``'s component CDFs at the upper edge of level ``v`` into ``out`` ``(M,)``, as the full
    tables form them (:func:`~nlc.coding.exact_kernels.level_cdf`); returns their weighted sum ``M``, exact."""
    mix = 0.0
    for k in range(weights.shape[1]):
        out[k] = level_cdf(inv_scales[i, k], levels[i, k], v, cdf_table, steps, const, one)
        mix += weights[i, k] * out[k]
    return mix


@njit(cache=True)
def _quantized(mix, mix0, e, floor_width, scale, k):
    """The range coder's quantized CDF at edge ``e`` of a stage of ``k`` symbols (``quantized_cdf``'s
    ``trunc(c_e * scale) + e``, ``c_e`` the exact sum of the entries before edge ``e``)."""
    if e == 0:
        return np.uint64(0)
    if e == k:
        return _TOTAL
    return np.uint64((mix - mix0 + e * floor_width) * scale) + np.uint64(e)


@njit(cache=True)
def code_stage(decoding, symbol, k, first, step, weights, levels, inv_scales, i, wsum, floor_, cdf_table, steps,
               const, one, lo_cdfs, hi_cdfs, mix_lo, mix_hi, out_lo, out_hi, probe, dec, enc, words):
    """Code pixel ``i``'s symbol of one stage of ``k`` symbols (edges as in the module docstring, the
    stage's bounds' component CDFs ``lo_cdfs``/``hi_cdfs`` ``(M,)`` and their mixtures ``mix_lo``/``mix_hi``):
    decode it from ``dec``, or encode ``symbol`` into ``enc``. The symbol's edges' component CDFs go to
    ``out_lo``/``out_hi`` (``probe`` is scratch of ``M``). Returns (symbol, or -1 where the data is
    invalid; the mixture at its lower and its upper edge; the probability's numerator and the total, the
    table's entry and sum; word buffer)."""
    floor_width = wsum * (floor_ * step)
    total = mix_hi - mix_lo + k * floor_width
    scale = float(_TOTAL - np.uint64(k)) / total
    m_lo, m_hi = mix_lo, mix_hi
    if decoding:
        quantile = decode_quantile(dec)
        if quantile >= _TOTAL:
            return -1, 0.0, 0.0, 0.0, total, words
        out_lo[:] = lo_cdfs
        out_hi[:] = hi_cdfs
        lo, hi = 0, k
        c_lo, c_hi = np.uint64(0), _TOTAL
        while hi - lo > 1:  # decode_symbol's bisection, each probed edge computed when it is read
            mid = (lo + hi) // 2
            m_mid = edge_cdfs(weights, levels, inv_scales, i, first + mid * step - 1, cdf_table, steps, const, one,
                              probe)
            c_mid = _quantized(m_mid, mix_lo, mid, floor_width, scale, k)
            if c_mid <= quantile:
                lo, c_lo, m_lo = mid, c_mid, m_mid
                out_lo[:] = probe
            else:
                hi, c_hi, m_hi = mid, c_mid, m_mid
                out_hi[:] = probe
        decode_interval(dec, words, c_lo, c_hi)
        symbol = lo
    else:
        if symbol == 0:
            out_lo[:] = lo_cdfs
        else:
            m_lo = edge_cdfs(weights, levels, inv_scales, i, first + symbol * step - 1, cdf_table, steps, const, one,
                             out_lo)
        if symbol + 1 == k:
            out_hi[:] = hi_cdfs
        else:
            m_hi = edge_cdfs(weights, levels, inv_scales, i, first + (symbol + 1) * step - 1, cdf_table, steps,
                             const, one, out_hi)
        words = encode_interval(enc, words, _quantized(m_lo, mix_lo, symbol, floor_width, scale, k),
                                _quantized(m_hi, mix_lo, symbol + 1, floor_width, scale, k))
    return symbol, m_lo, m_hi, m_hi - m_lo + floor_width, total, words


@njit(cache=True)
def updated_weights_at(weights, i, lo_cdfs, hi_cdfs, weight_one, out):
    """Pixel ``i``'s row of :func:`~nlc.coding.exact_kernels.updated_weights` into ``out`` ``(M,)``, from
    the coded value's edges' component CDFs (the same operations in the same order)."""
    m = weights.shape[1]
    den = 0.0
    for k in range(m):
        out[k] = weights[i, k] * (hi_cdfs[k] - lo_cdfs[k])
        den += out[k]
    for k in range(m):
        out[k] = np.floor(out[k] * weight_one / max(den, 1.0)) if den > 0 else weights[i, k]
