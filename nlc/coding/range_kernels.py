"""constriction's range coder and categorical quantization, compiled, for use inside other kernels.

:class:`~nlc.coding.coders.RangeQueue` codes through constriction, one Python
call per batch of symbols. A step loop that builds a table, codes one symbol
and builds the next table from it pays that call's overhead a few times per
pixel. These kernels do the same coding from inside a compiled loop
(:mod:`nlc.coding.adaptive_steps`), and they produce and read **the same
words**: constriction's ``RangeEncoder``/``RangeDecoder`` with 32-bit words, a
64-bit state and 24-bit probabilities, and its ``Categorical(perfect=False)``
model (``from_floating_point_probabilities_fast``). ``tests/coding/test_range_kernels.py``
checks words and symbols against constriction on random tables.

The model: a row of ``K`` non-negative float64 probabilities becomes the CDF
``cdf[i] = trunc(c_i * (2^24 - K) / s) + i`` (``c_i`` the sum of the first
``i`` entries left to right, ``s`` of all of them) and ``cdf[K] = 2^24``:
every symbol keeps at least one of the ``2^24`` slots. The coder: the
interval ``[lower, lower + range)`` of 64-bit integers narrows by
``range >> 24`` times the symbol's slots; when ``range`` drops below ``2^32``
one 32-bit word moves out (the encoder holds back words while a carry could
still change them: its *inverted* situation).

State arrays (numba has no classes here): a decoder is ``dec = [lower, range,
point, position]`` (uint64) over its ``words`` (uint32); an encoder is ``enc =
[lower, range, inverted words, first inverted word, words written]`` (uint64)
over a growable ``words`` buffer (uint32) returned by every call.
"""

from __future__ import annotations

import numpy as np
from numba import njit

PRECISION = 24
_TOTAL = np.uint64(1 << PRECISION)
_WORD_BITS = np.uint64(32)
_LOW_RANGE = np.uint64(1 << 32)  # range below this: a word moves out
_MAX = np.uint64(0xFFFFFFFFFFFFFFFF)
_WORD_MAX = np.uint64(0xFFFFFFFF)
_ZERO = np.uint64(0)
_ONE = np.uint64(1)
_SHIFT = np.uint64(PRECISION)


@njit(cache=True)
def quantized_cdf(probs, cdf):
    """Fill ``cdf`` ``(K + 1,)`` uint64 with constriction's fast quantization of ``probs`` ``(K,)``; returns
    False where it refuses the row (a sum that is not a positive normal number)."""
    k = probs.shape[0]
    total = 0.0
    for i in range(k):
        total += probs[i]
    if not (total >= 2.2250738585072014e-308 and total < np.inf):
        return False
    scale = float(_TOTAL - np.uint64(k)) / total
    cum = 0.0
    for i in range(k):
        cdf[i] = np.uint64(cum * scale) + np.uint64(i)
        cum += probs[i]
    cdf[k] = _TOTAL
    return True


@njit(cache=True)
def decoder_state(words):
    """A fresh decoder over ``words``: ``[lower, range, point, position]`` (constriction reads up to two
    words into the point, padding a short payload with zero bits)."""
    dec = np.zeros(4, np.uint64)
    dec[1] = _MAX
    point = _ZERO
    n = 0
    while n < 2 and n < words.shape[0]:
        point = (point << _WORD_BITS) | np.uint64(words[n])
        n += 1
    if n == 1:
        point = point << _WORD_BITS
    dec[2] = point
    dec[3] = np.uint64(n)
    return dec


@njit(cache=True)
def decode_quantile(dec):
    """The decoder's point as a quantile of the ``2^24`` slots; ``2^24`` or more for data no encoder wrote."""
    return (dec[2] - dec[0]) // (dec[1] >> _SHIFT)


@njit(cache=True)
def decode_interval(dec, words, left, right):
    """Take the symbol whose slots are ``[left, right)`` (the one :func:`decode_quantile` falls in) out of
    the decoder, reading a word where its range runs low."""
    lower, rng, point = dec[0], dec[1], dec[2]
    scale = rng >> _SHIFT
    lower = lower + scale * left
    rng = scale * (right - left)
    if rng < _LOW_RANGE:
        lower = lower << _WORD_BITS
        rng = rng << _WORD_BITS
        point = point << _WORD_BITS
        pos = dec[3]
        if pos < np.uint64(words.shape[0]):
            point = point | np.uint64(words[pos])
            dec[3] = pos + _ONE
    dec[0], dec[1], dec[2] = lower, rng, point


@njit(cache=True)
def decode_symbol(dec, words, cdf, k):
    """Decode one symbol under the CDF ``cdf[:k + 1]``; returns it, or -1 for data no encoder wrote."""
    quantile = decode_quantile(dec)
    if quantile >= _TOTAL:
        return -1
    lo, hi = 0, k  # the last symbol whose left edge is at most the quantile
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if cdf[mid] <= quantile:
            lo = mid
        else:
            hi = mid
    decode_interval(dec, words, cdf[lo], cdf[lo + 1])
    return lo


@njit(cache=True)
def encoder_state():
    """A fresh encoder: ``[lower, range, inverted words, first inverted word, words written]``."""
    enc = np.zeros(5, np.uint64)
    enc[1] = _MAX
    return enc


