"""The adaptive exact codec's step loop compiled: a whole tile row per call, the range coder inside.

The adaptive codec (:mod:`nlc.coding.adaptive` over :mod:`nlc.coding.exact_tables`)
codes each step (one pixel of every tile) in many small calls: the model's
per-pixel step, the mixture's exact forms, for each channel the stage's shift
and scale, two tables and two coder calls, the stage's update. Their
arithmetic is a few microseconds; their calls' overhead was most of a
decode. :func:`decode_row` and :func:`encode_row` run a row's steps in one
call by calling **the same compiled kernels in the same order**
(:func:`~nlc.models.exact_steps.pixel_step`, :mod:`nlc.coding.exact_kernels`,
:mod:`nlc.coding.adaptive_kernels`) and code through
:mod:`nlc.coding.range_kernels`, constriction's range coder compiled, so the
files are byte for byte those of the step-by-step path (``tests/coding/test_adaptive_steps.py``
compares both on images, and the golden files decode).

Only the range coder (FIFO) runs here; an ANS payload pushes its steps in
reverse after the loop and keeps the step-by-step path.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from numba import njit

from .. import fixed
from ..models.blas import dgemm_address
from ..models.exact_rows import row_params
from ..models.exact_steps import gated_step, lut_at, pixel_step
from ..models.mixture import LOG_SCALE_MIN
from .adaptive_kernels import observe_into, scale_into, shift_into
from .coders import CoderError
from .exact_kernels import channel_levels_into
from .exact_tables import BUCKET, CDF_FLOOR, CDF_ONE, LOG_SCALE_MAX, MEAN_BITS
from .lazy_tables import code_stage, updated_weights_at

INVALID = 1  # decode_row's status: the data is not what any encoder wrote


@functools.lru_cache(maxsize=None)
def mixture_luts() -> tuple:
    """The tables :func:`exact_mixture_into` reads: weights, inverse scales, tanh (as ``ExactMixture``)."""
    return (*fixed.weight_lut().kernel_args, *fixed.inverse_scale_lut().kernel_args, *fixed.tanh_lut().kernel_args)


@functools.lru_cache(maxsize=None)
def table_constants() -> tuple:
    """The constants of :func:`~nlc.coding.exact_tables.code_pixels_exact` in :func:`_code_step`'s order."""
    cdf, steps, const = fixed.cdf_lut().kernel_args
    return (cdf, steps, const, BUCKET, CDF_ONE, float(CDF_FLOOR), 127.5 * 2**MEAN_BITS, 2.0**-MEAN_BITS,
            float(fixed.WEIGHT_ONE), fixed.pixel_levels().numpy())


def put_values(to_input) -> np.ndarray:
    """Each value ``0..255`` as the network reads it once coded: ``to_input`` (the stepper's arithmetic's
    ``input``) of the coder's ``v / 127.5 - 1`` in float32, as ``RasterStepper.put`` receives it."""
    v = torch.arange(256, dtype=torch.float32) / 127.5 - 1.0
    return np.ascontiguousarray(to_input(v).double().numpy())


LOG_SCALES = (LOG_SCALE_MIN, LOG_SCALE_MAX)


@njit(cache=True)
def exact_mixture_into(params, m, luts, log_scale_min, log_scale_max, weights, means, log_scales, inv_scales, coeffs):
    """:class:`~nlc.coding.exact_tables.ExactMixture` of ``params`` ``(n, 10 m)`` into the first ``n`` rows
    of ``weights`` ``(n, m)``, ``means``, ``log_scales``, ``inv_scales`` and ``coeffs`` ``(n, 3, m)`` (their
    old contents unread). ``luts`` holds the weight, inverse scale and tanh tables, each as (array,
    2^in_bits, 0.5 - lo 2^in_bits)."""
    w_t, w_s, w_o, i_t, i_s, i_o, t_t, t_s, t_o = luts
    n = params.shape[0]
    for i in range(n):
        top = params[i, 0]
        for k in range(1, m):
            top = max(top, params[i, k])
        for k in range(m):
            weights[i, k] = lut_at(w_t, w_s, w_o, params[i, k] - top)
        for ch in range(3):
            base = m + ch * 3 * m
            for k in range(m):
                means[i, ch, k] = params[i, base + k]
                ls = min(max(params[i, base + m + k], log_scale_min), log_scale_max)
                log_scales[i, ch, k] = ls
                inv_scales[i, ch, k] = lut_at(i_t, i_s, i_o, ls)
                coeffs[i, ch, k] = lut_at(t_t, t_s, t_o, params[i, base + 2 * m + k])


