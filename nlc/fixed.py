"""Fixed-point primitives that give the same numbers on every machine.

Floating-point results differ between machines for two reasons: sums come out
in a different order (BLAS blocking, vector widths, threads), and
transcendental functions (``exp``, ``tanh``) differ in the last bit between
libraries. Exact arithmetic avoids both:

* **Dyadic values in float64.** Every activation is a multiple of
  :data:`GRID` (``2^-16``) clamped to ``|x| <= 2^10``, and every weight a
  multiple of a power of two with at most 14 significant bits. Products and
  sums of such numbers are exact in float64 while they stay below ``2^53``
  grid units, so a convolution gives the same value in any summation order,
  with or without FMA, on any CPU or GPU. :func:`snap` rounds an exact
  accumulator back to the grid (round half to even, also exact).
* **Lookup tables for nonlinear functions.** A :class:`Lut` maps a value
  rounded to an input grid to the correctly rounded value of the function on
  an output grid. It is built from numpy's float64 result where that is
  provably far from a rounding boundary and from 50-digit :mod:`decimal`
  arithmetic where it is not, so every machine builds the same table.

The models (:mod:`nlc.models.exact`) and the coding layer's integer tables
(:mod:`nlc.coding.exact_tables`) share these.
"""

from __future__ import annotations

import decimal
import functools
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

import numpy as np
import torch

GRID_BITS = 16
GRID = 2.0**-GRID_BITS
LIMIT = 2.0**10  # activations are clamped to [-LIMIT, LIMIT]
WEIGHT_BITS = 14  # significant bits of a weight (sign included)


def snap(x: torch.Tensor) -> torch.Tensor:
    """``x`` rounded to the activation grid (half to even) and clamped to ``+-LIMIT``; exact for dyadic ``x``."""
    return torch.round(x * 2.0**GRID_BITS).clamp_(-LIMIT * 2.0**GRID_BITS, LIMIT * 2.0**GRID_BITS).mul_(GRID)


def clamp_(x: torch.Tensor) -> torch.Tensor:
    """Clamp grid values to ``+-LIMIT`` in place: :func:`snap` for values already on the grid."""
    return x.clamp_(-LIMIT, LIMIT)


def snap_array(x: np.ndarray) -> np.ndarray:
    """:func:`snap` on a numpy array (the same values: numpy's ``round`` is half to even too)."""
    y = np.round(x * 2.0**GRID_BITS)
    np.clip(y, -LIMIT * 2.0**GRID_BITS, LIMIT * 2.0**GRID_BITS, out=y)
    y *= GRID
    return y


def clamp_array(x: np.ndarray) -> np.ndarray:
    """:func:`clamp_` on a numpy array, in place."""
    return np.clip(x, -LIMIT, LIMIT, out=x)


@dataclass(frozen=True)
class Lut:
    """A function tabulated on ``[lo, hi]`` in steps of ``2^-in_bits``.

    ``values[i]`` is the function at ``lo + i * 2^-in_bits``, rounded as the
    table was built (see :func:`build_lut`). Inputs are rounded half up to the
    input grid and clamped to the range before the lookup.
    """

    lo: float
    hi: float
    in_bits: int
    values: torch.Tensor  # float64

    @property
    def last(self) -> float:
        """The last table position."""
        return (self.hi - self.lo) * 2.0**self.in_bits

    def index(self, x: torch.Tensor) -> torch.Tensor:
        """Table positions of ``x`` (multiples of ``2^-16`` below ``2^11``: scaled and offset exactly)."""
        scale = 2.0**self.in_bits
        pos = torch.add(0.5 - self.lo * scale, x, alpha=scale)  # exact: one rounding-free fused step
        return pos.clamp_(0.0, self.last).long()  # floor of a non-negative value

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The tabulated function at ``x`` (float64, any shape)."""
        values = self.values if self.values.device == x.device else self.values.to(x.device)
        return torch.take(values, self.index(x))

    def at(self, x: np.ndarray) -> np.ndarray:
        """:meth:`__call__` on a numpy array (the same positions and values)."""
        scale = 2.0**self.in_bits
        return self.at_positions(x * scale + (0.5 - self.lo * scale))

    def at_positions(self, pos: np.ndarray) -> np.ndarray:
        """The values at table positions ``pos`` before rounding (numpy): clamped, then floored (half up).

        Truncation toward zero is the floor for ``pos >= 0``, and every
        ``pos < 0`` ends at entry 0 either way, so truncating first and
        clamping the index (``mode="clip"``) is the same and one pass cheaper
        (positions stay far below 2^63).
        """
        return self.array.take(pos.astype(np.int64), mode="clip")

    @functools.cached_property
    def array(self) -> np.ndarray:
        """``values`` as a numpy array (a view)."""
        return self.values.numpy()

    @functools.cached_property
    def kernel_args(self) -> tuple[np.ndarray, float, float]:
        """What a compiled lookup reads (``lut_at`` in :mod:`nlc.models.exact_steps`): the table, the scale
        and the offset of its positions, the same positions as :meth:`at`."""
        scale = 2.0**self.in_bits
        return self.array, scale, 0.5 - self.lo * scale


_MARGIN = 2.0**-36  # numpy's float64 functions are within a few ulps (2^-52): far inside this


def _round_half_even(d: decimal.Decimal) -> int:
    return int(d.to_integral_value(rounding=decimal.ROUND_HALF_EVEN))


def build_lut(
    approx: Callable[[np.ndarray], np.ndarray],
    exact: Callable[[decimal.Decimal], decimal.Decimal],
    lo: float,
    hi: float,
    in_bits: int,
    out_bits: int | None = None,
    significant: int | None = None,
) -> Lut:
    """Tabulate a function so that every machine gets the same table.

    ``approx`` evaluates it on a float64 array (numpy), ``exact`` on a
    :class:`decimal.Decimal` at 50 digits. Each value is rounded half to even
    either to a multiple of ``2^-out_bits`` or to ``significant`` significant
    bits. Where numpy's value lies within a ``2^-36`` relative margin of a
    rounding boundary, the value is recomputed with ``exact``; elsewhere the
    float's rounding is provably the exact one.
    """
    n = round((hi - lo) * 2**in_bits) + 1
    xs = lo + np.arange(n, dtype=np.float64) * 2.0**-in_bits
    y = approx(xs)
    if significant is not None:
        _, e = np.frexp(y)  # y = m * 2^e with 0.5 <= |m| < 1 (a wrong exponent next to a power of 2 rounds the same)
        shift = (significant - e).astype(np.float64)
    else:
        assert out_bits is not None, "round to out_bits or to significant bits"
        shift = np.full(n, float(out_bits))
    scaled = np.ldexp(y, shift.astype(np.int64))
    rounded = np.round(scaled)
    near = np.abs(np.abs(scaled - np.floor(scaled)) - 0.5) <= _MARGIN * np.maximum(1.0, np.abs(scaled))
    with decimal.localcontext() as ctx:
        ctx.prec = 50
        for i in np.flatnonzero(near):
            x = decimal.Decimal(float(xs[i]))  # exact: a float64 is a finite binary fraction
            s = int(shift[i])
            v = exact(x) * (decimal.Decimal(2) ** s)
            rounded[i] = _round_half_even(v)
    return Lut(lo, hi, in_bits, torch.from_numpy(np.ldexp(rounded, (-shift).astype(np.int64))))


# -- the tables the exact models and tables use --------------------------------

def _d_sigmoid(x: decimal.Decimal) -> decimal.Decimal:
    return 1 / (1 + (-x).exp())


def _np_sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@functools.lru_cache(maxsize=None)
def elu_lut() -> Lut:
    """``exp(x) - 1`` on ``[-12, 0]`` (steps of ``2^-14``), on the activation grid: ELU's negative side."""
    return build_lut(np.expm1, lambda x: x.exp() - 1, -12.0, 0.0, 14, out_bits=GRID_BITS)


