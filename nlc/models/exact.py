"""Exact arithmetic for a trained model: the same parameters on every machine, in any order.

A model's layers are written against an *arithmetic*: :data:`FLOAT` is plain
float32 (training, the float codecs), :class:`ExactArithmetic` the fixed-point
rules of :mod:`nlc.fixed`:

* every linear layer's output is :func:`~nlc.fixed.snap`-ped to the ``2^-16``
  grid (its weights have 14 significant bits per output channel, so the
  float64 accumulator is exact before rounding);
* ELU and the gates' sigmoid and tanh come from lookup tables;
* the pixels enter as exact grid values.

Because every sum is exact, a whole-image pass (one parallel evaluation for
the encoder) and the decoder's row and pixel steps give bit-identical
parameters, on any CPU or GPU (on CUDA the coder turns cuDNN off, whose FFT and
Winograd convolutions are not exact sums: ``exact_kernels`` in
:mod:`nlc.coding.autoregressive`; not yet run on a GPU). :func:`make_exact`
turns a trained float model into its exact twin; its rate is within a hair of
the float model's.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import fixed
from .layers import tanh_gate

Array = Any  # what the arithmetic computes on: torch tensors, or numpy arrays in the numpy exact steps


class FloatArithmetic:
    """Plain float arithmetic: what the models compute when trained and in the float codecs."""

    exact = False

    def input(self, x: Array) -> Array:
        """Pixels as the network sees them."""
        return x

    def lin(self, x: Array) -> Array:
        """A linear layer's output."""
        return x

    def elu(self, x: Array) -> Array:
        """ELU."""
        return F.elu(x)

    def add(self, x: Array, y: Array) -> Array:
        """Sum of two activations."""
        return x + y

    def gate(self, x: Array, a: Array, b: Array) -> Array:
        """Gated residual ``x + a * sigmoid(b)``."""
        return x + a * torch.sigmoid(b)

    def tanh_gate(self, c: Array) -> Array:
        """Gated activation ``tanh(a) * sigmoid(b)`` of the halves ``(a, b)`` of ``c``'s axis 1."""
        return tanh_gate(c)

    def relu(self, x: Array) -> Array:
        """ReLU (exact in any arithmetic: no rounding)."""
        return F.relu(x)

    def lstm_cell(self, pre: Array, c: Array) -> tuple[Array, Array]:
        """An LSTM step from the gates' pre-activations ``pre`` (``(B, 4n)``: input, forget, cell, output, as
        ``torch.lstm``) and the cell ``c``: the new ``(h, c)``."""
        i, f, g, o = pre.chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    # -- the array library of a per-pixel step (see :meth:`steps`) --
    def steps(self, device: torch.device) -> "FloatArithmetic":
        """The arithmetic of a decoder's per-pixel steps on ``device``: this one (torch tensors)."""
        return self

    def array(self, t: Array) -> Array:
        """A tensor in this arithmetic's array type."""
        return t

    def mm(self, bias: Array, x: Array, w: Array) -> Array:
        """``bias + x @ w``."""
        return torch.addmm(bias, x, w)

    def linear(self, x: Array, weight: Array, bias: Array) -> Array:
        """``x @ weight.T + bias`` (a linear layer's own weights)."""
        return F.linear(x, weight, bias)

    def cat(self, xs: list[Array]) -> Array:
        """Concatenation along axis 1."""
        return torch.cat(xs, 1)