_PART, _KNOWN, _TILES = -3, -2, -1  # step_work's last three arrays: a column's parameters, pixels and tiles


def step_work(batch: int, channels: int, mixtures: int, params: int, coeffs: tuple) -> tuple:
    """Scratch arrays for :func:`_code_step`'s steps of at most ``batch`` tiles with ``params`` parameters
    per pixel, ``coeffs`` the stage's coefficients per channel (their widths are the features'): made
    once per group of tiles and reused at every step instead of some sixty small allocations a step
    (their contents are never read before they are written)."""
    b, m = max(batch, 1), mixtures
    mix = tuple(np.empty((b, 3, m)) for _ in range(4))
    features = tuple(np.empty((b, c.shape[1]), np.int64) for c in coeffs)
    return (np.empty((b, m)), np.empty((b, m)), *mix, np.empty((b, channels), np.int64), np.empty(b), np.empty(b),
            np.empty((b, channels), np.int64), np.empty((4, b, m)), np.empty((3, m)), np.empty(b), np.empty((2, b)),
            np.empty((2, b)), np.empty(b), *(np.empty((b, m)) for _ in range(6)), features,
            *(np.empty(b, np.int64) for _ in range(2)), np.empty(b), np.empty(b), np.empty(b, np.int64), np.empty(m),
            np.empty(b, np.int64), np.empty((b, params)), np.empty((b, channels), np.int64), np.empty(b, np.int64))


