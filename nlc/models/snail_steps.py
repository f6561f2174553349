"""A compiled kernel for one per-pixel step of an exact PixelSNAIL (its masked stack, attention, head and skip).

:class:`~nlc.models.pixelsnail.SnailStepper` evaluates every layer at one
position per step for a batch of tiles; in torch, that is a hundred small
operations a step, and the attention's scores, table lookups and weighted sums
over the key/value cache pass through memory several times. :func:`snail_step`
does the whole step in one call with the rules of
:class:`~nlc.models.exact.ExactArithmetic` (as :mod:`.exact_steps` does for
PixelCNN++): products summed exactly, so in any order (:func:`~.exact_steps.products`
and the attention's sums reassociate and fuse them, the only fast-math here);
each linear output rounded half to even onto the grid and clamped; ELU, the
gates' sigmoid and the attention's ``exp`` read the same tables at the same
positions. The attention is :func:`~nlc.models.attention.exact_attend` for one
query: queries, keys and values clamped to ``+-QKV_LIMIT``, the scores exact,
scaled by ``1/sqrt(d)`` (a power of two), the row's maximum subtracted, the
weights from the table, the weighted sum and the weights' sum exact, one IEEE
division rounded to the grid. The cache keeps keys and values position-last
within chunks of ``KEY_CHUNK`` positions (``(chunks, tiles, heads, d, KEY_CHUNK)``):
the sums over a chunk's positions vectorize (blocks of 16 positions read as one
stream took 12.7 ns a key against 2.5: their short loops did not vectorize), and
the chunks of all tiles are read front to back as one stream (:func:`_attend`).
``tests/models/test_exact_steps.py`` checks the step against the torch stepper
position by position, and the golden file decodes with it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .exact_steps import _clamp, _elu, _head_and_skip, _snap, lut_at, products


@njit(cache=True, nogil=True)
def _input_window(xs, row, cl, k, out):
    """The first layer's mask-A window at buffer row ``row``, column ``cl`` of the pixel buffer ``xs``
    ``(B, 4, H', W')``: the ``k // 2`` rows above in full (``k`` columns around ``cl``) and the pixels
    left of ``cl`` in its row, ``(tap, channel)`` order as :meth:`~nlc.models.masked.MaskedConv2d.matrix`
    lays it out, into ``out`` ``(B, taps * 4)``; columns past the buffer's right edge read zero."""
    p = k // 2
    taps = p * k + p
    width = xs.shape[3]
    for b in range(xs.shape[0]):
        t = 0
        for dy in range(p + 1):
            for dx in range(k):
                if t < taps:
                    x = cl - p + dx
                    for ch in range(4):
                        out[b, t * 4 + ch] = xs[b, ch, row - p + dy, x] if x < width else 0.0
                t += 1


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _scores(q, keys, n, out):
    """``out[j] = sum_d q[d] keys[d, j]`` for ``j < n``: exact sums of exact products, in any order."""
    for j in range(n):
        out[j] = 0.0
    for d in range(q.shape[0]):
        qd = q[d]
        kd = keys[d]
        for j in range(n):
            out[j] += qd * kd[j]


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _weighted(w, values, n, out):
    """``out[d] = sum_j w[j] values[d, j]`` over ``j < n`` and the weights' sum: exact (integer weights
    below 2^17 times grid values below 128, at most 2^14 positions)."""
    total = 0.0
    for j in range(n):
        total += w[j]
    for d in range(values.shape[0]):
        vd = values[d]
        s = 0.0
        for j in range(n):
            s += w[j] * vd[j]
        out[d] = s
    return total


KEY_CHUNK = 128  # positions per chunk of the key/value cache (see :func:`_attend`)


