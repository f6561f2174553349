"""MADE: a masked autoencoder for distribution estimation (Germain et al. 2015), here on 28x28 images as a
784-step sequence in raster order: a Bernoulli per pixel for binarized images, a discretized logistic
mixture per pixel (the PixelCNN++ head, one channel) for gray levels.

One hidden layer of ``hidden`` ReLU units, each given a connectivity number ``m`` in ``1 .. D-1`` (a
seeded draw, stored with the weights). Input ``j`` (0-based, raster order) reaches unit ``k`` only if
``m_k > j``; unit ``k`` reaches output ``d`` only if ``d >= m_k``; so output ``d`` depends on inputs
``j < d`` only, and one pass gives every conditional ``p(x_d | x_<d)``. A direct, strictly lower-triangular
linear path from inputs to outputs (as in the paper's "direct connections") adds each pixel's linear
dependence on all earlier ones (to the logit of a binary pixel, to every component's mean of a gray
one). Masks are multiplied into the weights on every use.

For coding, :meth:`MADE.stepper` gives the same logits one position at a time: the hidden units'
pre-activations grow by one input column per decoded pixel, and position ``d`` needs one row of the
output weights. :meth:`MADE.exact` rounds the weights to multiples of ``2^-14`` (checked to keep every
sum below ``2^52`` grid units; gray inputs enter as ``x/128 - 1``, on the ``2^-7`` grid), so every output
is an exact float64 sum whatever the order: the parallel pass and the steps agree bit for bit, on any
machine. A gray model's mixture parameters are then rounded to ``2^-16`` (:meth:`MADE.mixture_params`),
the grid the exact tables of :mod:`nlc.coding.exact_tables` take.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .sequence import SequenceModel

GRID = 14  # fractional bits of the exact weights


@dataclass
class MADEConfig:
    """Hyper-parameters of :class:`MADE`."""

    bits: int = 1  # 1: binarized pixels (a Bernoulli each); 8: gray levels (a logistic mixture each)
    hidden: int = 500
    height: int = 28
    width: int = 28
    seed: int = 0  # draws the hidden units' connectivity numbers
    direct: bool = True  # the direct input-to-output path
    dropout: float = 0.0  # on the hidden units, in training only
    mixtures: int = 5  # logistic components per gray pixel


def connectivity(dims: int, hidden: int, seed: int) -> np.ndarray:
    """The hidden units' connectivity numbers in ``1 .. dims-1`` (a fixed draw of ``seed``)."""
    return np.random.default_rng(seed).integers(1, dims, size=hidden)