@njit(cache=True)
def _code_step(params, known, decoding, tiles, r, c, channels, mixtures, mix_luts, log_scale_min, log_scale_max,
               tables, adapt, stage, coeffs, gram, moment, dec, enc, words, work):
    """Code one step (pixel ``(r, c)`` of the tiles ``tiles``) as ``code_pixels_exact`` with an adaptive
    stage does (without, where ``adapt`` is False: ``stage`` is then not touched): decoding (values from
    ``dec``) or encoding ``known`` ``(n, channels)`` into ``enc``. Each channel's two stages (bucket, then
    place) are coded from the edges the coder reads (:func:`~nlc.coding.lazy_tables.code_stage`), the
    same words as from the whole tables. ``work`` is :func:`step_work`'s scratch. Returns (False where
    the data is invalid, values ``(n, channels)`` (a view of ``work``), bits, word buffer)."""
    (cdf_t, steps, const, bucket, one, floor_, mean_scale, mean_unit, weight_one, levels_table) = tables
    (inv_t, inv_steps, inv_const, errors, pixels, gain, losses, factors, neutral, dr, dc, pad, classes,
     log_127_5, t_one, coeff_bits, delta_clip, shift_scale, shift_clip, use_neighbours, cross, gate, use_pixels,
     t_scale, t_clip, forget_bits, ridge, log2_table, log_in_bits, log_bits, scale_bits, use_scales) = stage
    (w_a, w_b, all_means, all_log_scales, all_inv, all_coeffs, all_values, all_x0, all_x1, all_current, edges, bounds,
     all_wsums, mixes, outer_p, all_masses, all_levels, all_ls, all_base, all_out, all_moved, all_inv_coded, features,
     all_cls, all_act, all_mean, all_inv_mean, all_t, scaled, all_coded, _, _, _) = work
    n = tiles.shape[0]
    w, means, log_scales, inv_scales, mcoeffs = w_a[:n], all_means[:n], all_log_scales[:n], all_inv[:n], all_coeffs[:n]
    exact_mixture_into(params, mixtures, mix_luts, log_scale_min, log_scale_max, w, means, log_scales, inv_scales,
                       mcoeffs)
    values, x0, x1, current = all_values[:n], all_x0[:n], all_x1[:n], all_current[:n]
    wsums, masses, levels, base_inv, ls = all_wsums[:n], all_masses[:n], all_levels[:n], all_base[:n], all_ls[:n]
    for i in range(n):
        x0[i] = 0.0
        x1[i] = 0.0
        for ch in range(channels):
            current[i, ch] = 0
    bits = 0.0
    nb = 256 // bucket
    # edges[:, i]: per tile the bucket's lower and upper edge's component CDFs, then the value's
    bounds[0] = 0.0  # below level 0, above level 255, a probe
    bounds[1] = one
    cls, act, mean, inv = all_cls[:n], all_act[:n], all_mean[:n], all_inv_mean[:n]
    for ch in range(channels):
        channel_levels_into(means, mcoeffs, ch, x0, x1, mean_scale, mean_unit, levels)
        for i in range(n):
            for k in range(mixtures):
                base_inv[i, k] = inv_scales[i, ch, k]
        if adapt:
            for i in range(n):
                for k in range(mixtures):
                    ls[i, k] = log_scales[i, ch, k]
            f = features[ch][:n]
            out, moved, inv_coded = all_out[:n], all_moved[:n], all_inv_coded[:n]
            shift_into(w, ls, levels, inv_t, inv_steps, inv_const, errors, tiles, r, c, ch, current[:, :ch], coeffs[ch],
                       gain[ch], dr, dc, pad, classes, log_127_5, t_one, coeff_bits, delta_clip, shift_scale,
                       shift_clip, mean_unit, use_neighbours, cross, gate, pixels, use_pixels, t_scale, t_clip, out,
                       moved, f, cls, mean, inv, act)
            if use_scales:
                scale_into(base_inv, cls, act, losses[ch], factors, neutral, scale_bits, inv_coded)
            else:
                inv_coded = base_inv
        else:  # the model's tables as they are (the stage's arrays unused)
            out, moved, inv_coded = levels, levels, base_inv
        for i in range(n):  # every tile's bucket, then every tile's place: the order of the words
            v = 0 if decoding else known[i, ch]
            wsum = 0.0
            for k in range(mixtures):
                wsum += w[i, k]
            wsums[i] = wsum
            b, mixes[0, i], mixes[1, i], outer_p[0, i], outer_p[1, i], words = code_stage(
                decoding, v // bucket, nb, 0, bucket, w, out, inv_coded, i, wsum, floor_, cdf_t, steps,
                const, one, bounds[0], bounds[1], 0.0, wsum * one, edges[0, i], edges[1, i], bounds[2], dec, enc, words)
            if b < 0:
                return False, values, bits, words
            values[i, ch] = b * bucket
        for i in range(n):
            place, mass_lo, mass_hi, p, total, words = code_stage(
                decoding, 0 if decoding else known[i, ch] % bucket, bucket, values[i, ch], 1, w, out, inv_coded, i, wsums[i], floor_,
                cdf_t, steps, const, one, edges[0, i], edges[1, i], mixes[0, i], mixes[1, i], edges[2, i], edges[3, i],
                bounds[2], dec, enc, words)
            if place < 0:
                return False, values, bits, words
            values[i, ch] += place
            masses[i] = mass_hi - mass_lo
            if not decoding:
                bits -= np.log2(outer_p[0, i] / outer_p[1, i]) + np.log2(p / total)
        if adapt:
            coded = all_coded[:n]
            t = all_t[:n]
            for i in range(n):
                coded[i] = values[i, ch]
            observe_into(coded, features[ch][:n], cls, mean, inv, w, levels, moved, inv_coded, errors, tiles, r, c, ch,
                         pad, gram[ch], moment[ch], gain[ch], t_scale, t_clip, forget_bits, ridge, cdf_t, steps, const,
                         one, floor_, log2_table, log_in_bits, log_bits, pixels, act, out, base_inv, losses[ch], factors,
                         scale_bits, use_scales, masses, t, scaled)
            for i in range(n):
                current[i, ch] = t[i]
        if ch + 1 < channels:
            updated = (w_b if ch == 0 else w_a)[:n]
            for i in range(n):
                updated_weights_at(w, i, edges[2, i], edges[3, i], weight_one, updated[i])
                if ch == 0:
                    x0[i] = levels_table[values[i, ch]]
                else:
                    x1[i] = levels_table[values[i, ch]]
            w = updated
    return True, values, bits, words


