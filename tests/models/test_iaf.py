"""The IAF posterior: each step's shift and gate look only at earlier latent dimensions, the per-dimension
Gaussians the coder uses give exactly the flow's log q, and popping values through them reproduces the
values (the encoder's and decoder's calls agree)."""

from __future__ import annotations

import math

import torch

from nlc.models.iaf import IAFVAE, IAFVAEConfig

TINY = dict(bits=8, latent=2, hidden=8, mixtures=2, stages=4, steps=2, flow_hidden=16, context=2)


def tiny_iaf(seed: int = 0) -> IAFVAE:
    """A small IAF VAE whose flow steps are far from the identity."""
    torch.manual_seed(seed)
    m = IAFVAE(IAFVAEConfig(**TINY)).eval()
    with torch.no_grad():
        for step in m.flow:
            step.w_out.normal_(0, 0.3)
    return m


def test_a_step_looks_only_at_earlier_dimensions():
    m = tiny_iaf(1)
    z = torch.randn(2, m.dims, requires_grad=True)
    c = torch.randn(2, 16)
    mean, s = m.flow[0](z, c)
    for i in (0, 1, 40, m.dims - 1):
        for out in (mean, s):
            (grad,) = torch.autograd.grad(out[:, i].sum(), z, retain_graph=True)
            assert not (grad.abs().sum(0)[i:] > 0).any(), i


def test_the_coders_conditionals_are_the_flows_posterior():
    m = tiny_iaf(2)
    x = torch.randint(0, 256, (3, 28, 28))
    torch.manual_seed(3)
    z, log_q = m.sample(x)
    means, stds, values = m.conditionals(x, values=z)
    via = (-0.5 * ((z - means) / stds) ** 2 - torch.log(stds) - 0.5 * math.log(2 * math.pi)).sum(1)
    assert torch.allclose(via, log_q, rtol=1e-4, atol=1e-3) and torch.equal(values, z)


def test_picking_values_gives_the_conditionals_of_those_values():
    m = tiny_iaf(4)
    x = torch.randint(0, 256, (2, 28, 28))
    picked = m.conditionals(x, pick=lambda i, mean, std: torch.round((mean + 0.7 * std) * 64) / 64)
    again = m.conditionals(x, values=picked[2])
    assert all(torch.equal(a, b) for a, b in zip(picked, again))
