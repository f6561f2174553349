"""An integer masked autoregressive flow (MAF, Papamakarios et al. 2017, made lossless with the integer
rounding of IDF, Hoogeboom et al. 2019) on 28x28 gray images as 784-dimensional integer vectors.

Each of ``layers`` steps subtracts from every dimension an integer shift computed by a MADE
(:class:`~nlc.models.made.MADE`, one output per dimension) from the dimensions before it, in raster order
for even steps and reversed order for odd ones::

    z_k[d] = z_{k-1}[d] - clamp(round(64 * MADE_k(z_{k-1})[d]), -255, 255)        z_0 = x

Every step is a bijection of the integers (a shift that depends on earlier dimensions only), so the
flow is exactly invertible and volume-preserving: ``p(x) = p_base(z_K)``, a discretized logistic mixture
per dimension (:func:`~nlc.models.heads.integer_logistic_log_prob`). Training passes gradients through
the rounding (straight-through). The shifts are clamped, so the latents stay in ``[-255 K, 255 (K + 1)]``
and are coded with bounded tables (:mod:`nlc.coding.bounded`).

The forward pass is parallel (one MADE pass per step); the inverse is sequential within a step — a
dimension's shift needs the dimensions before it — and runs on :class:`~nlc.models.made.MADEStepper`.
In the exact twin (:meth:`IntegerMAF.exact`: MADE weights on ``2^-14``, inputs on ``2^-7``, every sum exact)
both give the same shifts bit for bit, on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .flows.bijections import Bijection
from .heads import integer_logistic_log_prob
from .made import MADE, MADEConfig

SHIFT_SCALE = 64.0  # a MADE output of 1 shifts by 64 levels (a power of two: exact)
SHIFT_LIMIT = 255  # a step shifts a dimension by at most this many levels
INPUT_LOW, INPUT_HIGH = -256, 511  # a conditioner sees its input clamped to this range, then /128 - 1


@dataclass
class MAFConfig:
    """Hyper-parameters of :class:`IntegerMAF`."""

    bits: int = 8  # gray levels only
    layers: int = 2  # flow steps, alternating raster and reversed order
    hidden: int = 500  # hidden units of each step's MADE
    mixtures: int = 5  # logistic components of each dimension's base distribution
    height: int = 28
    width: int = 28
    seed: int = 0  # the first MADE's connectivity draw (step k draws with seed + k)


class AutoregressiveShift(Bijection):
    """One step of the flow: ``y[d] = z[d] - shift[d]``, the integer shift from a MADE over the dimensions
    before ``d`` (in raster order, or reversed with ``reverse``), at most :data:`SHIFT_LIMIT` either way."""

    made: MADE

    def __init__(self, made: MADE, reverse: bool) -> None:
        super().__init__()
        self.made, self.reverse = made, reverse

    def shifts(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` shifts from the step's input ``z`` before rounding (one parallel MADE pass)."""
        u = conditioner_input(z)
        out = self.made.outputs(u.flip(1) if self.reverse else u)[..., 0]
        return (out.flip(1) if self.reverse else out) * SHIFT_SCALE

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Data towards latents; in training the rounding passes gradients straight through."""
        s = self.shifts(z)
        rounded = torch.round(s).clamp(-SHIFT_LIMIT, SHIFT_LIMIT)
        return z - (s + (rounded - s).detach())

    @torch.no_grad()
    def inverse(self, y: torch.Tensor, progress: Callable[[int], object] | None = None) -> torch.Tensor:
        """Latents towards data, dimension by dimension in the step's order on the MADE's stepper (the
        parallel pass's shifts bit for bit in an exact MADE); ``progress(1)`` after each dimension."""
        n, dims = y.shape
        stepper, z = self.made.stepper(n), torch.empty_like(y)
        for p in range(dims):
            d = dims - 1 - p if self.reverse else p
            s = torch.round(stepper.outputs(p)[:, 0] * SHIFT_SCALE).clamp(-SHIFT_LIMIT, SHIFT_LIMIT)
            z[:, d] = y[:, d] + s
            stepper.put(p, conditioner_input(z[:, d]))
            if progress:
                progress(1)
        return z


class IntegerMAF(nn.Module):
    """An integer autoregressive flow from gray images to latents with a factorized base distribution."""

    def __init__(self, config: MAFConfig) -> None:
        super().__init__()
        if config.bits != 8:
            raise ValueError("an integer MAF codes gray (bits = 8) images")
        self.config = config
        d, m = config.height * config.width, config.mixtures
        self.steps = nn.ModuleList(
            AutoregressiveShift(MADE(MADEConfig(bits=1, hidden=config.hidden, height=config.height,
                                                width=config.width, seed=config.seed + k)), reverse=k % 2 == 1)
            for k in range(config.layers))
        with torch.no_grad():
            for step in self.flow_steps():  # start as the identity: the base learns the marginals first
                step.made.w_out.zero_()
        # the base's means in units of 128 levels around 128 (so that an optimizer's steps move them visibly)
        self.base_logits = nn.Parameter(torch.zeros(d, m))
        self.base_means = nn.Parameter(torch.linspace(-1.0, 1.0, m).repeat(d, 1))
        self.base_log_scales = nn.Parameter(torch.full((d, m), 3.0))

    def flow_steps(self) -> list[AutoregressiveShift]:
        """The flow's steps, data side first."""
        return [s for s in self.steps if isinstance(s, AutoregressiveShift)]

    @property
    def dims(self) -> int:
        """Pixels per image."""
        return self.config.height * self.config.width

    @property
    def latent_range(self) -> tuple[int, int]:
        """The least latent value and the number of values a latent can take."""
        k = self.config.layers
        return -SHIFT_LIMIT * k, 256 + 2 * SHIFT_LIMIT * k

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` integer latents of images ``x`` (``(B, H, W)`` or ``(B, D)``, values 0..255)."""
        z = x.reshape(len(x), self.dims).to(self.base_means.dtype)
        for step in self.steps:
            z = step(z)
        return z

    def base_params(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The base distribution's ``(D, M)`` weights' logits, means (in levels) and log-scales."""
        return self.base_logits, 128.0 * (self.base_means + 1.0), self.base_log_scales

    def base_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` log-probabilities (nats) of integer latents under the base distribution."""
        return integer_logistic_log_prob(z, *(p.t()[None] for p in self.base_params()))

    def loss_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-item negative log-likelihood in nats (what training minimises and validation reports)."""
        return {"nll": -self.base_log_prob(self.latents(x)).sum(1)}

    @torch.no_grad()
    def invert(self, z: torch.Tensor, progress: Callable[[int], object] | None = None) -> torch.Tensor:
        """The images (``(B, D)``, float values) whose :meth:`latents` are ``z``: the steps undone last first
        (:meth:`AutoregressiveShift.inverse`)."""
        for step in reversed(self.flow_steps()):
            z = step.inverse(z, progress)
        return z

    def exact(self) -> "IntegerMAF":
        """A float64 copy whose MADEs compute exact sums (:meth:`MADE.exact` for inputs on ``2^-7`` up to 3 in
        size) and whose base parameters are the float32 ones."""
        twin = IntegerMAF(self.config).double()
        twin.load_state_dict({k: v.double() for k, v in self.state_dict().items()})
        for mine, theirs in zip(self.flow_steps(), twin.flow_steps()):
            theirs.made = mine.made.exact(input_grid=7, input_limit=3.0)
        return twin.eval().requires_grad_(False)


def conditioner_input(z: torch.Tensor) -> torch.Tensor:
    """What a step's MADE sees of integer values ``z``: clamped to ``[-256, 511]``, then ``/128 - 1`` (exact,
    on the ``2^-7`` grid, in ``[-3, 3)``)."""
    return z.clamp(INPUT_LOW, INPUT_HIGH) / 128 - 1