@njit(cache=True)
def _valid(hs, ws, r, c, buffer):
    """The tiles (indices) that reach pixel ``(r, c)``, as the first entries of ``buffer``."""
    n = 0
    for b in range(hs.shape[0]):
        if hs[b] > r and ws[b] > c:
            buffer[n] = b
            n += 1
    return buffer[:n]


@njit(cache=True)
def _decoding(channels, mixtures, mix_luts, log_scale_min, log_scale_max, tables, adapt, stage, coeffs, gram, moment,
              dec, put_values, out, work):
    """:func:`_decode_column`'s ``coding`` tuple, with an unused encoder state and no known values."""
    return (channels, mixtures, mix_luts, log_scale_min, log_scale_max, tables, adapt, stage, coeffs, gram, moment, dec,
            np.zeros(5, np.uint64), np.zeros((0, channels), np.int64), put_values, out, work)


@njit(cache=True)
def _decode_column(params, tiles, r, c, mc, words, xs, row, left, coding):
    """Decode column ``c`` of row ``r`` of the tiles ``tiles`` (those that reach it) from the model's
    parameters ``params`` ``(B, P)`` of its column ``mc`` (``c`` plus the context columns): the adaptive
    step, then the values written to ``out`` and, as the network reads them, to the pixel buffer ``xs``;
    ``coding`` holds the rest of :func:`_code_step`'s arguments (see :func:`decode_row`). Returns (False
    where the data is invalid, the word buffer)."""
    (channels, mixtures, mix_luts, log_scale_min, log_scale_max, tables, adapt, stage, coeffs, gram, moment, dec, enc,
     known, put_values, out, work) = coding
    part = work[_PART][:tiles.shape[0]]
    for i in range(tiles.shape[0]):
        part[i] = params[tiles[i]]
    ok, values, _, words = _code_step(part, known, True, tiles, r, c, channels, mixtures, mix_luts, log_scale_min,
                                      log_scale_max, tables, adapt, stage, coeffs, gram, moment, dec, enc, words, work)
    if not ok:
        return False, words
    for i in range(tiles.shape[0]):
        b = tiles[i]
        for ch in range(channels):
            out[b, r, c, ch] = values[i, ch]
        for ch in range(3):
            xs[b, ch, row, mc + left] = put_values[values[i, min(ch, channels - 1)]]
    return True, words


@njit(cache=True, nogil=True)
def decode_row(r, width, hs, ws, channels, mixtures, model, mix_luts, log_scale_min, log_scale_max, tables, adapt,
               stage, coeffs, gram, moment, dec, words, put_values, out, work, context_left=0, blas=0):
    """Decode row ``r`` of every tile: for each column the model's step (``model``: the arguments of
    :func:`~nlc.models.exact_steps.pixel_step` but the column, with the buffer's left margin), the
    adaptive step, and the decoded values written to ``out`` ``(B, H, W, channels)`` and into the
    model's pixel buffer (``put_values[v]``: value ``v`` as the network reads it); ``adapt`` False codes
    with the model's tables alone (an exact codec without a stage). Where the model's
    rows start with ``context_left`` known columns (:mod:`nlc.coding.context_tiles`), its steps run
    over them first, coding nothing. ``work`` is :func:`step_work`'s scratch; ``blas`` as
    :func:`~nlc.models.exact_steps.pixel_step` takes it. Returns 0, or :data:`INVALID` where the data is invalid."""
    (xs, row, left, w_in, b_in, hu, w1, b1, w2, b2, aux, prev0, prev1, head_wt, head_b, above, nw, w_left, elu_t,
     elu_s, elu_o, sig_t, sig_s, sig_o, unit, limit) = model
    coding = _decoding(channels, mixtures, mix_luts, log_scale_min, log_scale_max, tables, adapt, stage, coeffs, gram,
                       moment, dec, put_values, out, work)
    for c in range(context_left if _valid(hs, ws, r, 0, work[_TILES]).shape[0] > 0 else 0):
        pixel_step(xs, row, c + left, c, w_in, b_in, hu, w1, b1, w2, b2, aux, prev0, prev1, head_wt, head_b, above, nw,
                   w_left, elu_t, elu_s, elu_o, sig_t, sig_s, sig_o, unit, limit, blas)
    for c in range(width):
        mc = c + context_left  # the model's column
        tiles = _valid(hs, ws, r, c, work[_TILES])  # (a step without tiles ends its row: no model step; the stage still decays)
        params = pixel_step(xs, row, mc + left, mc, w_in, b_in, hu, w1, b1, w2, b2, aux, prev0, prev1, head_wt,
                            head_b, above, nw, w_left, elu_t, elu_s, elu_o, sig_t, sig_s, sig_o, unit, limit, blas) \
            if tiles.shape[0] > 0 else np.empty((0, head_b.shape[0]))
        ok, words = _decode_column(params, tiles, r, c, mc, words, xs, row, left, coding)
        if not ok:
            return INVALID
    return 0


