"""MADE: a masked autoencoder for distribution estimation (Germain et al. 2015), here on binarized 28x28
images as a 784-step sequence in raster order.

One hidden layer of ``hidden`` ReLU units, each given a connectivity number ``m`` in ``1 .. D-1`` (a
seeded draw, stored with the weights). Input ``j`` (0-based, raster order) reaches unit ``k`` only if
``m_k > j``; unit ``k`` reaches output ``d`` only if ``d >= m_k``; so output ``d`` depends on inputs
``j < d`` only, and one pass gives every conditional ``p(x_d | x_<d)``. A direct, strictly lower-triangular
linear path from inputs to outputs (as in the paper's "direct connections") adds each pixel's linear
dependence on all earlier ones. Masks are multiplied into the weights on every use.

For coding, :meth:`MADE.stepper` gives the same logits one position at a time: the hidden units'
pre-activations grow by one input column per decoded pixel, and position ``d`` needs one row of the
output weights. :meth:`MADE.exact` rounds the weights to multiples of ``2^-14`` (checked to keep every
sum below ``2^52`` grid units), so every logit is an exact float64 sum whatever the order: the parallel
pass and the steps agree bit for bit, on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

GRID = 14  # fractional bits of the exact weights


@dataclass
class MADEConfig:
    """Hyper-parameters of :class:`MADE`."""

    bits: int = 1  # binarized pixels (the only kind this MADE codes)
    hidden: int = 500
    height: int = 28
    width: int = 28
    seed: int = 0  # draws the hidden units' connectivity numbers
    direct: bool = True  # the direct input-to-output path
    dropout: float = 0.0  # on the hidden units, in training only


def connectivity(dims: int, hidden: int, seed: int) -> np.ndarray:
    """The hidden units' connectivity numbers in ``1 .. dims-1`` (a fixed draw of ``seed``)."""
    return np.random.default_rng(seed).integers(1, dims, size=hidden)


class MADE(nn.Module):
    """Bernoulli conditionals of binary images in raster order from one masked pass."""

    def __init__(self, config: MADEConfig) -> None:
        super().__init__()
        if config.bits != 1:
            raise ValueError("this MADE codes binarized images (bits = 1)")
        self.config = config
        d, h = config.height * config.width, config.hidden
        m = torch.from_numpy(connectivity(d, h, config.seed))
        order = torch.arange(d)
        self.register_buffer("mask_in", (m[:, None] > order[None, :]).float())  # (H, D): input j -> unit k
        self.register_buffer("mask_out", (order[:, None] >= m[None, :]).float())  # (D, H): unit k -> output d
        self.register_buffer("mask_direct", torch.tril(torch.ones(d, d), -1))  # (D, D): input j < d -> output d
        self.w_in = nn.Parameter(torch.randn(h, d) * (1.0 / d**0.5))
        self.b_in = nn.Parameter(torch.zeros(h))
        self.w_out = nn.Parameter(torch.randn(d, h) * (1.0 / h**0.5))
        self.b_out = nn.Parameter(torch.zeros(d))
        self.w_direct = nn.Parameter(torch.zeros(d, d)) if config.direct else None

    @property
    def dims(self) -> int:
        """Pixels per image (the sequence's length)."""
        return self.config.height * self.config.width

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` logits of ``p(x_d = 1 | x_<d)`` for binary ``x`` of shape ``(B, H, W)`` or ``(B, D)``."""
        v = x.reshape(len(x), -1).to(self.w_in.dtype)
        a = F.dropout(F.relu(F.linear(v, self.w_in * self.mask_in, self.b_in)), self.config.dropout, self.training)
        out = F.linear(a, self.w_out * self.mask_out, self.b_out)
        if self.w_direct is not None:
            out = out + F.linear(v, self.w_direct * self.mask_direct)
        return out

    def loss_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-item negative log-likelihood in nats (what training minimises and validation reports)."""
        v = x.reshape(len(x), -1).float()
        nll = F.binary_cross_entropy_with_logits(self.logits(v.to(self.w_in.dtype)).float(), v, reduction="none")
        return {"nll": nll.sum(1)}

    def exact(self) -> "MADE":
        """A float64 copy whose weights are multiples of ``2^-14``, with every logit an exact sum (checked)."""
        m = MADE(self.config).double()
        with torch.no_grad():
            for (name, p), (_, q) in zip(self.named_parameters(), m.named_parameters()):
                q.copy_(torch.round(p.double() * 2**GRID) / 2**GRID)
            hidden_max = (m.w_in * m.mask_in).abs().sum(1) + m.b_in.abs()  # binary inputs: |a_k| at most this
            out_max = ((m.w_out * m.mask_out).abs() * hidden_max[None, :]).sum(1) + m.b_out.abs()
            if m.w_direct is not None:
                out_max = out_max + (m.w_direct * m.mask_direct).abs().sum(1)
        if float(out_max.max()) * 2 ** (2 * GRID) >= 2**52 or float(hidden_max.max()) * 2**GRID >= 2**52:
            raise ValueError("weights too large for exact sums")
        return m.eval()

    def stepper(self, batch: int) -> "MADEStepper":
        """A position-by-position view of :meth:`logits` for ``batch`` items (see :class:`MADEStepper`)."""
        return MADEStepper(self, batch)


class MADEStepper:
    """The logits of position ``d`` for a batch, given the pixels before it; :meth:`put` adds pixel ``d``.

    The hidden units are taken in the order of their connectivity number ``m``: unit ``k`` sees inputs
    ``j < m_k`` and feeds outputs ``d >= m_k``, so at position ``d`` the units with ``m_k <= d`` are complete
    (their activations are kept, computed once) and the rest still gather inputs. Each step is then one
    product over the complete units and one update of the others: the work of one pass of the layer.
    """

    def __init__(self, model: MADE, batch: int) -> None:
        m = (model.mask_in.sum(1)).long()  # unit k sees inputs j < m_k
        order = torch.argsort(m, stable=True)
        self.m = m[order]
        self.w_in_t = (model.w_in * model.mask_in).detach()[order].t().contiguous()  # (D, H): a row per input
        self.w_out = (model.w_out * model.mask_out).detach()[:, order].contiguous()  # (D, H)
        self.b_out = model.b_out.detach()
        self.w_direct = None if model.w_direct is None else (model.w_direct * model.mask_direct).detach()
        self.pre = model.b_in.detach()[order][:, None].expand(-1, batch).clone()  # (H, batch) pre-activations
        self.act = torch.zeros_like(self.pre)  # activations of the complete units
        self.done = 0  # units complete so far (a prefix of the order)
        self.seen = torch.zeros(model.dims, batch, dtype=self.pre.dtype)  # pixel-major: a prefix is contiguous

    def logits(self, d: int) -> torch.Tensor:
        """``(batch,)`` logits of ``p(x_d = 1 | x_<d)``."""
        ready = int(torch.searchsorted(self.m, torch.tensor(d), right=True))  # units with m_k <= d
        if ready > self.done:
            self.act[self.done:ready] = F.relu(self.pre[self.done:ready])
            self.done = ready
        out = self.w_out[d, :ready] @ self.act[:ready] + self.b_out[d]
        if self.w_direct is not None and d:
            out = out + self.w_direct[d, :d] @ self.seen[:d]
        return out

    def put(self, d: int, x: torch.Tensor) -> None:
        """Pixel ``d`` of every item (0 or 1)."""
        v = x.to(self.pre.dtype)
        self.seen[d] = v
        self.pre[self.done:].addr_(self.w_in_t[d, self.done:], v)  # each entry one product and one sum: exact
