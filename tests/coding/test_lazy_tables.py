"""Coding a stage from the edges it reads (nlc.coding.lazy_tables) writes the whole tables' words."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nlc import fixed
from nlc.coding import range_kernels as rk
from nlc.coding.adaptive_steps import table_constants
from nlc.coding.exact_kernels import inner_table, outer_table, updated_weights
from nlc.coding.lazy_tables import code_stage, updated_weights_at

CDF_T, STEPS, CONST, BUCKET, ONE, FLOOR = table_constants()[:6]


def _mixtures(rng: np.random.Generator, n: int, m: int, kind: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer weights (some zero), means on the 2^-10-level grid (some far outside 0..255), inverse scales
    from the table's range (the sharpest and the widest components included)."""
    weights = np.floor(rng.random((n, m)) ** (1 + 6 * kind) * 2.0**16)
    weights[:, 0] = np.maximum(weights[:, 0], 1.0)
    levels = np.round(rng.uniform(-40.0, 295.0, (n, m)) * 1024) / 1024
    inv = fixed.inverse_scale_lut().array
    inv_scales = inv[rng.integers(0, len(inv), (n, m))]
    if kind == 2:  # every component sharp on one level: near-certain buckets and places
        levels[:] = np.round(levels[:, :1])
        inv_scales[:] = inv.max()
    return weights, levels, inv_scales


def _whole_tables(weights, levels, inv_scales, values) -> tuple[np.ndarray, np.ndarray]:
    """The reference: both stages' whole tables, quantized and coded one symbol after another (every
    bucket, then every place), and the weights after the value."""
    enc, words = rk.encoder_state(), np.zeros(16, np.uint32)
    cdf = np.empty(17, np.uint64)
    outer, bounds = outer_table(weights, levels, inv_scales, CDF_T, STEPS, CONST, BUCKET, ONE, FLOOR)
    for i, v in enumerate(values):
        rk.quantized_cdf(outer[i], cdf)
        words = rk.encode_symbol(enc, words, cdf, v // BUCKET)
    table, local = inner_table(weights, levels, inv_scales, bounds, values // BUCKET, CDF_T, STEPS, CONST, BUCKET,
                               FLOOR)
    for i, v in enumerate(values):
        rk.quantized_cdf(table[i], cdf)
        words = rk.encode_symbol(enc, words, cdf, v % BUCKET)
    return rk.finished_words(enc, words), updated_weights(weights, local, values % BUCKET, float(fixed.WEIGHT_ONE))


def _lazy(weights, levels, inv_scales, values, words_in=None):
    """The same through :func:`code_stage`: encoding ``values``, or decoding ``words_in``. Returns (words or
    values, the weights after the value)."""
    n, m = weights.shape
    decoding = words_in is not None
    enc, words = rk.encoder_state(), np.zeros(16, np.uint32)
    dec = rk.decoder_state(words_in) if decoding else np.zeros(4, np.uint64)
    src = words_in if decoding else words
    edges, probe = np.zeros((4, n, m)), np.zeros(m)
    mixes, out = np.zeros((2, n)), np.zeros(n, np.int64)
    zeros, ones = np.zeros(m), np.full(m, ONE)
    for i in range(n):
        wsum = float(weights[i].sum())
        b, mixes[0, i], mixes[1, i], p, total, src = code_stage(
            decoding, 0 if decoding else values[i] // BUCKET, 256 // BUCKET, 0, BUCKET, weights, levels, inv_scales,
            i, wsum, FLOOR, CDF_T, STEPS, CONST, ONE, zeros, ones, 0.0, wsum * ONE, edges[0, i], edges[1, i], probe,
            dec, enc, src)
        assert b >= 0 and 0 < p <= total
        out[i] = b * BUCKET
    for i in range(n):
        place, *_, src = code_stage(
            decoding, 0 if decoding else values[i] % BUCKET, BUCKET, out[i], 1, weights, levels, inv_scales, i,
            float(weights[i].sum()), FLOOR, CDF_T, STEPS, CONST, ONE, edges[0, i], edges[1, i], mixes[0, i],
            mixes[1, i], edges[2, i], edges[3, i], probe, dec, enc, src)
        assert place >= 0
        out[i] += place
    after = np.zeros((n, m))
    for i in range(n):
        updated_weights_at(weights, i, edges[2, i], edges[3, i], float(fixed.WEIGHT_ONE), after[i])
    return (out if decoding else rk.finished_words(enc, src)), after


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 12), m=st.sampled_from([1, 3, 10]), kind=st.integers(0, 2), seed=st.integers(0, 2**32 - 1))
def test_lazy_stages_write_the_whole_tables_words_and_read_them_back(n, m, kind, seed):
    rng = np.random.default_rng(seed)
    weights, levels, inv_scales = _mixtures(rng, n, m, kind)
    values = rng.integers(0, 256, n)
    values[rng.random(n) < 0.3] = rng.choice([0, 15, 16, 239, 240, 255])  # the bounds' buckets and places
    if kind == 2:
        values = np.clip(levels[:, 0].astype(np.int64), 0, 255)
    words, after = _whole_tables(weights, levels, inv_scales, values)
    lazy_words, lazy_after = _lazy(weights, levels, inv_scales, values)
    np.testing.assert_array_equal(lazy_words, words)
    np.testing.assert_array_equal(lazy_after, after)
    decoded, decoded_after = _lazy(weights, levels, inv_scales, values, words_in=words)
    np.testing.assert_array_equal(decoded, values)
    np.testing.assert_array_equal(decoded_after, after)


def test_a_lazy_decoder_refuses_a_point_past_every_slot():
    weights, levels, inv_scales = _mixtures(np.random.default_rng(1), 1, 3, 0)
    dec = np.array([0, 1 << 40, (1 << 40) - 1, 0], np.uint64)  # the point at the top of the range: quantile 2^24 - 1
    assert rk.decode_quantile(dec) < 1 << 24
    dec[2] = np.uint64(0xFFFFFFFFFFFFFFFF)  # past the range: no encoder writes it
    s, *_ = code_stage(True, 0, 16, 0, BUCKET, weights, levels, inv_scales, 0, float(weights[0].sum()), FLOOR, CDF_T,
                       STEPS, CONST, ONE, np.zeros(3), np.full(3, ONE), 0.0, weights[0].sum() * ONE, np.zeros(3),
                       np.zeros(3), np.zeros(3), dec, rk.encoder_state(), np.zeros(1, np.uint32))
    assert s == -1