@njit(cache=True, nogil=True)
def decode_gated_row(r, width, hs, ws, channels, mixtures, model, mix_luts, log_scale_min, log_scale_max, tables,
                     adapt, stage, coeffs, gram, moment, dec, words, put_values, out, work):
    """:func:`decode_row` for an exact Gated PixelCNN: ``model`` the arguments of
    :func:`~nlc.models.exact_steps.gated_step` but the column, with the buffer's left margin."""
    (xs, row, left, w_in, b_in, link_in, w_h, b_h, links, prev, w_skip, b_skip, w_res, b_res, w_out, b_out, w_head,
     b_head, above, nw, w_left, tanh_t, tanh_s, tanh_o, sig_t, sig_s, sig_o, unit, limit) = model
    coding = _decoding(channels, mixtures, mix_luts, log_scale_min, log_scale_max, tables, adapt, stage, coeffs, gram,
                       moment, dec, put_values, out, work)
    for c in range(width):
        tiles = _valid(hs, ws, r, c, work[_TILES])
        params = gated_step(xs, row, c + left, c, w_in, b_in, link_in, w_h, b_h, links, prev, w_skip, b_skip, w_res,
                            b_res, w_out, b_out, w_head, b_head, above, nw, w_left, tanh_t, tanh_s, tanh_o, sig_t,
                            sig_s, sig_o, unit, limit) if tiles.shape[0] > 0 else np.empty((0, b_head.shape[0]))
        ok, words = _decode_column(params, tiles, r, c, c, words, xs, row, left, coding)
        if not ok:
            return INVALID
    return 0


def decode_step_columns(st, r: int, width: int, hs: np.ndarray, ws: np.ndarray, channels: int, mixtures: int,
                        adapt: bool, stage: tuple, coeffs: tuple, gram: tuple, moment: tuple, dec, puts: np.ndarray,
                        out: np.ndarray, work: tuple) -> int:
    """:func:`decode_row` for a stepper whose steps are compiled but share the tiles out to threads (PixelSNAIL's:
    ``snail_kernel``): a loop over the row's columns here, each step's parameters from ``st.params(c)`` (every
    tile's, coded or not: later positions' attention reads them all, as the encoder's parallel pass computes
    them), each column decoded in one compiled call. Returns :data:`INVALID` where the data is not what an
    encoder wrote, else 0."""
    coding = _decoding(channels, mixtures, mixture_luts(), *LOG_SCALES, table_constants(), adapt, stage, coeffs, gram,
                       moment, dec.dec, puts, out, work)
    row, words = st.r + st.TOP, dec.words
    for c in range(width):
        ok, words = _decode_column(st.params(c), _valid(hs, ws, r, c, work[_TILES]), r, c, c, words, st.xs, row, st.LEFT,
                                   coding)
        if not ok:
            return INVALID
    return 0


@njit(cache=True)
def _known_at(known_row, tiles, c, channels, buffer):
    """The pixels ``(n, channels)`` of column ``c`` of the tiles ``tiles`` in ``known_row`` ``(B, W, C)``, in
    the first rows of ``buffer``."""
    known = buffer[:tiles.shape[0]]
    for i in range(tiles.shape[0]):
        for ch in range(channels):
            known[i, ch] = known_row[tiles[i], c, ch]
    return known