class ExactArithmetic(FloatArithmetic):
    """Fixed-point arithmetic on float64 (see the module docstring)."""

    exact = True

    def __init__(self) -> None:
        self.elu_neg, self.sigmoid, self.tanh = fixed.elu_lut(), fixed.sigmoid_lut(), fixed.tanh_lut()

    def input(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels in ``[-1, 1]`` on the grid."""
        return fixed.snap(x.double())

    def lin(self, x: torch.Tensor) -> torch.Tensor:
        """An exact accumulator rounded to the grid."""
        return fixed.snap(x)

    def elu(self, x: torch.Tensor) -> torch.Tensor:
        """ELU: ``max(x, 0)`` plus the table of ``exp(min(x, 0)) - 1`` (zero above zero)."""
        return self.elu_neg(x).add_(x.clamp(min=0.0))

    def add(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Exact sum of two grid values (so on the grid), clamped."""
        return fixed.clamp_(x + y)

    def gate(self, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``x + a * sigmoid(b)`` with the table's sigmoid, the product rounded to the grid, the sum clamped."""
        return fixed.clamp_(fixed.snap(a * self.sigmoid(b)).add_(x))

    def tanh_gate(self, c: torch.Tensor) -> torch.Tensor:
        """``tanh(a) * sigmoid(b)`` from the tables, the product rounded to the grid."""
        a, b = c.chunk(2, dim=1)
        return fixed.snap(self.tanh(a) * self.sigmoid(b))

    def lstm_cell(self, pre: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """An LSTM step with the tables' sigmoid and tanh, every product rounded to the grid, the cell clamped."""
        i, f, g, o = pre.chunk(4, 1)
        c = fixed.clamp_(fixed.snap(self.sigmoid(f) * c).add_(fixed.snap(self.sigmoid(i) * self.tanh(g))))
        return fixed.snap(self.sigmoid(o) * self.tanh(c)), c

    def steps(self, device: torch.device) -> FloatArithmetic:
        """On a CPU, :data:`NUMPY_EXACT`: the same numbers, and numpy's per-call cost is lower than
        torch's on a step's small arrays. Elsewhere this one."""
        return NUMPY_EXACT if torch.device(device).type == "cpu" else self


class NumpyExactArithmetic(FloatArithmetic):
    """:class:`ExactArithmetic`'s rules on numpy float64 arrays, for the decoder's per-pixel steps.

    Every operation gives exactly the torch version's numbers: exact sums (in
    any order, so numpy's BLAS may block them as it likes), rounding half to
    even onto the grid, and the same table positions and entries
    (:meth:`~nlc.fixed.Lut.at`).
    """

    exact = True

    def __init__(self) -> None:
        self.elu_neg, self.sigmoid, self.tanh = fixed.elu_lut(), fixed.sigmoid_lut(), fixed.tanh_lut()

    def array(self, t: torch.Tensor) -> np.ndarray:
        """A CPU tensor as a numpy array (a view: writes to the tensor show through)."""
        return t.numpy()

    def input(self, x: np.ndarray) -> np.ndarray:
        """Pixels in ``[-1, 1]`` on the grid."""
        return fixed.snap_array(np.asarray(x, np.float64))

    def lin(self, x: np.ndarray) -> np.ndarray:
        """An exact accumulator rounded to the grid."""
        return fixed.snap_array(x)

    def elu(self, x: np.ndarray) -> np.ndarray:
        """ELU: ``max(x, 0)`` plus the table of ``exp(min(x, 0)) - 1``."""
        return self.elu_neg.at(x) + np.maximum(x, 0.0)

    def add(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Exact sum of two grid values, clamped."""
        return fixed.clamp_array(x + y)

    def gate(self, x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``x + a * sigmoid(b)``, the product rounded to the grid, the sum clamped."""
        return fixed.clamp_array(fixed.snap_array(a * self.sigmoid.at(b)) + x)

    def tanh_gate(self, c: np.ndarray) -> np.ndarray:
        """``tanh(a) * sigmoid(b)`` of the halves of axis 1, from the tables, rounded to the grid."""
        a, b = np.split(c, 2, axis=1)
        return fixed.snap_array(self.tanh.at(a) * self.sigmoid.at(b))

    def relu(self, x: np.ndarray) -> np.ndarray:
        """ReLU."""
        return np.maximum(x, 0.0)

    def steps(self, device: torch.device) -> "NumpyExactArithmetic":
        """This one."""
        return self

    def mm(self, bias: np.ndarray, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        """``x @ w + bias``, exact."""
        return x @ w + bias

    def linear(self, x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """``x @ weight.T + bias``, exact."""
        return x @ weight.T + bias

    def cat(self, xs: list[np.ndarray]) -> np.ndarray:
        """Concatenation along axis 1."""
        return np.concatenate(xs, 1)


FLOAT = FloatArithmetic()
NUMPY_EXACT = NumpyExactArithmetic()


def _out_dim(module: nn.Module) -> int:
    from .layers import UpsampleConvT2d

    return 1 if isinstance(module, UpsampleConvT2d) else 0


def _exponents(w: torch.Tensor, dim: int) -> torch.Tensor:
    """Per output channel, the power of two ``f`` with ``|w| * 2^f < 2^13`` as large as it goes."""
    top = w.abs().amax(dim=[d for d in range(w.dim()) if d != dim]).clamp_min(2.0**-40)
    _, e = torch.frexp(top)  # top = m * 2^e, 0.5 <= m < 1
    return (fixed.WEIGHT_BITS - 1 - e).double()


def _quantize_(weight: torch.Tensor, bias: torch.Tensor | None, f: torch.Tensor, dim: int) -> None:
    shape = [1] * weight.dim()
    shape[dim] = -1
    scale = torch.pow(2.0, f)
    weight.copy_(torch.round(weight * scale.view(shape)) / scale.view(shape))
    if bias is not None:  # on the accumulator's grid: activations' 2^-16 times the weights' 2^-f
        acc = scale * 2.0**fixed.GRID_BITS
        bias.copy_(torch.round(bias * acc) / acc)


def _check_exact(weight: torch.Tensor, bias: torch.Tensor | None, f: torch.Tensor, dim: int, name: str,
                 input_limit: float = fixed.LIMIT) -> None:
    """Refuse a layer whose accumulator could exceed 2^53 grid units (it would no longer be exact)."""
    w = weight.movedim(dim, 0).reshape(weight.shape[dim], -1)
    units = 2.0 ** (f + fixed.GRID_BITS)
    bound = (w.abs().sum(1) * input_limit + (0 if bias is None else bias.abs())) * units
    if float(bound.max()) >= 2.0**52:
        raise ValueError(f"layer {name}: its sums could reach 2^{math.log2(float(bound.max())):.1f} grid units; "
                         "exact arithmetic needs them below 2^52")


@torch.no_grad()
def make_exact(model: nn.Module) -> nn.Module:
    """An exact twin of a trained float model (a float64 copy; ``model`` is left as it was).

    The model's class must compute through its ``arith`` (``exact_joint``
    set, as :class:`~nlc.models.pixelcnnpp.PixelCNNPP` has). Every layer's
    weights are rounded to 14 significant bits per output channel and its bias
    to the accumulator's grid, and the copy's ``arith`` is an
    :class:`ExactArithmetic`. ``exact_joint`` names groups of layers whose
    outputs are summed before rounding (a head and a skip): they share one
    exponent per output channel, so their sum is exact too. An optional
    ``exact_input_limits`` names layers whose inputs stay below a bound
    tighter than the activations' clamp (pixels), for the exactness check.
    """
    joint = getattr(model, "exact_joint", None)
    if joint is None:
        raise ValueError(f"{type(model).__name__} has no exact arithmetic "
                         "(PixelCNN++, PixelSNAIL and Gated PixelCNN have)")
    limits = getattr(model, "exact_input_limits", {})
    twin = copy.deepcopy(model).double().eval().requires_grad_(False)
    layers = {name: mod for name, mod in twin.named_modules()
              if isinstance(getattr(mod, "weight", None), nn.Parameter)}
    grouped = {name for group in joint for name in group}
    for group in list(joint) + [(name,) for name in layers if name not in grouped]:
        mods = [layers[name] for name in group]
        f = torch.stack([_exponents(m.weight, _out_dim(m)) for m in mods]).amin(0)
        for name, m in zip(group, mods):
            dim = _out_dim(m)
            _quantize_(m.weight, m.bias, f, dim)
            _check_exact(m.weight, m.bias, f, dim, name, limits.get(name, fixed.LIMIT))
    twin.arith = ExactArithmetic()  # type: ignore[assignment]  # an attribute, not a submodule
    return twin