def cache_shape(blocks: int, batch: int, heads: int, keys: int, positions: int) -> tuple[int, ...]:
    """The shape of a key or value cache for :func:`snail_step`: ``(blocks, chunks, batch, heads, keys,
    KEY_CHUNK)``, chunk-major, enough chunks for ``positions``."""
    return (blocks, -(-positions // KEY_CHUNK), batch, heads, keys, KEY_CHUNK)


@njit(cache=True, nogil=True)
def _attend(x, w_qkv, b_qkv, w_out, b_out, keys, values, scores, pos, scale, qkv_limit, w_t, w_s, w_o, unit, limit,
            out, blas=0):
    """One causal attention layer at position ``pos`` for every tile: ``out`` ``(B, C)`` the layer's output
    for its input ``x`` ``(B, C)``; the position's keys and values enter the cache ``keys``, ``values``
    ``(chunks, B, heads, d, KEY_CHUNK)`` first. ``w_qkv`` ``(3 heads d, C)`` and ``w_out`` ``(C, heads d)``
    one output per row; ``scores`` ``(B, heads, chunks * KEY_CHUNK)`` scratch; ``w_t, w_s, w_o`` the ``exp``
    weights' table (:func:`nlc.fixed.weight_lut`).

    The cache is chunk-major: the positions so far of every tile lie together at the front, so one
    step reads one stream, chunk by chunk across the tiles (the scores of all tiles first, then their
    weights, then the weighted sums), where a tile-major cache left a gap after each tile's positions
    at which the memory's prefetching stopped (both layers of a step for 96 tiles, a sweep over the
    positions: 29.4 against 19.7 µs a tile, ``python bench/attention_cache.py --json
    bench/results/attention-cache.json``). The sums are exact, so their order changes nothing."""
    nb, heads, d, chunk = keys.shape[1], keys.shape[2], keys.shape[3], keys.shape[4]
    hd = heads * d
    n = pos + 1
    at, slot = pos // chunk, pos % chunk
    qkv = np.empty((nb, 3 * hd))
    products(x, w_qkv, b_qkv, qkv, blas)
    for b in range(nb):
        for j in range(3 * hd):
            qkv[b, j] = min(max(_snap(qkv[b, j], unit, limit), -qkv_limit), qkv_limit)
        for h in range(heads):
            for e in range(d):
                keys[at, b, h, e, slot] = qkv[b, hd + h * d + e]
                values[at, b, h, e, slot] = qkv[b, 2 * hd + h * d + e]
    for ch in range(at + 1):
        m = min(chunk, n - ch * chunk)
        for b in range(nb):
            for h in range(heads):
                _scores(qkv[b, h * d : (h + 1) * d], keys[ch, b, h], m, scores[b, h, ch * chunk :])
    for b in range(nb):
        for h in range(heads):
            s = scores[b, h]
            top = s[0] * scale
            for j in range(n):
                s[j] = s[j] * scale
                top = max(top, s[j])
            for j in range(n):
                s[j] = lut_at(w_t, w_s, w_o, s[j] - top)
    num = np.zeros((nb, hd))
    total = np.zeros((nb, heads))
    part = np.empty(d)
    for ch in range(at + 1):
        m = min(chunk, n - ch * chunk)
        for b in range(nb):
            for h in range(heads):
                total[b, h] += _weighted(scores[b, h, ch * chunk :], values[ch, b, h], m, part)
                for e in range(d):
                    num[b, h * d + e] += part[e]
    o = np.empty((nb, hd))
    for b in range(nb):
        for h in range(heads):
            for e in range(d):
                o[b, h * d + e] = _snap(num[b, h * d + e] / total[b, h], unit, limit)
    products(o, w_out, b_out, out, blas)
    for b in range(nb):
        for j in range(out.shape[1]):
            out[b, j] = _snap(out[b, j], unit, limit)


@njit(cache=True, nogil=True)
def snail_step(xs, row, cl, c, pos, k_in, w_in, b_in, w_conv, b_conv, w_gate, b_gate, maps, w_qkv, b_qkv, w_out, b_out,
               keys, values, scores, w_head, b_head, above, nw, w_left, elu_t, elu_s, elu_o, sig_t, sig_s, sig_o, w_t,
               w_s, w_o, scale, qkv_limit, unit, limit, blas=0):
    """Mixture parameters ``(B, P)`` of pixel column ``c`` (raster position ``pos``) of every tile, as
    ``SnailStepper.params`` computes them in torch.

    ``xs`` ``(B, 4, H', W')`` is the pixel buffer (row ``row``, column ``cl`` of the pixel); every weight
    matrix is laid out one output per row (see :func:`~.exact_steps.products`): ``w_in`` ``(C, taps 4)``
    the first layer (mask A, kernel ``k_in``); per gated layer (stacked on axis 0, block after block)
    ``w_conv`` ``(C, 5 C)`` the mask-B ``3 x 3`` convolution and ``w_gate`` ``(2 C, C)``, with ``maps``
    ``(L, B, 2, W + 2, C)`` their inputs on the rows above and this one (``maps[:, :, 1]`` written here);
    per block ``w_qkv``, ``w_out`` and the caches ``keys``, ``values`` (:func:`cache_shape`) of
    :func:`_attend`, with its scratch ``scores`` ``(B, heads, chunks * KEY_CHUNK)``; ``w_head`` ``(P, C)``,
    ``above``, ``nw``, ``w_left`` ``(P, 14)`` the head and the neighbourhood skip; the ELU, sigmoid and
    weight tables' arguments, the attention's ``scale`` and clamp, the grid's ``unit`` and ``limit``;
    ``blas`` :func:`~nlc.models.blas.dgemm_address` (0: the products in numba's loops; the same numbers).
    """
    nb, nc = xs.shape[0], b_in.shape[0]
    layers, blocks = w_conv.shape[0], w_qkv.shape[0]
    per_block = layers // blocks
    win = np.empty((nb, w_in.shape[1]))
    _input_window(xs, row, cl, k_in, win)
    h = np.empty((nb, nc))
    products(win, w_in, b_in, h, blas)
    for b in range(nb):
        for j in range(nc):
            h[b, j] = _snap(h[b, j], unit, limit)
    taps = np.empty((nb, 5 * nc))
    t = np.empty((nb, nc))
    ag = np.empty((nb, 2 * nc))
    e = np.empty((nb, nc))
    for lay in range(layers):
        m = maps[lay]
        for b in range(nb):
            for j in range(nc):
                m[b, 1, c + 1, j] = _elu(h[b, j], elu_t, elu_s, elu_o)
            for j in range(nc):  # NW, N, NE, W, this position
                taps[b, j] = m[b, 0, c, j]
                taps[b, nc + j] = m[b, 0, c + 1, j]
                taps[b, 2 * nc + j] = m[b, 0, c + 2, j]
                taps[b, 3 * nc + j] = m[b, 1, c, j]
                taps[b, 4 * nc + j] = m[b, 1, c + 1, j]
        products(taps, w_conv[lay], b_conv[lay], t, blas)
        for b in range(nb):
            for j in range(nc):
                t[b, j] = _elu(_snap(t[b, j], unit, limit), elu_t, elu_s, elu_o)
        products(t, w_gate[lay], b_gate[lay], ag, blas)
        for b in range(nb):
            for j in range(nc):  # the sigmoid's lookups first, then the products
                e[b, j] = lut_at(sig_t, sig_s, sig_o, _snap(ag[b, nc + j], unit, limit))
            for j in range(nc):
                h[b, j] = _clamp(_snap(_snap(ag[b, j], unit, limit) * e[b, j], unit, limit) + h[b, j], limit)
        if lay % per_block == per_block - 1:
            blk = lay // per_block
            for b in range(nb):
                for j in range(nc):
                    e[b, j] = _elu(h[b, j], elu_t, elu_s, elu_o)
            _attend(e, w_qkv[blk], b_qkv[blk], w_out[blk], b_out[blk], keys[blk], values[blk], scores, pos, scale,
                    qkv_limit, w_t, w_s, w_o, unit, limit, t, blas)
            for b in range(nb):
                for j in range(nc):
                    h[b, j] = _clamp(h[b, j] + t[b, j], limit)
    for b in range(nb):
        for j in range(nc):
            e[b, j] = _elu(h[b, j], elu_t, elu_s, elu_o)
    return _head_and_skip(e, w_head, b_head, xs, row, cl, c, above, nw, w_left, unit, limit, blas)