@njit(cache=True, nogil=True)
def encode_row(r, width, hs, ws, channels, mixtures, row_params, known_row, mix_luts, log_scale_min, log_scale_max,
               tables, adapt, stage, coeffs, gram, moment, enc, words, grid, work):
    """Encode row ``r`` of every tile from the model's parameters ``row_params`` ``(B, P, W)`` (int32 counts
    of ``grid``: a parallel pass's, or a row's steps') and the pixels ``known_row`` ``(B, W, channels)``, step
    by step in the decoder's order, with the adaptive stage where ``adapt`` (``work``: :func:`step_work`'s
    scratch). Returns (bits under the tables, word buffer)."""
    dec = np.zeros(4, np.uint64)
    bits = 0.0
    npar = row_params.shape[1]
    for c in range(width):
        tiles = _valid(hs, ws, r, c, work[_TILES])
        n = tiles.shape[0]
        part = work[_PART][:n]
        for i in range(n):
            for p in range(npar):
                part[i, p] = row_params[tiles[i], p, c] * grid
        known = _known_at(known_row, tiles, c, channels, work[_KNOWN])
        _, _, b, words = _code_step(part, known, False, tiles, r, c, channels, mixtures, mix_luts, log_scale_min,
                                    log_scale_max, tables, adapt, stage, coeffs, gram, moment, dec, enc, words, work)
        bits += b
    return bits, words


@njit(cache=True, nogil=True)
def encode_steps_row(r, width, hs, ws, channels, mixtures, model, mix_luts, log_scale_min, log_scale_max, tables,
                     adapt, stage, coeffs, gram, moment, enc, words, known_row, work, context_left=0, blas=0):
    """Encode row ``r`` of every tile as :func:`decode_row` decodes it, the parameters those of the model's
    steps (``model``: as in :func:`decode_row`; its pixel buffer holds the whole tiles), all the row's
    columns computed at once (:func:`~nlc.models.exact_rows.row_params`): the same parameters, so the
    same words. ``known_row`` ``(B, W, channels)`` holds row ``r``'s pixels; ``work`` is :func:`step_work`'s
    scratch; ``blas`` as :func:`~nlc.models.exact_rows.row_params` takes it. Returns (bits under the tables,
    word buffer)."""
    (xs, row, left, w_in, b_in, hu, w1, b1, w2, b2, aux, prev0, prev1, head_wt, head_b, above, nw, w_left, elu_t,
     elu_s, elu_o, sig_t, sig_s, sig_o, unit, limit) = model
    dec = np.zeros(4, np.uint64)
    bits = 0.0
    if _valid(hs, ws, r, 0, work[_TILES]).shape[0] > 0:  # every column's steps at once, the context columns' first
        row_steps = row_params(xs, row, left, context_left + width, w_in, b_in, hu, w1, b1, w2, b2, aux, head_wt,
                               head_b, above, nw, w_left, elu_t, elu_s, elu_o, sig_t, sig_s, sig_o, unit, limit, blas)
    for c in range(width):
        tiles = _valid(hs, ws, r, c, work[_TILES])
        n = tiles.shape[0]
        part = work[_PART][:n]
        if n > 0:
            params = row_steps[c + context_left]
            for i in range(n):
                part[i] = params[tiles[i]]
        known = _known_at(known_row, tiles, c, channels, work[_KNOWN])
        _, _, b, words = _code_step(part, known, False, tiles, r, c, channels, mixtures, mix_luts, log_scale_min,
                                    log_scale_max, tables, adapt, stage, coeffs, gram, moment, dec, enc, words, work)
        bits += b
    return bits, words


def _coded_rows(hs: np.ndarray) -> int:
    """Rows of a group with pixels to code: below every tile's last row (the image's bottom edge) a row's
    steps code nothing, so its network need not run. Its steps still pass through the adaptive stage,
    whose statistics decay at every step, tiles or none: the coding loops still run them."""
    return int(hs.max()) if hs.shape[0] else 0


