"""The compiled range coder (nlc.coding.range_kernels) writes and reads constriction's words exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nlc.coding import range_kernels
from nlc.coding.coders import CoderError, CompiledRangeQueue, RangeQueue


def _tables(rng: np.random.Generator, n: int, k: int, kind: int) -> np.ndarray:
    if kind == 0:
        return rng.random((n, k))
    if kind == 1:  # integer tables of a huge dynamic range, as the exact codecs hand over
        return np.floor(rng.random((n, k)) ** 8 * 2.0**46) + 64
    probs = np.zeros((n, k))  # nearly certain symbols: long runs of held-back words
    probs[:, 0] = 1.0
    return probs + (rng.random((n, k)) < 0.1) * 1e-9


def _same_outcome(data: bytes, probs: np.ndarray) -> None:
    """Decoding ``data`` under ``probs`` gives constriction's symbols, or both refuse it."""
    try:
        expected = RangeQueue(data).decode(probs)
    except CoderError:
        with pytest.raises(CoderError, match="range decoder failed"):
            CompiledRangeQueue(data).decode(probs)
    else:
        np.testing.assert_array_equal(CompiledRangeQueue(data).decode(probs), expected)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 300), k=st.sampled_from([2, 3, 16, 256]), kind=st.integers(0, 2), seed=st.integers(0, 2**32 - 1),
       split=st.integers(0, 300))
def test_words_and_symbols_are_constrictions(n, k, kind, seed, split):
    rng = np.random.default_rng(seed)
    probs = _tables(rng, n, k, kind)
    symbols = rng.integers(0, k, n)
    reference = RangeQueue()
    reference.encode(symbols, probs)
    compiled = CompiledRangeQueue()
    compiled.encode(symbols[:split], probs[:split])  # batches of any size join seamlessly
    compiled.encode(symbols[split:], probs[split:])
    data = reference.to_bytes()
    assert compiled.to_bytes() == data and compiled.num_bits() == reference.num_bits()
    np.testing.assert_array_equal(CompiledRangeQueue(data).decode(probs), symbols)
    _same_outcome(data, rng.random((n, k)))  # the wrong tables


@pytest.mark.parametrize("words", [[], [7], [0xFFFFFFFF] * 3, [1, 2, 3, 4, 5]])
def test_short_and_garbage_payloads_decode_as_constriction_does(words):
    _same_outcome(np.array(words, "<u4").tobytes(), np.random.default_rng(0).random((40, 16)))


def test_bad_symbols_tables_and_payloads_are_refused():
    enc = CompiledRangeQueue()
    with pytest.raises(ValueError, match="outside its table"):
        enc.encode(np.array([3]), np.ones((1, 3)))
    with pytest.raises(ValueError, match="not a positive number"):
        enc.encode(np.array([0]), np.zeros((1, 3)))
    with pytest.raises(CoderError, match="whole number of 32-bit words"):
        CompiledRangeQueue(b"abc")
    with pytest.raises(CoderError, match="no data to decode"):
        enc.decode(np.ones((1, 3)))


def test_nothing_encoded_is_no_words():
    assert CompiledRangeQueue().to_bytes() == b"" == RangeQueue().to_bytes()
    assert range_kernels.finished_words(range_kernels.encoder_state(), np.zeros(4, np.uint32)).size == 0
