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

import decimal
import functools
from typing import Callable, NamedTuple

import numpy as np

from .. import fixed
from .adaptive_kernels import observe_kernel, scale_kernel, shift_kernel, solve_kernel

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
SCALE_FACTORS = (0.85, 0.92, 1.0, 1.08, 1.17)  # bias-v2: a context's scales may be multiplied by one of these
ACTIVITIES = 6  # bias-v2's scale contexts: floor(log2) of the neighbours' |t| sum, clipped, per scale class
PAD = 2  # rows above and columns on each side in the error store
_DR = np.array([dr for dr, _ in NEIGHBOURS])  # the neighbours' row and column offsets, for the kernels
_DC = np.array([dc for _, dc in NEIGHBOURS])


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """``A x = b`` for symmetric positive definite ``A`` by Gaussian elimination in Python floats
    (every operation IEEE double in a fixed order: the same result on every machine). The readable
    reference of the compiled :func:`~nlc.coding.adaptive_kernels.solve_kernel` that the stage runs
    (``tests/coding/test_adaptive.py`` checks that they agree)."""
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


class _Pending(NamedTuple):
    """What :meth:`OnlineBias.shift` computed for the channel being coded, for :meth:`OnlineBias.observe`."""

    f: np.ndarray  # features (n, d)
    cls: np.ndarray  # scale classes (n,)
    mean: np.ndarray  # mixture means, 2^-10 levels
    inv: np.ndarray  # inverse typical scales
    weights: np.ndarray
    levels: np.ndarray  # the model's component means
    moved: np.ndarray  # shifted by the correction
    base_inv: np.ndarray  # the model's inverse scales
    act: np.ndarray  # activity classes (n,)
    coded: np.ndarray  # the means the tables use (moved where the gate is open)
    inv_scales: np.ndarray  # the inverse scales the tables use