def encode_stepped_rows(st, stage, adapt: bool, mixtures: int, hs: np.ndarray, ws: np.ndarray, known: np.ndarray,
                        enc, first_row: int = 0, context_left: int = 0, progress=None) -> float:
    """Encode a group of tiles row by row with :func:`encode_steps_row`: ``st`` the model's stepper, its
    buffer filled with the whole (extended) tiles, whose rows start with ``first_row`` context rows and
    ``context_left`` context columns; ``known`` ``(B, H, W, C)`` the tiles' pixels; ``stage`` the adaptive
    stage (used where ``adapt``); ``enc`` a :class:`~nlc.coding.coders.CompiledRangeQueue`. The words are
    :func:`encode_tile_rows`' for the parallel pass's parameters. Returns the bits under the tables."""
    bits = 0.0
    hs64, ws64 = hs.astype(np.int64), ws.astype(np.int64)
    coded_rows = _coded_rows(hs64)
    work = _work(stage, len(hs), known.shape[3], mixtures)
    for r in range(first_row):  # context rows: the vertical stream only
        st.start_row(r)
    for r in range(known.shape[1]):
        if r < coded_rows:  # (below every tile's last row the network has nothing to code)
            st.start_row(first_row + r)
        if adapt:
            stage.start_row(r)
        args, coeffs, gram, moment = stage.kernel_args()
        b, enc.words = encode_steps_row(r, known.shape[2], hs64, ws64, known.shape[3], mixtures, st.kernel_row(),
                                        mixture_luts(), *LOG_SCALES, table_constants(), adapt, args, coeffs, gram,
                                        moment, enc.enc, enc.words, np.ascontiguousarray(known[:, r]), work,
                                        context_left, dgemm_address())
        bits += b
        if progress:
            progress(1)
    return bits


def _work(stage, batch: int, channels: int, mixtures: int) -> tuple:
    """:func:`step_work` for a group of ``batch`` tiles coded with ``stage``."""
    return step_work(batch, channels, mixtures, 10 * mixtures, stage.kernel_args()[1])


def _encode_params_row(r: int, hs: np.ndarray, ws: np.ndarray, mixtures: int, params: np.ndarray, known: np.ndarray,
                       adapt: bool, stage, enc, work: tuple) -> float:
    """Row ``r`` of a group coded by :func:`encode_row` from its parameters ``params`` ``(B, P, W)`` (int32
    counts of ``2^-16``) and pixels ``known`` ``(B, W, C)``, the stage's state as it stands (``work``:
    :func:`step_work`'s scratch); returns the bits."""
    args, coeffs, gram, moment = stage.kernel_args()
    bits, enc.words = encode_row(r, params.shape[2], hs, ws, known.shape[2], mixtures, np.ascontiguousarray(params),
                                 np.ascontiguousarray(known), mixture_luts(), *LOG_SCALES, table_constants(), adapt,
                                 args, coeffs, gram, moment, enc.enc, enc.words, fixed.GRID, work)
    return bits


def encode_step_columns(st, stage, adapt: bool, mixtures: int, hs: np.ndarray, ws: np.ndarray, known: np.ndarray,
                        enc, progress=None) -> float:
    """:func:`encode_stepped_rows` for a stepper whose steps are compiled but share slices of the tiles out to
    threads (PixelSNAIL's: ``snail_kernel``; its buffer filled with the whole tiles): each row's parameters
    stepped column by column (``st.params(c)``), then the row coded in one compiled call (:func:`encode_row`)
    as :func:`encode_tile_rows` codes a parallel pass's: the same parameters, so the same words. Returns the
    bits under the tables."""
    bits = 0.0
    hs64, ws64 = hs.astype(np.int64), ws.astype(np.int64)
    tiles, height, width = known.shape[:3]
    params = np.empty((tiles, 10 * mixtures, width), np.int32)
    work = _work(stage, tiles, known.shape[3], mixtures)
    for r in range(height):
        st.start_row(r)
        if adapt:
            stage.start_row(r)
        for c in range(width):  # (B, P) on the 2^-16 grid, below 2^10: exact int32 counts
            params[:, :, c] = st.params(c) * 2.0**fixed.GRID_BITS
        bits += _encode_params_row(r, hs64, ws64, mixtures, params, known[:, r], adapt, stage, enc, work)
        if progress:
            progress(1)
    return bits