@functools.lru_cache(maxsize=None)
def bernoulli_lut() -> Lut:
    """``sigmoid`` on ``[-16, 16]`` in steps of ``2^-8``, to multiples of ``2^-24``: a Bernoulli's probability of a
    one from its logit, the same on every machine (the sequence codecs' tables)."""
    return build_lut(_np_sigmoid, _d_sigmoid, -16.0, 16.0, 8, out_bits=24)


@functools.lru_cache(maxsize=None)
def sigmoid_lut() -> Lut:
    """``sigmoid(x)`` on ``[-12, 12]`` (steps of ``2^-12``), on the activation grid: gates."""
    return build_lut(_np_sigmoid, _d_sigmoid, -12.0, 12.0, 12, out_bits=GRID_BITS)


@functools.lru_cache(maxsize=None)
def tanh_lut() -> Lut:
    """``tanh(x)`` on ``[-10, 10]`` (steps of ``2^-12``), on the activation grid: the mixture's channel
    coefficients and Gated PixelCNN's gates."""
    return build_lut(np.tanh, lambda x: ((2 * x).exp() - 1) / ((2 * x).exp() + 1), -10.0, 10.0, 12,
                     out_bits=GRID_BITS)


WEIGHT_ONE = 2**16  # a mixture weight is an integer in [0, 2^16]


@functools.lru_cache(maxsize=None)
def weight_lut() -> Lut:
    """``round(2^16 * exp(x))`` on ``[-16, 0]`` (steps of ``2^-10``): unnormalised mixture weights from logits."""
    return build_lut(lambda x: np.exp(x) * WEIGHT_ONE, lambda x: x.exp() * WEIGHT_ONE, -16.0, 0.0, 10, out_bits=0)


CDF_BITS = 30  # a component's CDF is an integer in [0, 2^30]
ARG_BITS = 10  # the logistic's argument is looked up in steps of 2^-10
ARG_RANGE = 24.0


@functools.lru_cache(maxsize=None)
def cdf_lut() -> Lut:
    """``round(2^30 * sigmoid(x))`` on ``[-24, 24]`` (steps of ``2^-10``): a logistic component's CDF."""
    return build_lut(lambda x: _np_sigmoid(x) * 2.0**CDF_BITS, lambda x: _d_sigmoid(x) * 2**CDF_BITS,
                     -ARG_RANGE, ARG_RANGE, ARG_BITS, out_bits=0)


SCALE_BITS = 14  # significant bits of an inverse scale


@functools.lru_cache(maxsize=None)
def inverse_scale_lut() -> Lut:
    """``exp(-s) / 127.5`` on ``[-7, 8]`` (steps of ``2^-12``) to 14 significant bits: a component's
    inverse scale in units of pixel levels, from its log-scale."""
    return build_lut(lambda x: np.exp(-x) / 127.5, lambda x: (-x).exp() / decimal.Decimal("127.5"),
                     -7.0, 8.0, 12, significant=SCALE_BITS)


@functools.lru_cache(maxsize=None)
def pixel_levels() -> torch.Tensor:
    """The 256 pixel values ``k / 127.5 - 1`` rounded exactly to the activation grid (float64)."""
    return torch.tensor([float(round(Fraction((2 * k - 255) * 2**GRID_BITS, 255))) * GRID for k in range(256)],
                        dtype=torch.float64)