@njit(cache=True)
def _write(enc, words, word):
    n = enc[4]
    if n >= np.uint64(words.shape[0]):
        grown = np.zeros(2 * words.shape[0] + 16, np.uint32)
        grown[: words.shape[0]] = words
        words = grown
    words[n] = np.uint32(word)
    enc[4] = n + _ONE
    return words


@njit(cache=True)
def _flush_inverted(enc, words, wrapped):
    """Write the held-back words: the first plus one and zeros after a carry, else it and all-ones."""
    first = enc[3] + _ONE if wrapped else enc[3]
    rest = _ZERO if wrapped else _WORD_MAX
    words = _write(enc, words, first)
    for _ in range(int(enc[2]) - 1):
        words = _write(enc, words, rest)
    enc[2] = _ZERO
    return words


@njit(cache=True)
def encode_interval(enc, words, left, right):
    """Encode the symbol whose slots are ``[left, right)`` of the ``2^24``; returns the (possibly regrown)
    word buffer."""
    lower, rng = enc[0], enc[1]
    scale = rng >> _SHIFT
    rng = scale * (right - left)
    new_lower = lower + scale * left
    if enc[2] > _ZERO and new_lower + rng > new_lower:  # an inverted situation resolves
        words = _flush_inverted(enc, words, new_lower < lower)
    lower = new_lower
    if rng < _LOW_RANGE:
        rng = rng << _WORD_BITS
        word = lower >> _WORD_BITS
        lower = lower << _WORD_BITS
        if enc[2] > _ZERO:
            enc[2] += _ONE
        elif lower + rng > lower:
            words = _write(enc, words, word)
        else:
            enc[2] = _ONE
            enc[3] = word
    enc[0], enc[1] = lower, rng
    return words


@njit(cache=True)
def encode_symbol(enc, words, cdf, symbol):
    """Encode ``symbol`` under the CDF ``cdf``; returns the (possibly regrown) word buffer."""
    return encode_interval(enc, words, cdf[symbol], cdf[symbol + 1])


@njit(cache=True)
def finished_words(enc, words):
    """The encoder's words with constriction's closing words (none if nothing was encoded)."""
    out = words[: int(enc[4])].copy()
    if enc[1] == _MAX:
        return out
    state = enc.copy()
    buf = np.zeros(int(enc[4]) + int(enc[2]) + 4, np.uint32)
    buf[: out.shape[0]] = out
    lower, rng = enc[0], enc[1]
    point = lower + (_LOW_RANGE - _ONE)
    if state[2] > _ZERO:
        buf = _flush_inverted(state, buf, point < lower)
    point_word = point >> _WORD_BITS
    buf = _write(state, buf, point_word)
    if (lower + rng) >> _WORD_BITS == point_word:
        buf = _write(state, buf, _ZERO)
    return buf[: int(state[4])].copy()


@njit(cache=True)
def encode_rows(enc, words, symbols, probs):
    """Encode ``symbols`` ``(n,)`` each under its row of ``probs`` ``(n, K)`` (as ``RangeQueue.encode``);
    returns the word buffer, or an empty one where a symbol is outside its row or a row cannot be
    quantized."""
    n, k = probs.shape
    cdf = np.empty(k + 1, np.uint64)
    for i in range(n):
        if symbols[i] < 0 or symbols[i] >= k or not quantized_cdf(probs[i], cdf):
            return np.zeros(0, np.uint32)
        words = encode_symbol(enc, words, cdf, symbols[i])
    return words


@njit(cache=True)
def decode_rows(dec, words, probs):
    """Decode ``n`` symbols, each under its row of ``probs`` ``(n, K)`` (as ``RangeQueue.decode``); a
    symbol is -1 from where the data is invalid on."""
    n, k = probs.shape
    cdf = np.empty(k + 1, np.uint64)
    out = np.full(n, -1, np.int64)
    for i in range(n):
        if not quantized_cdf(probs[i], cdf):
            return out
        s = decode_symbol(dec, words, cdf, k)
        if s < 0:
            return out
        out[i] = s
    return out


@njit(cache=True)
def encode_shared(enc, words, symbols, probs):
    """Encode ``symbols`` ``(n,)`` all under one row ``probs`` ``(K,)``: the words :func:`encode_rows` writes
    with that row repeated, quantized once. Returns the word buffer, or an empty one as :func:`encode_rows`."""
    k = probs.shape[0]
    cdf = np.empty(k + 1, np.uint64)
    if not quantized_cdf(probs, cdf):
        return np.zeros(0, np.uint32)
    for i in range(symbols.shape[0]):
        if symbols[i] < 0 or symbols[i] >= k:
            return np.zeros(0, np.uint32)
        words = encode_symbol(enc, words, cdf, symbols[i])
    return words


@njit(cache=True)
def decode_shared(dec, words, probs, n):
    """Decode ``n`` symbols all under one row ``probs`` ``(K,)`` (as :func:`decode_rows` with the row
    repeated); a symbol is -1 from where the data is invalid on."""
    k = probs.shape[0]
    cdf = np.empty(k + 1, np.uint64)
    out = np.full(n, -1, np.int64)
    if not quantized_cdf(probs, cdf):
        return out
    for i in range(n):
        s = decode_symbol(dec, words, cdf, k)
        if s < 0:
            return out
        out[i] = s
    return out
