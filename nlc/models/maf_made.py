"""An integer MAF onto an autoregressive base: the paper's "MAF MoG" (Papamakarios et al. 2017), made
lossless with IDF's integer shifts.

The factorized base of :mod:`nlc.models.maf` cannot narrow a pixel's distribution where its context
makes it certain (``bench/shift_bound.py``: at best 4.07 bits/dim on Fashion-MNIST with one step). Here the
base is a gray MADE (:class:`~nlc.models.made.MADE`, a logistic mixture per position) over the latents,
and the flow's steps run in the base's raster order::

    z_0 = x,    z_k[d] = z_{k-1}[d] - S_k[d],    S_k[d] = clamp(round(c * MADE_k(z_{k-1})[d]), -255, 255)

``S_k[d]`` depends on ``z_{k-1}`` before ``d`` only, so every step is a bijection of the integers
(``inverse(forward(x)) == x``, the flows' shared ``check_invertible``) and volume-preserving:
``p(x) = p_base(z_K)``, with ``p_base(z_K[d] | z_K before d)`` the base MADE's mixture.

Because the steps and the base share one order, the latents before ``d`` give back ``x`` before ``d``
and every shift at ``d``: the decoder knows ``S[d] = sum_k S_k[d]`` before it decodes ``z_K[d]``, hence the
range ``-S[d] .. 255 - S[d]`` that ``z_K[d] = x[d] - S[d]`` lies in. The base's distribution of ``z_K[d]``
is its mixture over exactly that range, with the first and the last value holding the tails (a
conditional of ``z_K`` like any other: its support depends on ``z_K`` before ``d``, through the flow). In
``x``'s terms that is the same mixture with every mean moved by ``S[d]`` levels and the edge bins at 0 and
255, which is how it is coded: ``made-fmnist``'s exact tables with an integer offset of the means
(:class:`~nlc.coding.sequence.LevelOffset`). A flow that alternated orders would lose this (the range of
``z_K[d]`` would depend on later pixels) and would need tables over ~1,300 values per item and position,
or values that wrap, which did not train (branch ``wip/maf-made``).

The base sees the latents clamped to ``-256 .. 511`` as ``z/128 - 1`` (exact, on the ``2^-7`` grid in
``[-3, 3)``), as the steps' MADEs do; at the identity (the steps' output weights start at zero) it is a
MADE over the pixels, so training may start from ``made-fmnist``'s weights. Training passes gradients
through the rounding (straight-through). The exact twin (:meth:`MADEBaseMAF.exact`) computes every MADE's
outputs as exact sums: the parallel pass and the stepper (:class:`MAFMadeStepper`) agree bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .made import MADE, MADEConfig, MADEStepper
from .maf import SHIFT_LIMIT, conditioner_input
from .sequence import SequenceModel, sequence_nll


@dataclass
class MAFMadeConfig:
    """Hyper-parameters of :class:`MADEBaseMAF`."""

    bits: int = 8  # gray levels only
    layers: int = 2  # flow steps, all in raster order
    hidden: int = 500  # hidden units of each step's MADE
    base_hidden: int = 500  # hidden units of the base MADE
    mixtures: int = 3  # logistic components of the base's conditionals
    height: int = 28
    width: int = 28
    seed: int = 0  # the base MADE's connectivity draw; step k draws with seed + 1 + k
    shift_scale: float = 8.0  # levels a step's MADE output of 1 shifts by (a power of two: exact)


def integer_shift(s: torch.Tensor) -> torch.Tensor:
    """A step's shift ``s`` (a MADE's output times the shift scale) rounded half to even and clamped to
    ``±SHIFT_LIMIT``: what the parallel pass and the stepper both subtract."""
    return torch.round(s).clamp(-SHIFT_LIMIT, SHIFT_LIMIT)


class MADEBaseMAF(SequenceModel):
    """Gray images to integer latents by ``layers`` autoregressive shifts, under a MADE base."""

    base: MADE

    def __init__(self, config: MAFMadeConfig) -> None:
        super().__init__()
        if config.bits != 8:
            raise ValueError("an integer MAF codes gray (bits = 8) images")
        if config.shift_scale <= 0 or not float(np.log2(config.shift_scale)).is_integer():
            raise ValueError(f"shift_scale must be a power of two, got {config.shift_scale}")
        self.config = config
        self.steps = torch.nn.ModuleList(
            MADE(MADEConfig(bits=1, hidden=config.hidden, height=config.height, width=config.width,
                            seed=config.seed + 1 + k)) for k in range(config.layers))
        with torch.no_grad():
            for made in self.conditioners():  # start as the identity: the base alone is then a MADE over the pixels
                made.w_out.zero_()
        self.base = MADE(MADEConfig(bits=8, hidden=config.base_hidden, height=config.height, width=config.width,
                                    seed=config.seed, mixtures=config.mixtures))

    def conditioners(self) -> list[MADE]:
        """The steps' MADEs, data side first."""
        return [made for made in self.steps if isinstance(made, MADE)]

    def shifts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z_K, S)``, each ``(B, D)``: the latents of images ``x`` (values 0..255) and the total shift
        ``S = x - z_K``; in training the rounding passes gradients straight through."""
        z = x.reshape(len(x), self.dims).to(self.base.w_in.dtype)
        total = torch.zeros_like(z)
        for made in self.conditioners():
            s = made.outputs(conditioner_input(z))[..., 0] * self.config.shift_scale
            rounded = integer_shift(s)
            s = s + (rounded - s).detach() if s.requires_grad else rounded
            z, total = z - s, total + s
        return z, total

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` integer latents ``z_K`` of images ``x``."""
        return self.shifts(x)[0]

    def invert(self, z: torch.Tensor) -> torch.Tensor:
        """The images ``(B, D)`` whose :meth:`latents` are ``z``, position by position on the steps' steppers."""
        n = len(z)
        stepper = MAFMadeStepper(self, n)
        out = torch.empty_like(z)
        for d in range(self.dims):
            out[:, d] = z[:, d] + torch.from_numpy(stepper.offsets(d)).to(z.dtype)
            stepper.put(d, out[:, d])
        return out

    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, D, 3M)`` mixture outputs of each pixel given the ones before it, in pixel terms: the base's
        at the latents, every mean moved by the pixel's total shift (in the ``x/127.5 - 1`` units of the
        means)."""
        z, total = self.shifts(x)
        out = self.base.outputs(z.clamp(-256, 511))
        m = self.config.mixtures
        return torch.cat([out[..., :m], out[..., m: 2 * m] + total[..., None] / 127.5, out[..., 2 * m:]], -1)

    def loss_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-item negative log-likelihood in nats: ``-log p_base(z_K)`` over each latent's known range."""
        v = x.reshape(len(x), -1)
        return {"nll": sequence_nll(v, self.outputs(v), 8, self.config.mixtures)}

    def exact(self) -> "MADEBaseMAF":
        """A float64 copy whose MADEs compute exact sums for inputs on ``2^-7`` up to 3 in size
        (:meth:`MADE.exact`)."""
        twin = MADEBaseMAF(self.config).double()
        twin.load_state_dict({k: v.double() for k, v in self.state_dict().items()})
        twin.steps = torch.nn.ModuleList(made.exact(input_grid=7, input_limit=3.0) for made in self.conditioners())
        twin.base = self.base.exact(input_limit=3.0)
        return twin.eval().requires_grad_(False)

    def stepper(self, batch: int) -> "MAFMadeStepper":
        """A position-by-position view for coding ``batch`` items (see :class:`MAFMadeStepper`)."""
        return MAFMadeStepper(self, batch)