class OnlineBias:
    """The adaptive stage of one group of tiles (see the module docstring).

    The coder calls :meth:`start_row` at each tile row, :meth:`at` before each
    step, then for each channel :meth:`shift` (before its tables are built)
    and :meth:`observe` (once its values are coded).
    """

    name = "bias-v1"
    PIXELS = False  # bias-v2: the neighbours' values among the features
    SCALES = False  # bias-v2: a scale factor per context, the one that coded best so far

    def __init__(self, batch: int, tile_h: int, tile_w: int, channels: int, *, neighbours: bool = True,
                 cross: bool = True, classes: int = CLASSES, gate: bool = True, pixels: bool | None = None,
                 scales: bool | None = None) -> None:
        """A fresh stage for ``batch`` tiles of ``tile_h x tile_w`` with ``channels`` channels. The keyword
        switches leave parts out (or, ``pixels`` and ``scales``, add them) for ablations
        (``bench/adaptive.py``); the codec uses its class's set: the neighbours' errors, the other
        channels' errors (``cross``), ``classes`` scale classes, the gate, and for ``bias-v2`` the
        neighbours' values and the scale factors."""
        self.channels = channels
        self.use_neighbours, self.cross, self.classes, self.gate = neighbours, cross and channels > 1, classes, gate
        self.use_pixels = self.PIXELS if pixels is None else pixels
        self.use_scales = self.SCALES if scales is None else scales
        self.errors = np.zeros((batch, channels, tile_h + PAD, tile_w + 2 * PAD), np.int64)
        self.pixels = np.zeros_like(self.errors)  # coded values + 1 (0: not coded)
        self.losses = np.zeros((channels, CLASSES, ACTIVITIES, len(SCALE_FACTORS)), np.int64)  # 2^-16 bits
        self.factors = np.array([1.0 / f for f in SCALE_FACTORS])  # on the inverse scales
        self.neutral = SCALE_FACTORS.index(1.0)
        dims = [self._width(ch) for ch in range(channels)]
        self.gram = [np.zeros((CLASSES, d, d), np.int64) for d in dims]
        self.moment = [np.zeros((CLASSES, d), np.int64) for d in dims]
        for g in self.gram:
            g[:] = np.eye(g.shape[1], dtype=np.int64) * (1 << (2 * T_BITS))
        self.coeffs = [np.zeros((CLASSES, d), np.int64) for d in dims]
        self.gain = np.zeros((channels, CLASSES), np.int64)  # the gate: bits the shift saved, 2^-16 units
        self._step: tuple[int, int, np.ndarray] | None = None

    def _width(self, ch: int) -> int:
        """Features of channel ``ch``: the constant, the neighbours, the other channels, earlier channels."""
        return 1 + len(NEIGHBOURS) + 2 * (self.channels - 1) + ch + (len(NEIGHBOURS) if self.use_pixels else 0)

    def start_row(self, r: int) -> None:
        """Solve every class's least-squares system for the row ahead (from the statistics so far)."""
        for ch in range(self.channels):
            self.coeffs[ch] = solve_kernel(self.gram[ch], self.moment[ch], COEFF_BITS)

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
        assert self._step is not None, "at() positions the stage before a step"
        r, c, tiles = self._step
        n = len(tiles)
        current = np.stack(self._current, 1) if self._current else np.zeros((n, 0), np.int64)
        out, moved, f, cls, mean, inv, act = shift_kernel(
            weights, log_scales, levels, *fixed.inverse_scale_lut().kernel_args, self.errors, tiles.astype(np.int64), r, c, ch,
            current, self.coeffs[ch], self.gain[ch], _DR, _DC, PAD, self.classes, LOG_127_5, 1 << T_BITS,
            COEFF_BITS, DELTA_CLIP, float(1 << (MEAN_BITS - T_BITS + 1)), SHIFT_CLIP, 2.0**-MEAN_BITS,
            self.use_neighbours, self.cross, self.gate, self.pixels, self.use_pixels, 2.0 ** (T_BITS - MEAN_BITS - 1),
            T_CLIP)
        self._pending = _Pending(f, cls, mean, inv, weights, levels, moved, inv_scales, act, out, inv_scales)
        return out

    def scales(self, ch: int) -> np.ndarray:
        """Channel ``ch``'s inverse scales to build the tables with (after :meth:`shift`): the model's, or
        for ``bias-v2`` each pixel's multiplied by its context's best factor so far."""
        p = self._pending
        if not self.use_scales:
            return p.base_inv
        scaled = scale_kernel(p.base_inv, p.cls, p.act, self.losses[ch], self.factors, self.neutral, fixed.SCALE_BITS)
        self._pending = p._replace(inv_scales=scaled)
        return scaled

    def observe(self, ch: int, values: np.ndarray) -> None:
        """Learn from channel ``ch``'s coded ``values`` ``(n,)`` of the current step."""
        assert self._step is not None, "at() positions the stage before a step"
        r, c, tiles = self._step
        f, cls, mean, inv, weights, levels, moved, base_inv, act, coded, inv_scales = self._pending
        t = observe_kernel(
            values.astype(np.int64), f, cls, mean, inv, weights, levels, moved, inv_scales, self.errors,
            tiles.astype(np.int64), r, c, ch, PAD, self.gram[ch], self.moment[ch], self.gain[ch],
            2.0 ** (T_BITS - MEAN_BITS - 1), T_CLIP, FORGET_BITS, RIDGE, *fixed.cdf_lut().kernel_args,
            float(2**fixed.CDF_BITS), float(2 ** (fixed.CDF_BITS - 24)), _log2_table(), _LOG_IN_BITS, LOG_BITS,
            self.pixels, act, coded, base_inv, self.losses[ch], self.factors, fixed.SCALE_BITS, self.use_scales,
            np.full(len(values), -1.0))  # the coded masses: not known here
        self._current.append(t)

    def adopt(self, other: "OnlineBias") -> None:
        """Continue from ``other``'s learned statistics (least squares, gates, scale factors' code lengths):
        a later group of tiles of the same image (:mod:`nlc.coding.context_tiles`). The per-tile stores
        of errors and values start empty: the tiles are new."""
        for mine, theirs in zip(self.gram, other.gram):
            mine[:] = theirs
        for mine_m, theirs_m in zip(self.moment, other.moment):
            mine_m[:] = theirs_m
        self.gain[:] = other.gain
        self.losses[:] = other.losses

    def kernel_args(self) -> tuple[tuple, tuple, tuple, tuple]:
        """The stage as the compiled step loop takes it (:mod:`nlc.coding.adaptive_steps`): its constants and
        arrays in the kernels' order, and per channel the coefficients, Gram matrices and moments (the
        arrays themselves: the loop updates them in place). Call it after :meth:`start_row`, which
        replaces the coefficients."""
        stage = (*fixed.inverse_scale_lut().kernel_args, self.errors, self.pixels, self.gain, self.losses,
                 self.factors, self.neutral, _DR, _DC, PAD, self.classes, LOG_127_5, 1 << T_BITS, COEFF_BITS,
                 DELTA_CLIP, float(1 << (MEAN_BITS - T_BITS + 1)), SHIFT_CLIP, self.use_neighbours, self.cross,
                 self.gate, self.use_pixels, 2.0 ** (T_BITS - MEAN_BITS - 1), T_CLIP, FORGET_BITS, RIDGE,
                 _log2_table(), _LOG_IN_BITS, LOG_BITS, fixed.SCALE_BITS, self.use_scales)
        return stage, tuple(self.coeffs), tuple(self.gram), tuple(self.moment)

    def state(self) -> tuple[np.ndarray, ...]:
        """The whole learned state (for tests: the encoder's and decoder's must be equal)."""
        return (self.errors, self.pixels, self.gain, self.losses, *self.gram, *self.moment, *self.coeffs)


class OnlineBiasV2(OnlineBias):
    """``bias-v1`` with two more parts, chosen on ``photos-val`` crops in 128x128 tiles: the neighbours'
    coded values relative to the pixel's mixture mean among the features (the correction can then
    lean toward a local linear predictor of the pixel itself), and a scale factor per channel, scale
    class and neighbourhood activity (the sum of the W, N, NW, NE errors' magnitudes): each of
    :data:`SCALE_FACTORS` is tried on every coded pixel, its code length kept with the statistics'
    forgetting, and the tables use the factor that coded that context best so far."""

    name = "bias-v2"
    PIXELS = True
    SCALES = True


STAGES = {OnlineBias.name: OnlineBias, OnlineBiasV2.name: OnlineBiasV2}


StageFactory = Callable[[int, int, int, int], OnlineBias]


def make_stage(name: str | StageFactory | None, batch: int, tile_h: int, tile_w: int,
               channels: int) -> OnlineBias | None:
    """The adaptive stage called ``name`` (or made by the factory ``name``: ablations) for a group of
    tiles, or ``None`` for no adaptation."""
    if name is None:
        return None
    if callable(name):
        return name(batch, tile_h, tile_w, channels)
    try:
        return STAGES[name](batch, tile_h, tile_w, channels)
    except KeyError:
        raise ValueError(f"unknown adaptive stage {name!r} (known: {', '.join(STAGES)})") from None
