"""A VAE whose approximate posterior is tightened by inverse autoregressive flow (IAF, Kingma et al. 2016).

The generative model, the encoder and the likelihood are :class:`~nlc.models.vae.VAE`'s. The encoder also
gives a context ``c``; a posterior sample starts as ``z_0 = mu + sigma * eps`` and goes through ``steps`` IAF
steps, each a masked autoencoder (MADE-style masks over the ``latent x 7 x 7`` dimensions in one fixed order,
the context added to every hidden unit) giving a shift ``m`` and a gate ``g = sigmoid(s)`` per dimension from
the dimensions before it::

    z_t = g_t * z_{t-1} + (1 - g_t) * m_t           log q(z_T|x) = log N(z_0; mu, sigma) - sum log g_t

All steps use the same order, so ``z_T``'s dimension ``i`` is an affine function of ``z_0``'s dimension ``i``
given the dimensions before it: its conditional ``q(z_T,i | z_T,<i, x)`` is a Gaussian
(:meth:`IAFVAE.conditionals`), which is what the bits-back coder pops and pushes, one dimension at a time.
The ELBO's KL term is estimated from the sample (``log q - log p``), no longer in closed form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .heads import LOG_2PI
from .vae import VAE, VAEConfig


@dataclass
class IAFVAEConfig(VAEConfig):
    """Hyper-parameters of :class:`IAFVAE`: the VAE's and the flow's."""

    steps: int = 2  # IAF steps
    flow_hidden: int = 256  # hidden units of each step's masked autoencoder
    context: int = 4  # context channels at 7x7 from the encoder
    seed: int = 0  # the hidden units' degrees


class IAFStep(nn.Module):
    """One IAF step's masked autoencoder over ``dims`` latent dimensions with a context."""

    mask_in: torch.Tensor
    mask_out: torch.Tensor

    def __init__(self, dims: int, hidden: int, context: int, seed: int) -> None:
        super().__init__()
        degrees = torch.from_numpy(np.random.default_rng(seed).integers(1, dims, size=hidden))
        order = torch.arange(dims)
        self.register_buffer("mask_in", (degrees[:, None] > order[None, :]).float(), persistent=False)
        self.register_buffer("mask_out", (order[:, None] >= degrees[None, :]).float().repeat(2, 1),
                             persistent=False)  # (2D, H): rows of m, then of s
        self.w_in = nn.Parameter(torch.randn(hidden, dims) / dims**0.5)
        self.w_ctx = nn.Linear(context, hidden)
        self.w_out = nn.Parameter(torch.zeros(2 * dims, hidden))
        self.b_out = nn.Parameter(torch.cat([torch.zeros(dims), torch.full((dims,), 2.0)]))  # gates start near 1

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Shift ``m`` and gate pre-activation ``s`` ``(B, D)`` for inputs ``z`` ``(B, D)``, context ``(B, C)``."""
        h = F.relu(F.linear(z, self.w_in * self.mask_in) + self.w_ctx(c))
        m, s = F.linear(h, self.w_out * self.mask_out, self.b_out).chunk(2, 1)
        return m, s


class IAFVAE(VAE):
    """A VAE with an IAF posterior (see the module docstring)."""

    def __init__(self, cfg: IAFVAEConfig) -> None:
        super().__init__(cfg)
        self.config: IAFVAEConfig = cfg
        self.dims = cfg.latent * 49
        self.ctx_head = nn.Conv2d(cfg.hidden, cfg.context, 3, padding=1)
        self.ctx_lin = nn.Linear(cfg.context * 49, cfg.context * 8)
        self.flow = nn.ModuleList(IAFStep(self.dims, cfg.flow_hidden, cfg.context * 8, cfg.seed + k)
                                  for k in range(cfg.steps))

    def start(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``z_0``'s mean and log-std ``(B, D)`` and the flow's context ``(B, 8C)`` for images ``x``."""
        h = self.encoder(x)
        mean, log_std = self.q_head(h)
        c = self.ctx_lin(F.elu(self.ctx_head(h)).flatten(1))
        return mean.flatten(1), log_std.flatten(1), c

    def sample(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A posterior sample ``z_T`` ``(B, D)`` and its ``log q(z_T|x)`` (nats) through the flow."""
        mean, log_std, c = self.start(x)
        z = mean + torch.exp(log_std) * torch.randn_like(mean)
        log_q = (-0.5 * ((z - mean) * torch.exp(-log_std)) ** 2 - log_std - 0.5 * LOG_2PI).sum(1)
        for step in self.flow:
            m, s = step(z, c)
            g = torch.sigmoid(s)
            z = g * z + (1 - g) * m
            log_q = log_q - F.logsigmoid(s).sum(1)
        return z, log_q

    def loss_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image negative ELBO parts in nats: ``rec`` (−log p(x|z)) and ``kl`` (``log q(z|x) − log p(z)``
        of the sample)."""
        z, log_q = self.sample(x)
        log_p = (-0.5 * z**2 - 0.5 * LOG_2PI).sum(1)
        rec = -self.obs.log_prob(self.features(z.view(-1, self.config.latent, 7, 7)), x)
        return {"rec": rec, "kl": log_q - log_p}

    @torch.no_grad()
    def conditionals(self, x: torch.Tensor, values: torch.Tensor | None = None,
                     pick: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor] | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The Gaussian ``q(z_T,i | z_T,<i, x)`` of every dimension, one dimension at a time in order.

        With ``values`` ``(B, D)`` given, dimension ``i``'s conditional is taken given those values; otherwise
        ``pick(i, mean, std)`` chooses each dimension's value from its conditional (a coder's pop). Returns
        the means, the stds and the values, each ``(B, D)``. The same calls in the same order on both sides
        of a coder give the same numbers."""
        if (values is None) == (pick is None):
            raise ValueError("give either the values or a pick")
        mu0, log_s0, c = self.start(x)
        n, dims = mu0.shape
        s0 = torch.exp(log_s0)
        steps = [step for step in self.flow if isinstance(step, IAFStep)]
        # per step: hidden pre-activations growing by one input column per dimension, and its inputs so far
        pre = [F.linear(c, step.w_ctx.weight, step.w_ctx.bias) for step in steps]  # (B, H)
        w_in = [(step.w_in * step.mask_in).t().contiguous() for step in steps]  # (D, H)
        w_out = [(step.w_out * step.mask_out) for step in steps]
        means, stds = torch.empty(n, dims), torch.empty(n, dims)
        out = torch.empty(n, dims) if values is None else values
        for i in range(dims):
            ms, gs = [], []
            for t, step in enumerate(steps):
                h = F.relu(pre[t])
                m = h @ w_out[t][i] + step.b_out[i]
                s = h @ w_out[t][dims + i] + step.b_out[dims + i]
                ms.append(m)
                gs.append(torch.sigmoid(s))
            a, b = torch.ones(n), torch.zeros(n)  # z_T,i = a * z_0,i + b
            for m, g in zip(ms, gs):
                a, b = g * a, g * b + (1 - g) * m
            means[:, i], stds[:, i] = a * mu0[:, i] + b, a * s0[:, i]
            if pick is not None:
                out[:, i] = pick(i, means[:, i], stds[:, i])
            z = (out[:, i] - b) / a  # z_0,i, then each step's output: the next step's input
            for t, (m, g) in enumerate(zip(ms, gs)):
                pre[t] = pre[t] + z[:, None] * w_in[t][i]
                z = g * z + (1 - g) * m
        return means, stds, out