class MAFMadeStepper:
    """Position ``d``'s base mixture and total shift for a batch, given the pixels before it.

    The coder's calls, in order, per position: :meth:`params` (the base's mixture of ``z_K[d]``),
    :meth:`offsets` (``S[d]``, the integer levels every mean moves by), then :meth:`put` with the pixel,
    which runs it through the steps (each step's MADE takes its input's value at ``d``) into the base.
    """

    def __init__(self, model: MADEBaseMAF, batch: int) -> None:
        self.model, self.batch = model, batch
        self.steps: list[MADEStepper] = [made.stepper(batch) for made in model.conditioners()]
        self.base = model.base.stepper(batch)
        self._shifts: list[torch.Tensor] = []

    def params(self, d: int) -> torch.Tensor:
        """``(batch, 10M)`` base mixture parameters of position ``d`` on the ``2^-16`` grid."""
        return self.base.params(d)

    def offsets(self, d: int) -> np.ndarray:
        """``(batch,)`` total shifts ``S[d]`` (integers, float64) of position ``d``."""
        self._shifts = [integer_shift(st.outputs(d)[:, 0] * self.model.config.shift_scale) for st in self.steps]
        total = torch.zeros(self.batch, dtype=torch.float64)
        for s in self._shifts:
            total += s.double()
        return total.numpy()

    def put(self, d: int, x: torch.Tensor) -> None:
        """The pixels ``x`` (0..255) of position ``d``, after :meth:`offsets` of ``d``."""
        z = x.to(torch.float64)
        for st, s in zip(self.steps, self._shifts):
            st.put(d, conditioner_input(z))
            z = z - s
        self.base.put(d, z.clamp(-256, 511))
