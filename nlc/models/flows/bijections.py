"""Integer bijections, the building blocks of an integer discrete flow (Hoogeboom et al. 2019).

Every block maps a tensor of integers (held in float32, exact while values stay
below 2^24) to a tensor of integers and back: ``inverse(forward(x)) == x``
exactly, for any integers, because every non-trivial step is a *lifting*
step: one part of the tensor is shifted by a rounded function of another part
that the step leaves unchanged, so the inverse recomputes the same function
and subtracts it. In training the rounding passes gradients straight through.

:func:`check_invertible` is the one test every block (and the whole flow) passes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

OUT = 8.0  # network outputs are multiplied by this (large factors make Adam steps jump)


def net_input(x: torch.Tensor) -> torch.Tensor:
    """What networks see of integers: ``asinh(x / 4)``, about unit size both for raw pixels
    (+-128 -> +-4.2) and for the small residual-like latents the flow produces (+-3 -> +-0.7).
    A plain ``x / 64`` left the residuals at a few hundredths, which Adam takes ages to amplify."""
    return torch.asinh(x / 4.0)


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round to the nearest integer; in training the gradient passes straight through."""
    if not x.requires_grad:
        return torch.round(x)
    return x + (torch.round(x) - x).detach()


class Bijection(nn.Module):
    """An exactly invertible map between integer tensors ``(B, C, H, W)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        """Data towards latents."""
        raise NotImplementedError

    def inverse(self, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        """Latents towards data: ``inverse(forward(x)) == x``."""
        raise NotImplementedError


class Squeeze(Bijection):
    """``(B, C, H, W) -> (B, 4C, H/2, W/2)``: every 2x2 block becomes four channels (RealNVP)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Space to channels."""
        return F.pixel_unshuffle(x, 2)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Channels to space."""
        return F.pixel_shuffle(y, 2)


