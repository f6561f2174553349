"""A convolutional VAE for 28x28 gray images (the BB-ANS model family).

Generative model ``p(z) p(x|z)`` with ``p(z) = N(0, I)`` over ``latent x 7 x 7``
maps and a factorized likelihood: a discretized logistic mixture per pixel for
8-bit images, a Bernoulli per pixel for binarized ones. Approximate posterior
``q(z|x)`` is a diagonal Gaussian. The model never touches a coder; the bits-back
codec (:mod:`nlc.coding.bitsback`) asks it for distributions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .blocks import GaussianHead, ResBlock, down, pixels_in, up
from .heads import gaussian_kl
from .staged import StagedLikelihood


@dataclass
class VAEConfig:
    """Hyper-parameters of :class:`VAE`."""

    bits: int = 8  # 8: gray levels 0..255; 1: binarized pixels
    latent: int = 8  # latent channels at 7x7
    hidden: int = 64
    mixtures: int = 3
    stages: int = 4  # 4: pixels coded in 4 interleaved stages; 1: fully factorized p(x|z)


class Encoder(nn.Module):
    """28x28 image -> features at 7x7."""

    def __init__(self, bits: int, hidden: int) -> None:
        super().__init__()
        self.bits = bits
        self.net = nn.Sequential(nn.Conv2d(1, hidden, 3, padding=1), down(hidden, hidden), ResBlock(hidden),
                                 down(hidden, hidden), ResBlock(hidden), ResBlock(hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(B, hidden, 7, 7)``."""
        return self.net(pixels_in(x, self.bits))


class Decoder(nn.Module):
    """Latent maps at 7x7 -> features per pixel at 28x28."""

    def __init__(self, cin: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(cin, hidden, 3, padding=1), ResBlock(hidden), ResBlock(hidden),
                                 up(hidden, hidden), ResBlock(hidden), up(hidden, hidden), nn.ELU(),
                                 nn.Conv2d(hidden, hidden, 3, padding=1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, hidden, 28, 28)``."""
        return self.net(z)


class VAE(nn.Module):
    """Single-latent-layer VAE: ``p(z) p(x|z)`` and ``q(z|x)``."""

    layers = 1

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg.bits, cfg.hidden)
        self.q_head = GaussianHead(cfg.hidden, cfg.latent)
        self.decoder = Decoder(cfg.latent, cfg.hidden)
        self.obs = StagedLikelihood(cfg.hidden, cfg.hidden, cfg.bits, cfg.mixtures, cfg.stages)

    def posterior(self, layer: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``q(z|x)``: mean and log-std, each ``(B, latent, 7, 7)`` (``layer`` is always 0)."""
        return self.q_head(self.encoder(x))

    def features(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder features that condition ``p(x|z)`` (see :class:`StagedLikelihood`)."""
        return self.decoder(z)

    def loss_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image negative ELBO parts in nats: ``rec`` (−log p(x|z)) and ``kl``."""
        mean, log_std = self.posterior(0, x)
        z = mean + torch.exp(log_std) * torch.randn_like(mean)
        rec = -self.obs.log_prob(self.features(z), x)
        return {"rec": rec, "kl": gaussian_kl(mean, log_std)}

    # The layer interface shared with the hierarchical model (used by the bits-back codec).
    @property
    def latent_shapes(self) -> list[tuple[int, int, int]]:
        """Shapes of one item's latent per layer."""
        return [(self.config.latent, 7, 7)]

    def prior(self, layer: int, above: torch.Tensor | None) -> None:
        """The prior of the only layer is the standard normal."""
        return None
