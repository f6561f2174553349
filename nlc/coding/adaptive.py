"""Online adaptation to the image being coded: a correction of the model's means learned while coding.

The trained model is calibrated on average, but every image has its own
textures, noise and colours, and the model's errors on it are correlated: a
pixel whose already coded neighbours came out brighter than the model
predicted tends to come out brighter too. :class:`OnlineBias` learns that
relation on the image itself, in the decoder's order, and shifts every
mixture component's mean by what it predicts before the tables are built.

For each channel, the model's error at a pixel is normalised by the
mixture's typical scale (its weighted mean log-scale ``lsm``):
``t = (x - mean) / (2 exp(lsm))``. The correction predicts ``t`` of the pixel
being coded from a linear function of

* a constant;
* ``t`` of the same channel at the neighbours W, N, NW, NE, WW, NN of the
  same tile (zero where they are outside the tile or not yet coded);
* ``t`` of the other channels at W and N;
* ``t`` of the pixel's earlier channels (G sees R's, B sees R's and G's),

with separate coefficients per channel and per class of the model's scale
(``lsm`` in levels, five classes of ``e``-fold steps): recursive least squares
with exponential forgetting (each step multiplies the statistics by
``1 - 2^-9``), solved at the start of each tile row. The predicted ``t`` is
clipped to ``+-3`` and added to every component's mean in levels.

A correction that shrinks the squared error can still cost bits (on a
smooth image, where a sharp component's peak matters more than the tails), so
each channel and class also keeps a **gate**: the decayed sum of
``log2 p(with the shift) - log2 p(without)`` over the pixels coded so far,
both computed for every pixel; the shift is applied only while that sum is
positive.

Everything is integer or correctly rounded, so encoder and decoder (and any
two machines) compute the same shifts: normalised errors are integers in
``2^-6`` units, the statistics are int64 sums, the solve is Gaussian
elimination in Python floats (IEEE operations in a fixed order, no fused
multiply-add), its coefficients are rounded to ``2^-12``, and a shift is one
correctly rounded division rounded to the ``2^-10``-level grid of
:mod:`nlc.coding.exact_tables`. The state is only ever updated with symbols
already coded (:meth:`observe`), tiles sharing it: all tiles' pixels of one
step use the same coefficients, so the tiles still decode in parallel.

Settings (the neighbour set, classes, forgetting, clipping) were chosen on
768x512 crops of ``photos-val``; see ``docs/adaptive.md``.
"""

from __future__ import annotations

import numpy as np

import decimal
import functools

from .. import fixed
from .exact_tables import value_probability

NEIGHBOURS = ((0, -1), (-1, 0), (-1, -1), (-1, 1), (0, -2), (-2, 0))  # W N NW NE WW NN
T_BITS = 6  # normalised errors in units of 2^-6
T_CLIP = 8 << T_BITS  # |t| <= 8
DELTA_CLIP = 3 << T_BITS  # a predicted t is clipped to +-3
CLASSES = 5  # classes of the mixture's scale in levels: [.., e), [e, e^2), ... (log-scale floor, clipped)
LOG_127_5 = 317722  # round(log(127.5) * 2^16): a log-scale in [-1, 1] units -> in levels
FORGET_BITS = 9  # statistics decay by 1 - 2^-9 per step
RIDGE = (1 << (2 * T_BITS)) >> FORGET_BITS  # a ridge of 1.0 (in t^2 units) kept against the decay
COEFF_BITS = 12  # coefficients rounded to 2^-12
MEAN_BITS = 10  # shifts on the 2^-10-level grid (exact_tables.MEAN_BITS)
SHIFT_CLIP = 64 << MEAN_BITS  # and a shift to +-64 levels (only very wide components reach it)
PAD = 2  # rows above and columns on each side in the error store
_DR = np.array([dr for dr, _ in NEIGHBOURS])[None, :]
_DC = np.array([dc for _, dc in NEIGHBOURS])[None, :]


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """``A x = b`` for symmetric positive definite ``A`` by Gaussian elimination in Python floats
    (every operation IEEE double in a fixed order: the same result on every machine)."""
    n = len(b)
    a = [row[:] for row in a]
    b = b[:]
    for k in range(n):
        pivot = a[k][k]
        for i in range(k + 1, n):
            f = a[i][k] / pivot
            if f != 0.0:
                row_i, row_k = a[i], a[k]
                for j in range(k, n):
                    row_i[j] = row_i[j] - f * row_k[j]
                b[i] = b[i] - f * b[k]
    x = [0.0] * n
    for i in reversed(range(n)):
        s = b[i]
        for j in range(i + 1, n):
            s = s - a[i][j] * x[j]
        x[i] = s / a[i][i]
    return x