class Reverse(Bijection):
    """Reverse the channel order (the fixed permutation of NICE/RealNVP)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Channels reversed."""
        return x.flip(1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Channels reversed back."""
        return y.flip(1)


class IntegerConv1x1(Bijection):
    """Glow's invertible 1x1 convolution made integer: ``W = L U`` with unit triangular factors.

    The factors' off-diagonal weights live on a grid of ``2^-FRAC`` (at most
    ``LIMIT`` in size), and each factor is applied as one rounded lifting step:
    ``x + round(U' x)`` with ``U'`` strictly upper triangular, then
    ``x + round(L' x)`` with ``L'`` strictly lower triangular. ``det W = 1``, so
    the map is volume preserving, and the sums are computed in float64 on
    integers, where they are exact whatever the summation order: encoder and
    decoder agree on every machine. The inverse undoes ``L`` channel by channel
    in ascending order and ``U`` in descending order (``C`` small steps, no
    per-pixel loop).
    """

    mask_u: torch.Tensor  # buffers
    mask_l: torch.Tensor

    FRAC = 8
    LIMIT = 2.0

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.upper = nn.Parameter(torch.randn(channels, channels) * 0.05)
        self.lower = nn.Parameter(torch.randn(channels, channels) * 0.05)
        self.register_buffer("mask_u", torch.ones(channels, channels).triu(1), persistent=False)
        self.register_buffer("mask_l", torch.ones(channels, channels).tril(-1), persistent=False)

    def _grid(self, w: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Integer weights (float64), ``2^FRAC`` times the real ones."""
        one = 2.0**self.FRAC
        return (round_ste(w.clamp(-self.LIMIT, self.LIMIT) * one) * mask).double()

    def _shift(self, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``round(w @ x / 2^FRAC)`` over the channel axis, exact for integer inputs."""
        t = torch.einsum("ij,bjhw->bihw", w, x.double()) / 2.0**self.FRAC
        return round_ste(t).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x -> L U x`` with rounded lifting steps."""
        x = x + self._shift(self._grid(self.upper, self.mask_u), x)
        return x + self._shift(self._grid(self.lower, self.mask_l), x)

    @torch.no_grad()
    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Undo ``L`` (ascending channels), then ``U`` (descending channels)."""
        lw, uw = self._grid(self.lower, self.mask_l), self._grid(self.upper, self.mask_u)
        x = y.clone()
        c = x.shape[1]
        for i in range(1, c):
            x[:, i : i + 1] -= self._shift(lw[i : i + 1, :i], x[:, :i])
        for i in range(c - 2, -1, -1):
            x[:, i : i + 1] -= self._shift(uw[i : i + 1, i + 1 :], x[:, i + 1 :])
        return x


class CouplingNet(nn.Module):
    """The translation network of a coupling: 3x3 conv, residual blocks, zero-initialised 3x3 conv."""

    def __init__(self, cin: int, cout: int, hidden: int, blocks: int) -> None:
        super().__init__()
        self.inp = nn.Conv2d(cin, hidden, 3, padding=1)
        self.blocks = nn.ModuleList(_Res(hidden) for _ in range(blocks))
        self.out = nn.Conv2d(hidden, cout, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)  # type: ignore[arg-type]  # a Conv2d made with a bias

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        """Translation in integer units for the other half."""
        h = self.inp(net_input(a.contiguous()))
        for b in self.blocks:
            h = b(h)
        return self.out(F.relu(h)) * OUT


class _Res(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.c2 = nn.Conv2d(ch, ch, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.c2(F.relu(self.c1(F.relu(h))))


class AdditiveCoupling(Bijection):
    """NICE's additive coupling with rounding: ``(a, b) -> (a, b + round(t(a)))``."""

    def __init__(self, channels: int, hidden: int, blocks: int) -> None:
        super().__init__()
        self.split = channels // 2
        self.net = CouplingNet(self.split, channels - self.split, hidden, blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shift the second part by the rounded translation of the first."""
        a, b = x[:, : self.split], x[:, self.split :]
        return torch.cat([a, b + round_ste(self.net(a))], 1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Subtract the same rounded translation."""
        a, b = y[:, : self.split], y[:, self.split :]
        return torch.cat([a, b - torch.round(self.net(a))], 1)


class AffineCoupling(Bijection):
    """RealNVP's affine coupling made exact on integers by lifting, without bits-back.

    A map on integers cannot change volume, so the second part's channels are
    scaled in pairs ``(u, v) -> (a u, v / a)`` with ``a = exp(s(first part))``
    per position (``|log a| <= MAX_LOG``), written as four rounded shears,
    ``diag(a, 1/a) = U(-a) L(1/a - 1) U(1) L(a - 1)``, then translated like
    :class:`AdditiveCoupling`. Each shear moves one channel by a rounded
    multiple of the other, so the inverse undoes them in reverse order exactly.
    """

    MAX_LOG = 1.5

    def __init__(self, channels: int, hidden: int, blocks: int) -> None:
        super().__init__()
        self.split = channels // 2
        rest = channels - self.split
        if rest % 2:
            raise ValueError(f"affine coupling needs an even second part ({rest} channels)")
        self.pairs = rest // 2
        self.net = CouplingNet(self.split, self.pairs + rest, hidden, blocks)

    def _params(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.net(a)
        return torch.exp(torch.tanh(h[:, : self.pairs] / OUT) * self.MAX_LOG), h[:, self.pairs :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale channel pairs of the second part by ``(a, 1/a)``, then translate."""
        a, b = x[:, : self.split], x[:, self.split :]
        scale, t = self._params(a)
        u, v = b[:, : self.pairs], b[:, self.pairs :]
        v = v + round_ste((scale - 1) * u)
        u = u + v
        v = v + round_ste((1 / scale - 1) * u)
        u = u + round_ste(-scale * v)
        return torch.cat([a, torch.cat([u, v], 1) + round_ste(t)], 1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Undo the translation and the four shears in reverse order."""
        a, b = y[:, : self.split], y[:, self.split :]
        scale, t = self._params(a)
        b = b - torch.round(t)
        u, v = b[:, : self.pairs], b[:, self.pairs :]
        u = u - torch.round(-scale * v)
        v = v - torch.round((1 / scale - 1) * u)
        u = u - v
        v = v - torch.round((scale - 1) * u)
        return torch.cat([a, u, v], 1)


COUPLINGS = {"additive": AdditiveCoupling, "affine": AffineCoupling}


@torch.no_grad()
def check_invertible(bijection: Bijection, x: torch.Tensor) -> torch.Tensor:
    """Assert that ``bijection`` maps integers ``x`` to integers and back exactly; returns ``forward(x)``.

    The one invertibility check shared by every block's test and the whole flow's.
    """
    was_training = bijection.training
    bijection.eval()
    try:
        y = bijection.forward(x)
        if not torch.equal(y, torch.round(y)):
            raise AssertionError(f"{type(bijection).__name__}: forward gave non-integers")
        back = bijection.inverse(y)
        if not torch.equal(back, x):
            worst = (back - x).abs().max().item()
            raise AssertionError(f"{type(bijection).__name__}: inverse(forward(x)) != x (max error {worst})")
        return y
    finally:
        bijection.train(was_training)
