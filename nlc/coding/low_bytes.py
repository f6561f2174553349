"""The low bytes of 16-bit samples, coded given their high bytes.

A 16-bit sample is ``256 * high + low``. The model codes the high bytes as an
ordinary 8-bit image; this module codes the low bytes, sample by sample in
raster order (channels of a pixel one after another), each given its own high
byte and the full 16-bit values of the samples coded before it. It is a small
online-adaptive context coder in the manner of JPEG-LS and LZMA's bit trees,
in integer arithmetic only, so a file decodes the same on every machine.

Per channel the encoder tries four predictions of the low byte and two ways of
turning the error into a symbol, and keeps the cheapest of the eight (one byte per
channel in the payload says which, :data:`MODES`):

* ``gradient`` — LOCO-I's median edge detector on the 16-bit values W, N and
  NW, clamped into the 256 values the high byte allows (true 16-bit data);
* ``planar`` — ``W + N - NW``, clamped the same way (steep smooth ramps, where
  the median detector lags by the smaller slope);
* ``copy`` — the high byte itself (8-bit data scaled by 257: ``low == high``);
* ``zero`` — 0 (8-bit data shifted left by 8 bits).

The error is folded into 0..255 (0, +1, -1, +2, ... within the values this
high byte allows, then the longer side alone), or taken modulo 256 (which keeps
a lattice of values, as in data resampled from fewer bits, on a lattice of
symbols), and coded as eight binary decisions down a bit tree; each node has an adaptive 16-bit probability per
context (40 contexts: local activity of the 16-bit neighbours times the size
of the neighbours' folded errors), coded with the compiled range coder of
:mod:`nlc.coding.range_kernels` (constriction's words).

The payload: ``u8 C``, ``C`` prediction bytes, then the coder's 32-bit words
(little-endian). :func:`encode_rest` adds a 16-bit alpha plane (FORMAT.md).
"""

from __future__ import annotations

import struct

import numpy as np
from numba import njit

from ..errors import FormatError
from .planes import decode_plane, encode_plane
from .range_kernels import decode_symbol, decoder_state, encode_symbol, encoder_state, finished_words