def encode_tile_rows(stage, mixtures: int, hs: np.ndarray, ws: np.ndarray, params: np.ndarray, known: np.ndarray,
                     enc, progress=None) -> float:
    """Encode a group of tiles row by row with :func:`encode_row`: ``params`` ``(B, P, H, W)`` the exact
    pass's int32 counts of ``2^-16``, ``known`` ``(B, H, W, C)`` the pixels, ``hs``/``ws`` the tiles'
    valid extents, ``enc`` a :class:`~nlc.coding.coders.CompiledRangeQueue`, ``stage`` the adaptive
    stage (an :class:`~nlc.coding.adaptive.OnlineBias`). Returns the bits under the tables."""
    bits = 0.0
    hs64, ws64 = hs.astype(np.int64), ws.astype(np.int64)
    work = _work(stage, len(hs), known.shape[3], mixtures)
    for r in range(params.shape[2]):
        stage.start_row(r)
        bits += _encode_params_row(r, hs64, ws64, mixtures, params[:, :, r], known[:, r], True, stage, enc, work)
        if progress:
            progress(1)
    return bits


def decode_tile_rows(st, stage, adapt: bool, mixtures: int, hs: np.ndarray, ws: np.ndarray, dec, out: np.ndarray,
                     puts: np.ndarray, first_row: int = 0, context_left: int = 0, before_row=None, after_row=None,
                     progress=None) -> None:
    """Decode a group of tiles row by row with :func:`decode_row` (or :func:`decode_gated_row` for a
    Gated PixelCNN stepper: its ``gated_kernel``; :func:`decode_step_columns` for PixelSNAIL's:
    ``snail_kernel``) into ``out`` ``(B, H, W, C)``: ``st`` the model's stepper (its buffer filled; its
    rows start with ``first_row`` known rows and ``context_left`` known columns), ``stage`` the adaptive stage (used where ``adapt``), ``dec`` a
    :class:`~nlc.coding.coders.CompiledRangeQueue`, ``puts`` :func:`put_values`; ``before_row(r)`` and
    ``after_row(r)`` run around each coded row ``r``. Raises ``CoderError`` on data no encoder wrote."""
    hs64, ws64 = hs.astype(np.int64), ws.astype(np.int64)
    gated = getattr(st, "gated_kernel", False)  # Gated PixelCNN's steps (decode_gated_row)
    snail = getattr(st, "snail_kernel", False)  # PixelSNAIL's (decode_step_columns), else PixelCNN++'s
    if (gated or snail) and (first_row or context_left):
        raise ValueError("context tiles need PixelCNN++'s steps")
    coded_rows = _coded_rows(hs64)
    work = _work(stage, len(hs), out.shape[3], mixtures)
    for r in range(first_row):  # known rows: the vertical stream only
        st.start_row(r)
    for r in range(out.shape[1]):
        if before_row:
            before_row(r)
        if r < coded_rows or gated or snail:  # (their steps read every row's stream)
            st.start_row(first_row + r)
        if adapt:
            stage.start_row(r)
        args, coeffs, gram, moment = stage.kernel_args()
        if snail:
            status = decode_step_columns(st, r, out.shape[2], hs64, ws64, out.shape[3], mixtures, adapt, args, coeffs,
                                         gram, moment, dec, puts, out, work)
        elif gated:
            status = decode_gated_row(r, out.shape[2], hs64, ws64, out.shape[3], mixtures, st.kernel_row(),
                                      mixture_luts(), *LOG_SCALES, table_constants(), adapt, args, coeffs, gram, moment,
                                      dec.dec, dec.words, puts, out, work)
        else:
            status = decode_row(r, out.shape[2], hs64, ws64, out.shape[3], mixtures, st.kernel_row(), mixture_luts(),
                                *LOG_SCALES, table_constants(), adapt, args, coeffs, gram, moment, dec.dec, dec.words,
                                puts, out, work, context_left, dgemm_address())
        if status:
            raise CoderError("range decoder failed: the data is not what an encoder wrote")
        if after_row:
            after_row(r)
        if progress:
            progress(1)
