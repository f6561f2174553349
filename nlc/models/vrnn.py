"""A variational RNN (Chung et al. 2015) over the 28 rows of a 28x28 image.

At step ``t`` the GRU state ``h`` summarises rows ``< t`` and latents ``< t``;
the prior ``p(z_t|h)``, the posterior ``q(z_t|x_t, h)`` and the likelihood
``p(x_t|z_t, h)`` of the row's 28 pixels (a discretized logistic mixture or a
Bernoulli per pixel) are small MLPs; then ``h <- GRU(h, [x_t, z_t])``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .heads import gaussian_kl, obs_channels, pixel_log_prob

Gaussian = tuple[torch.Tensor, torch.Tensor]


@dataclass
class VRNNConfig:
    """Hyper-parameters of :class:`VRNN`."""

    bits: int = 8
    width: int = 28  # pixels per row (one time step)
    latent: int = 16
    hidden: int = 256
    mixtures: int = 3


def _mlp(cin: int, hidden: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, hidden), nn.ELU(), nn.Linear(hidden, hidden), nn.ELU(), nn.Linear(hidden, cout))


class VRNN(nn.Module):
    """Rows as time steps, one Gaussian latent vector per row."""

    def __init__(self, cfg: VRNNConfig) -> None:
        super().__init__()
        self.config = cfg
        h, w = cfg.hidden, cfg.width
        self.phi_x = nn.Sequential(nn.Linear(w, h), nn.ELU())
        self.phi_z = nn.Sequential(nn.Linear(cfg.latent, h), nn.ELU())
        self.prior_net = _mlp(h, h, 2 * cfg.latent)
        self.post_net = _mlp(2 * h, h, 2 * cfg.latent)
        self.obs_net = _mlp(2 * h, h, w * obs_channels(cfg.bits, cfg.mixtures))
        self.rnn = nn.GRUCell(2 * h, h)

    def init_state(self, batch: int) -> torch.Tensor:
        """The state before the first row."""
        return torch.zeros(batch, self.config.hidden)

    def _rows_in(self, row: torch.Tensor) -> torch.Tensor:
        scale = 1 if self.config.bits == 1 else 255
        return self.phi_x(row.float() / scale * 2 - 1)

    @staticmethod
    def _gaussian(out: torch.Tensor) -> Gaussian:
        mean, log_std = out.chunk(2, dim=1)
        return mean, log_std.clamp(min=-6.0, max=2.0)

    def prior(self, h: torch.Tensor) -> Gaussian:
        """``p(z_t | h)``: mean and log-std ``(B, latent)``."""
        return self._gaussian(self.prior_net(h))

    def posterior(self, h: torch.Tensor, row: torch.Tensor) -> Gaussian:
        """``q(z_t | x_t, h)``."""
        return self._gaussian(self.post_net(torch.cat([h, self._rows_in(row)], 1)))

    def obs_params(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Parameters of ``p(x_t | z_t, h)``: ``(B, C, width)``."""
        return self.obs_net(torch.cat([h, self.phi_z(z)], 1)).view(h.shape[0], -1, self.config.width)

    def row_log_prob(self, row: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """log p(x_t | ...) per item, ``(B,)``."""
        return pixel_log_prob(row, params, self.config.bits, self.config.mixtures).sum(1)

    def step(self, h: torch.Tensor, row: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The state after row ``x_t`` with latent ``z_t``."""
        return self.rnn(torch.cat([self._rows_in(row), self.phi_z(z)], 1), h)

    def loss_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image −ELBO parts in nats: ``rec`` and ``kl`` summed over rows."""
        h = self.init_state(x.shape[0])
        rec = kl = torch.zeros(x.shape[0])
        for t in range(x.shape[1]):
            row = x[:, t]
            pm, ps = self.prior(h)
            qm, qs = self.posterior(h, row)
            z = qm + torch.exp(qs) * torch.randn_like(qm)
            rec = rec - self.row_log_prob(row, self.obs_params(h, z))
            kl = kl + gaussian_kl(qm, qs, pm, ps)
            h = self.step(h, row, z)
        return {"rec": rec, "kl": kl}