PREDICTIONS = ("gradient", "planar", "copy", "zero")
MAPPINGS = ("fold", "modulo")  # how an error becomes 0..255: small ones first, or (low - prediction) mod 256
MODES = tuple(f"{p}/{m}" for m in MAPPINGS for p in PREDICTIONS)  # mode k: prediction k % 4, mapping k // 4
ACTIVITY_BUCKETS = 8
ERROR_BUCKETS = 5
CONTEXTS = ACTIVITY_BUCKETS * ERROR_BUCKETS
ONE = 1 << 16  # probabilities of a 0 bit are in 1/65536
LIMIT = 62  # a node's adaptation rate falls as 1/(n + 2) to 1/(LIMIT + 2)
_RATES = np.array([ONE // (n + 2) for n in range(LIMIT + 1)], np.int64)
_COSTS = np.array([-np.log2(max(i, 0.5) / 4096) for i in range(4097)], np.float64)  # bits of a 1/4096 step


@njit(cache=True)
def _activity_bucket(a):
    if a == 0:
        return 0
    b = 0
    while a > 0:
        a >>= 1
        b += 1
    return min(1 + (b - 1) // 2, ACTIVITY_BUCKETS - 1)


@njit(cache=True)
def _error_bucket(s):
    if s == 0:
        return 0
    if s <= 2:
        return 1
    if s <= 8:
        return 2
    if s <= 32:
        return 3
    return 4


@njit(cache=True)
def _fold(e, pl):
    m = min(pl, 255 - pl)
    if e > m or e < -m:
        return m + abs(e)
    return 2 * e - 1 if e > 0 else -2 * e


@njit(cache=True)
def _unfold(idx, pl):
    m = min(pl, 255 - pl)
    if idx > 2 * m:
        return idx - m if 255 - pl > pl else m - idx
    return (idx + 1) // 2 if idx % 2 == 1 else -(idx // 2)


@njit(cache=True)
def _code(hi, lo, modes, op, words):
    """Estimate (``op`` 0: bits per channel), encode (1) or decode (2, into ``lo``) the low bytes.
    Returns ``(words, bits per channel, ok)``."""
    h, w, c = hi.shape
    prob = np.full((c, CONTEXTS, 256), ONE // 2, np.int64)
    seen = np.zeros((c, CONTEXTS, 256), np.int64)
    err = np.zeros((h, w, c), np.uint8)  # each sample's coded symbol (the neighbours' error context)
    bits = np.zeros(c, np.float64)
    cdf = np.zeros(3, np.uint64)
    cdf[2] = np.uint64(1 << 24)
    enc = encoder_state()
    dec = decoder_state(words)
    out = np.zeros(16, np.uint32)
    for y in range(h):
        for x in range(w):
            for ch in range(c):
                high = np.int64(hi[y, x, ch])
                base = high * 256
                if y > 0 and x > 0:
                    wv = np.int64(hi[y, x - 1, ch]) * 256 + lo[y, x - 1, ch]
                    nv = np.int64(hi[y - 1, x, ch]) * 256 + lo[y - 1, x, ch]
                    nw = np.int64(hi[y - 1, x - 1, ch]) * 256 + lo[y - 1, x - 1, ch]
                    ne = nv if x + 1 >= w else np.int64(hi[y - 1, x + 1, ch]) * 256 + lo[y - 1, x + 1, ch]
                    es = np.int64(err[y, x - 1, ch]) + np.int64(err[y - 1, x, ch])
                elif x > 0:
                    wv = np.int64(hi[y, x - 1, ch]) * 256 + lo[y, x - 1, ch]
                    nv, nw, ne = wv, wv, wv
                    es = 2 * np.int64(err[y, x - 1, ch])
                elif y > 0:
                    nv = np.int64(hi[y - 1, x, ch]) * 256 + lo[y - 1, x, ch]
                    wv, nw = nv, nv
                    ne = nv if x + 1 >= w else np.int64(hi[y - 1, x + 1, ch]) * 256 + lo[y - 1, x + 1, ch]
                    es = 2 * np.int64(err[y - 1, x, ch])
                else:
                    wv = nv = nw = ne = base + 128
                    es = np.int64(0)
                mode = modes[ch] % 4
                modulo = modes[ch] >= 4
                if mode <= 1:
                    if mode == 1 or min(wv, nv) < nw < max(wv, nv):
                        pred = wv + nv - nw
                    elif nw >= max(wv, nv):
                        pred = min(wv, nv)
                    else:
                        pred = max(wv, nv)
                    pl = min(max(pred - base, 0), 255)
                elif mode == 2:
                    pl = high
                else:
                    pl = np.int64(0)
                ctx = _activity_bucket(abs(wv - nw) + abs(nv - nw) + abs(ne - nv)) * ERROR_BUCKETS + _error_bucket(es)
                if op == 2:
                    idx = 0
                elif modulo:
                    idx = (np.int64(lo[y, x, ch]) - pl) & 255
                else:
                    idx = _fold(np.int64(lo[y, x, ch]) - pl, pl)
                node = 1
                for k in range(7, -1, -1):
                    p = prob[ch, ctx, node]
                    if op == 2:
                        cdf[1] = np.uint64(p) << np.uint64(8)
                        bit = decode_symbol(dec, words, cdf, 2)
                        if bit < 0:
                            return out, bits, False
                    else:
                        bit = (idx >> k) & 1
                        if op == 1:
                            cdf[1] = np.uint64(p) << np.uint64(8)
                            out = encode_symbol(enc, out, cdf, bit)
                        else:
                            bits[ch] += _COSTS[(p if bit == 0 else ONE - p) >> 4]
                    n = seen[ch, ctx, node]
                    r = _RATES[n]
                    if n < LIMIT:
                        seen[ch, ctx, node] = n + 1
                    if bit == 0:
                        p += ((ONE - p) * r) >> 16
                    else:
                        p -= (p * r) >> 16
                    prob[ch, ctx, node] = min(max(p, 64), ONE - 64)
                    node = 2 * node + bit
                if op == 2:
                    idx = node - 256
                    v = (pl + idx) & 255 if modulo else pl + _unfold(idx, pl)
                    if v < 0 or v > 255:
                        return out, bits, False
                    lo[y, x, ch] = v
                err[y, x, ch] = idx
    if op == 1:
        out = finished_words(enc, out)
    return out, bits, True


def mode_costs(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Estimated bits ``(len(MODES), C)`` of coding each channel's low bytes ``low`` ``(H, W, C)`` uint8 in each
    of :data:`MODES`, given their high bytes ``high`` (what :func:`encode_low_bytes` chooses by)."""
    high, low = np.ascontiguousarray(high, np.uint8), np.ascontiguousarray(low, np.uint8)
    none = np.zeros(0, np.uint32)
    return np.stack([_code(high, low, np.full(high.shape[2], m, np.int64), 0, none)[1] for m in range(len(MODES))])


def encode_low_bytes(high: np.ndarray, low: np.ndarray) -> bytes:
    """Code the low bytes ``low`` ``(H, W, C)`` uint8 of 16-bit samples given their high bytes ``high``
    (same shape), choosing each channel's prediction by its estimated cost."""
    high, low = np.ascontiguousarray(high, np.uint8), np.ascontiguousarray(low, np.uint8)
    c = high.shape[2]
    modes = mode_costs(high, low).argmin(axis=0).astype(np.int64)
    words, _, _ = _code(high, low, modes, 1, np.zeros(0, np.uint32))
    return bytes([c]) + modes.astype(np.uint8).tobytes() + words.astype("<u4").tobytes()


def decode_low_bytes(data: bytes, high: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_low_bytes`: the low bytes ``(H, W, C)`` uint8 for the high bytes ``high``."""
    high = np.ascontiguousarray(high, np.uint8)
    c = high.shape[2]
    if len(data) < 1 + c or data[0] != c or (len(data) - 1 - c) % 4:
        raise FormatError("corrupted low bytes of 16-bit samples (header)")
    modes = np.frombuffer(data[1 : 1 + c], np.uint8).astype(np.int64)
    if (modes >= len(MODES)).any():
        raise FormatError(f"corrupted low bytes of 16-bit samples (prediction {int(modes.max())})")
    words = np.frombuffer(data[1 + c :], "<u4").astype(np.uint32)
    low = np.zeros(high.shape, np.uint8)
    _, _, ok = _code(high, low, modes, 2, words)
    if not ok:
        raise FormatError("corrupted low bytes of 16-bit samples (invalid coder data)")
    return low


def encode_rest(samples: np.ndarray, channels: int) -> bytes:
    """What of 16-bit ``samples`` ``(H, W, planes)`` the model does not code, given that it codes the high
    bytes of the first ``channels`` planes: their low bytes (:func:`encode_low_bytes`), then for an alpha
    plane its high bytes (the classical plane coder) and its low bytes. Each part is preceded by its
    length (u32, little-endian), the last excepted."""
    high, low = (samples >> 8).astype(np.uint8), (samples & 255).astype(np.uint8)
    out = encode_low_bytes(high[:, :, :channels], low[:, :, :channels])
    if samples.shape[2] == channels:
        return out
    alpha = encode_plane(high[:, :, channels])
    return b"".join([struct.pack("<I", len(out)), out, struct.pack("<I", len(alpha)), alpha,
                     encode_low_bytes(high[:, :, channels:], low[:, :, channels:])])


def decode_rest(data: bytes, high: np.ndarray, planes: int) -> np.ndarray:
    """Inverse of :func:`encode_rest`: the 16-bit samples ``(H, W, planes)`` from the high bytes ``high``
    ``(H, W, channels)`` of the model-coded planes."""
    h, w, channels = high.shape
    parts = [data]
    if planes > channels:
        parts = []
        pos = 0
        for _ in range(2):
            if pos + 4 > len(data):
                raise FormatError("corrupted 16-bit planes (truncated)")
            (n,) = struct.unpack_from("<I", data, pos)
            parts.append(data[pos + 4 : pos + 4 + n])
            pos += 4 + n
        parts.append(data[pos:])
    low = decode_low_bytes(parts[0], high)
    samples = np.zeros((h, w, planes), np.uint16)
    samples[:, :, :channels] = (high.astype(np.uint16) << 8) | low
    if planes > channels:
        alpha_high = decode_plane(parts[1], h, w)[:, :, None]
        alpha_low = decode_low_bytes(parts[2], alpha_high)
        samples[:, :, channels:] = (alpha_high.astype(np.uint16) << 8) | alpha_low
    return samples