class MADE(SequenceModel):
    """Conditionals of binary or gray images in raster order from one masked pass."""

    mask_in: torch.Tensor  # buffers
    mask_out: torch.Tensor
    mask_direct: torch.Tensor

    def __init__(self, config: MADEConfig) -> None:
        super().__init__()
        if config.bits not in (1, 8):
            raise ValueError("a MADE codes binarized (bits = 1) or gray (bits = 8) images")
        self.config = config
        d, h, k = config.height * config.width, config.hidden, self.outputs_per_pixel
        m = torch.from_numpy(connectivity(d, h, config.seed))
        order = torch.arange(d)
        # The masks follow from the config (the seed's draw), so they are not saved with the weights.
        self.register_buffer("mask_in", (m[:, None] > order[None, :]).float(), persistent=False)  # (H, D): j -> k
        out = (order[:, None] >= m[None, :]).float()  # (D, H): unit k -> output d
        self.register_buffer("mask_out", out.repeat_interleave(k, 0), persistent=False)  # (D*K, H)
        self.register_buffer("mask_direct", torch.tril(torch.ones(d, d), -1), persistent=False)  # (D, D): j < d -> d
        self.w_in = nn.Parameter(torch.randn(h, d) * (1.0 / d**0.5))
        self.b_in = nn.Parameter(torch.zeros(h))
        self.w_out = nn.Parameter(torch.randn(d * k, h) * (1.0 / h**0.5))
        self.b_out = nn.Parameter(torch.zeros(d * k))
        self.w_direct = nn.Parameter(torch.zeros(d, d)) if config.direct else None

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        """Weights saved with their masks (``made-fmnist-binary``'s): the masks are checked, then left out."""
        for name in ("mask_in", "mask_out", "mask_direct"):
            saved = state_dict.pop(prefix + name, None)
            if saved is not None and not torch.equal(saved.to(getattr(self, name).dtype), getattr(self, name)):
                raise ValueError(f"saved {name} differs from the one the config draws")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _direct_slot(self) -> slice:
        """Which of a pixel's outputs the direct path adds to: the logit, or every component's mean."""
        mix = self.config.mixtures
        return slice(0, 1) if self.config.bits == 1 else slice(mix, 2 * mix)

    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, D, K)`` outputs for images ``x`` of shape ``(B, H, W)`` or ``(B, D)`` (values 0/1 or 0..255)."""
        v = self.inputs(x.reshape(len(x), self.dims))
        a = F.dropout(F.relu(F.linear(v, self.w_in * self.mask_in, self.b_in)), self.config.dropout, self.training)
        out = F.linear(a, self.w_out * self.mask_out, self.b_out).reshape(len(x), self.dims, self.outputs_per_pixel)
        if self.w_direct is not None:
            shift = F.linear(v, self.w_direct * self.mask_direct)
            slot = self._direct_slot()
            out = torch.cat([out[..., : slot.start], out[..., slot] + shift[..., None], out[..., slot.stop:]], -1)
        return out

    def exact(self, input_grid: int | None = None, input_limit: float = 1.0) -> "MADE":
        """A float64 copy whose weights are multiples of ``2^-14``, with every output an exact sum (checked).

        The check assumes inputs on the ``2^-input_grid`` grid (by default: integers for binary pixels,
        ``2^-7`` for gray ones) with ``|input| <= input_limit``."""
        m = MADE(self.config).double()
        with torch.no_grad():
            for p, q in zip(self.parameters(), m.parameters()):
                q.copy_(torch.round(p.double() * 2**GRID) / 2**GRID)
            # bounds of every sum, in units of its grid
            in_bits = (0 if self.config.bits == 1 else 7) if input_grid is None else input_grid
            in_grid = GRID + in_bits
            hidden_max = ((m.w_in * m.mask_in).abs().sum(1) * input_limit + m.b_in.abs())
            out_max = ((m.w_out * m.mask_out).abs() * hidden_max[None, :]).sum(1) + m.b_out.abs()
            if m.w_direct is not None:
                out_max = out_max + input_limit * (m.w_direct * m.mask_direct).abs().sum(1).repeat_interleave(
                    self.outputs_per_pixel)
        if float(out_max.max()) * 2 ** (in_grid + GRID) >= 2**52 or float(hidden_max.max()) * 2**in_grid >= 2**52:
            raise ValueError("weights too large for exact sums")
        return m.eval()

    def stepper(self, batch: int) -> "MADEStepper":
        """A position-by-position view of :meth:`outputs` for ``batch`` items (see :class:`MADEStepper`)."""
        return MADEStepper(self, batch)


class MADEStepper:
    """The outputs of position ``d`` for a batch, given the pixels before it; :meth:`put` adds pixel ``d``.

    The hidden units are taken in the order of their connectivity number ``m``: unit ``k`` sees inputs
    ``j < m_k`` and feeds outputs ``d >= m_k``, so at position ``d`` the units with ``m_k <= d`` are complete
    (their activations are kept, computed once) and the rest still gather inputs. Each step is then one
    product over the complete units and one update of the others: the work of one pass of the layer.
    """

    def __init__(self, model: MADE, batch: int) -> None:
        self.model = model
        k = model.outputs_per_pixel
        m = (model.mask_in.sum(1)).long()  # unit k sees inputs j < m_k
        order = torch.argsort(m, stable=True)
        self.m = m[order]
        self.w_in_t = (model.w_in * model.mask_in).detach()[order].t().contiguous()  # (D, H): a row per input
        self.w_out = (model.w_out * model.mask_out).detach()[:, order].reshape(model.dims, k, -1).contiguous()
        self.b_out = model.b_out.detach().reshape(model.dims, k)
        self.w_direct = None if model.w_direct is None else (model.w_direct * model.mask_direct).detach()
        self.slot = model._direct_slot()
        self.pre = model.b_in.detach()[order][:, None].expand(-1, batch).clone()  # (H, batch) pre-activations
        self.act = torch.zeros_like(self.pre)  # activations of the complete units
        self.done = 0  # units complete so far (a prefix of the order)
        self.seen = torch.zeros(model.dims, batch, dtype=self.pre.dtype)  # inputs, pixel-major

    def outputs(self, d: int) -> torch.Tensor:
        """``(batch, K)`` outputs of position ``d``."""
        ready = int(torch.searchsorted(self.m, torch.tensor(d), right=True))  # units with m_k <= d
        if ready > self.done:
            self.act[self.done:ready] = F.relu(self.pre[self.done:ready])
            self.done = ready
        out = (self.w_out[d, :, :ready] @ self.act[:ready]).t() + self.b_out[d]
        if self.w_direct is not None and d:
            out[:, self.slot] += (self.w_direct[d, :d] @ self.seen[:d])[:, None]
        return out

    def logits(self, d: int) -> torch.Tensor:
        """``(batch,)`` logits of ``p(x_d = 1 | x_<d)`` (binary models)."""
        return self.outputs(d)[:, 0]

    def params(self, d: int) -> torch.Tensor:
        """``(batch, 10M)`` mixture parameters of position ``d`` on the ``2^-16`` grid (gray models)."""
        return self.model.mixture_params(self.outputs(d), grid=True)

    def put(self, d: int, x: torch.Tensor) -> None:
        """Pixel ``d`` of every item (0/1, or 0..255)."""
        v = self.model.inputs(x)
        self.seen[d] = v
        self.pre[self.done:].addr_(self.w_in_t[d, self.done:], v)  # each entry one product and one sum: exact