LOG_BITS = 16  # code lengths in 2^-16 bits
_LOG_IN_BITS = 13


@functools.lru_cache(maxsize=None)
def _log2_table() -> np.ndarray:
    """``log2(m)`` for ``m = 0.5 + i 2^-13`` in ``[0.5, 1)``, correctly rounded to ``2^-16`` (any machine)."""
    lut = fixed.build_lut(np.log2, lambda x: x.ln() / decimal.Decimal(2).ln(), 0.5, 1.0 - 2.0**-_LOG_IN_BITS,
                          _LOG_IN_BITS, out_bits=LOG_BITS)
    return (lut.array * 2.0**LOG_BITS).astype(np.int64)


def log2_fixed(p: np.ndarray) -> np.ndarray:
    """``log2 p`` of positive integers (as float64, below ``2^53``) in ``2^-16`` units, with the mantissa
    truncated to 13 bits: integer arithmetic, the same on every machine."""
    m, e = np.frexp(p)  # exact: p = m 2^e, 0.5 <= m < 1
    idx = (m * 2.0**_LOG_IN_BITS).astype(np.int64) - (1 << (_LOG_IN_BITS - 1))
    return e.astype(np.int64) * (1 << LOG_BITS) + _log2_table()[idx]


class OnlineBias:
    """The adaptive stage of one group of tiles (see the module docstring).

    The coder calls :meth:`start_row` at each tile row, :meth:`at` before each
    step, then for each channel :meth:`shift` (before its tables are built)
    and :meth:`observe` (once its values are coded).
    """

    name = "bias-v1"

    def __init__(self, batch: int, tile_h: int, tile_w: int, channels: int) -> None:
        self.channels = channels
        self.errors = np.zeros((batch, channels, tile_h + PAD, tile_w + 2 * PAD), np.int64)
        dims = [1 + len(NEIGHBOURS) + 2 * (channels - 1) + ch for ch in range(channels)]
        self.gram = [np.zeros((CLASSES, d, d), np.int64) for d in dims]
        self.moment = [np.zeros((CLASSES, d), np.int64) for d in dims]
        for g in self.gram:
            g[:] = np.eye(g.shape[1], dtype=np.int64) * (1 << (2 * T_BITS))
        self.coeffs = [np.zeros((CLASSES, d), np.int64) for d in dims]
        self.gain = np.zeros((channels, CLASSES), np.int64)  # the gate: bits the shift saved, 2^-16 units
        self._step: tuple[int, int, np.ndarray] | None = None

    def start_row(self, r: int) -> None:
        """Solve every class's least-squares system for the row ahead (from the statistics so far)."""
        for ch in range(self.channels):
            for k in range(CLASSES):
                g, m = self.gram[ch][k], self.moment[ch][k]
                x = _solve([[float(v) for v in row] for row in g], [float(v) for v in m])
                self.coeffs[ch][k] = [int(np.floor(v * (1 << COEFF_BITS) + 0.5)) for v in x]

    def at(self, r: int, c: int, tiles: np.ndarray) -> None:
        """The next step codes pixel ``(r, c)`` of the tiles ``tiles`` (indices into the group)."""
        self._step = (r, c, tiles)
        self._current: list[np.ndarray] = []

    def shift(self, ch: int, weights: np.ndarray, log_scales: np.ndarray, inv_scales: np.ndarray,
              levels: np.ndarray) -> np.ndarray:
        """Channel ``ch``'s component means ``levels`` ``(n, M)`` (on the ``2^-10`` grid) shifted by the
        predicted error where the gate is open; ``weights`` ``(n, M)`` are the integer mixture weights,
        ``log_scales`` the components' log-scales on the ``2^-16`` grid, ``inv_scales`` their inverse
        scales in levels (:class:`~nlc.coding.exact_tables.ExactMixture`)."""
        r, c, tiles = self._step
        den = weights.sum(1)
        lsm = np.floor((weights * np.round(log_scales * 65536.0)).sum(1) / den)  # weighted mean, 2^-16 units
        cls = np.clip(np.floor((lsm + LOG_127_5) / 65536.0), 0, CLASSES - 1).astype(np.int64)
        inv = fixed.inverse_scale_lut().at(lsm / 65536.0)  # 1 / (scale in levels), 14 significant bits
        mean = np.floor((weights * np.round(levels * 1024.0)).sum(1) / den)  # 2^-10 levels
        k = 1 + len(NEIGHBOURS)
        f = np.empty((len(tiles), k + 2 * (self.channels - 1) + ch), np.int64)
        f[:, 0] = 1 << T_BITS
        f[:, 1:k] = self.errors[tiles[:, None], ch, r + PAD + _DR, c + PAD + _DC]
        for other in range(self.channels):
            if other != ch:
                f[:, k : k + 2] = self.errors[tiles[:, None], other, r + PAD + _DR[:, :2], c + PAD + _DC[:, :2]]
                k += 2
        for t in self._current:
            f[:, k] = t
            k += 1
        delta = (f * self.coeffs[ch][cls]).sum(1) >> COEFF_BITS  # exact int64
        np.clip(delta, -DELTA_CLIP, DELTA_CLIP, out=delta)
        shift = np.floor(delta * float(1 << (MEAN_BITS - T_BITS + 1)) / inv + 0.5)  # 2^-10 levels
        np.clip(shift, -SHIFT_CLIP, SHIFT_CLIP, out=shift)
        moved = levels + (shift * 2.0**-MEAN_BITS)[:, None]
        self._pending = (f, cls, mean, inv, weights, levels, moved, inv_scales)
        return np.where((self.gain[ch, cls] > 0)[:, None], moved, levels)

    def observe(self, ch: int, values: np.ndarray) -> None:
        """Learn from channel ``ch``'s coded ``values`` ``(n,)`` of the current step."""
        r, c, tiles = self._step
        f, cls, mean, inv, weights, levels, moved, inv_scales = self._pending
        e = values.astype(np.float64) * 1024.0 - mean  # 2^-10 levels, exact
        t = np.clip(np.floor(e * inv * 2.0 ** (T_BITS - MEAN_BITS - 1)), -T_CLIP, T_CLIP).astype(np.int64)
        self.errors[tiles, ch, r + PAD, c + PAD] = t
        self._current.append(t)
        g, m = self.gram[ch], self.moment[ch]
        g -= g >> FORGET_BITS
        m -= m >> FORGET_BITS
        d = g.shape[1]
        g[:, np.arange(d), np.arange(d)] += RIDGE
        onehot = (cls[:, None] == np.arange(CLASSES)[None, :]).astype(np.int64)  # (n, classes)
        saved = (log2_fixed(value_probability(weights, moved, inv_scales, values))
                 - log2_fixed(value_probability(weights, levels, inv_scales, values)))
        self.gain[ch] -= self.gain[ch] >> FORGET_BITS
        self.gain[ch] += saved @ onehot
        g += np.einsum("nk,ni,nj->kij", onehot, f, f)  # exact integer sums
        m += np.einsum("nk,ni->ki", onehot, f * t[:, None])

    def state(self) -> tuple[np.ndarray, ...]:
        """The whole learned state (for tests: the encoder's and decoder's must be equal)."""
        return (self.errors, self.gain, *self.gram, *self.moment, *self.coeffs)


STAGES = {OnlineBias.name: OnlineBias}


def make_stage(name: str | None, batch: int, tile_h: int, tile_w: int, channels: int) -> OnlineBias | None:
    """The adaptive stage called ``name`` for a group of tiles, or ``None`` for no adaptation."""
    if name is None:
        return None
    try:
        return STAGES[name](batch, tile_h, tile_w, channels)
    except KeyError:
        raise ValueError(f"unknown adaptive stage {name!r} (known: {', '.join(STAGES)})") from None
