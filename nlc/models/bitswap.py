"""A two-layer hierarchical VAE for 28x28 gray images, coded in Bit-Swap order (Kingma et al. 2019).

Generative chain ``p(z2) p(z1|z2) p(x|z1)`` with ``p(z2) = N(0, I)`` over
``latent2 x 7 x 7`` maps and Gaussian ``p(z1|z2)`` over ``latent1 x 14 x 14``;
inference chain ``q(z1|x) q(z2|z1)``, both diagonal Gaussians. Each conditional
depends only on its neighbour in the chain, which is what lets the bits-back
codec interleave the layers (:func:`nlc.coding.bitsback.push_hierarchical`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .blocks import GaussianHead, ResBlock, down, pixels_in, up
from .heads import gaussian_kl, gaussian_log_prob
from .staged import StagedLikelihood

Gaussian = tuple[torch.Tensor, torch.Tensor]


@dataclass
class BitSwapConfig:
    """Hyper-parameters of :class:`BitSwapVAE`."""

    bits: int = 8
    latent1: int = 2  # channels of z1 at 14x14
    latent2: int = 8  # channels of z2 at 7x7
    hidden: int = 32
    mixtures: int = 3
    stages: int = 4


class BitSwapVAE(nn.Module):
    """``p(z2) p(z1|z2) p(x|z1)`` with ``q(z1|x) q(z2|z1)``."""

    layers = 2
    # Range its latents need when coded: the learned p(z1|z2) and q(z2|z1) put means past 8
    # (bench/latent_range.py: +3.9 bits per image on [-16, 16], +66 on [-8, 8]).
    latent_bound = 16.0

    def __init__(self, cfg: BitSwapConfig) -> None:
        super().__init__()
        self.config = cfg
        h = cfg.hidden
        self.q1 = nn.Sequential(nn.Conv2d(1, h, 3, padding=1), down(h, h), ResBlock(h), ResBlock(h))
        self.q1_head = GaussianHead(h, cfg.latent1)
        self.q2 = nn.Sequential(nn.Conv2d(cfg.latent1, h, 3, padding=1), ResBlock(h), down(h, h), ResBlock(h))
        self.q2_head = GaussianHead(h, cfg.latent2)
        self.p1 = nn.Sequential(nn.Conv2d(cfg.latent2, h, 3, padding=1), ResBlock(h), up(h, h), ResBlock(h))
        self.p1_head = GaussianHead(h, cfg.latent1)
        self.decoder = nn.Sequential(nn.Conv2d(cfg.latent1, h, 3, padding=1), ResBlock(h), ResBlock(h),
                                     up(h, h), nn.ELU(), nn.Conv2d(h, h, 3, padding=1))
        self.obs = StagedLikelihood(h, h, cfg.bits, cfg.mixtures, cfg.stages)

    @property
    def latent_shapes(self) -> list[tuple[int, int, int]]:
        """Shapes of one item's ``z1`` and ``z2``."""
        return [(self.config.latent1, 14, 14), (self.config.latent2, 7, 7)]

    def posterior(self, layer: int, below: torch.Tensor) -> Gaussian:
        """``q(z1|x)`` for layer 0 (``below`` = pixels), ``q(z2|z1)`` for layer 1."""
        if layer == 0:
            return self.q1_head(self.q1(pixels_in(below, self.config.bits)))
        return self.q2_head(self.q2(below))

    def prior(self, layer: int, above: torch.Tensor | None) -> Gaussian | None:
        """``p(z1|z2)`` for layer 0; ``None`` (standard normal) for the top layer."""
        return self.p1_head(self.p1(above)) if layer == 0 else None

    def features(self, z1: torch.Tensor) -> torch.Tensor:
        """Decoder features that condition ``p(x|z1)``."""
        return self.decoder(z1)

    def loss_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image −ELBO parts in nats: ``rec``, ``kl1`` (sampled) and ``kl2`` (analytic)."""
        m1, s1 = self.posterior(0, x)
        z1 = m1 + torch.exp(s1) * torch.randn_like(m1)
        m2, s2 = self.posterior(1, z1)
        z2 = m2 + torch.exp(s2) * torch.randn_like(m2)
        prior1 = self.prior(0, z2)
        assert prior1 is not None  # layer 0 has a learned prior
        pm1, ps1 = prior1
        rec = -self.obs.log_prob(self.features(z1), x)
        kl1 = gaussian_log_prob(z1, m1, s1) - gaussian_log_prob(z1, pm1, ps1)
        return {"rec": rec, "kl1": kl1, "kl2": gaussian_kl(m2, s2)}
