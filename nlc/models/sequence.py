"""What the sequence models (MADE, WaveNet) share: 28x28 items as a sequence of ``D`` positions in raster order,
a Bernoulli logit per binary pixel or a discretized logistic mixture per gray one, inputs scaled exactly, and
the loss."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def mixture_layout(out: torch.Tensor, mixtures: int, grid: bool = False) -> torch.Tensor:
    """A gray pixel's outputs ``(..., 3M)`` (logits, means, log-scales) laid out as the PixelCNN++ head's
    ``(..., 10M)`` (one channel: logits, then the first channel's means, log-scales and zero coefficients, the
    other channels zero); ``grid`` rounds them to ``2^-16``, the exact tables' grid. Shared by the sequence
    models (MADE, WaveNet)."""
    if grid:
        out = torch.round(out * 2**16) / 2**16
    zeros = torch.zeros(*out.shape[:-1], mixtures, dtype=out.dtype)
    return torch.cat([out[..., :mixtures], out[..., mixtures: 2 * mixtures], out[..., 2 * mixtures:], zeros]
                     + [zeros] * 6, -1)


def sequence_nll(x: torch.Tensor, out: torch.Tensor, bits: int, mixtures: int) -> torch.Tensor:
    """Per-item negative log-likelihood in nats of items ``x`` ``(B, D)`` under a sequence model's outputs
    ``(B, D, K)``: a Bernoulli logit per binary pixel, or a logistic mixture per gray one."""
    if bits == 1:
        return F.binary_cross_entropy_with_logits(out[..., 0].float(), x.float(), reduction="none").sum(1)
    from .mixture import log_likelihood

    n = x.numel()
    pix = torch.zeros(n, 3, dtype=out.dtype)
    pix[:, 0] = x.reshape(-1).to(out.dtype) / 127.5 - 1
    ll = log_likelihood(pix, mixture_layout(out, mixtures).reshape(n, -1), mixtures, channels=1)
    return -ll.reshape(len(x), -1).sum(1).float()



class SequenceModel(nn.Module):
    """Base of the sequence models: subclasses set ``config`` (``bits``, ``height``, ``width``, ``mixtures``)
    and define :meth:`outputs`, ``exact()`` and ``stepper(batch)``."""

    config: Any

    @property
    def dims(self) -> int:
        """Pixels per image (the sequence's length)."""
        return self.config.height * self.config.width

    @property
    def outputs_per_pixel(self) -> int:
        """1 (a logit) for binary pixels; logits, means and log-scales of the mixture for gray ones."""
        return 1 if self.config.bits == 1 else 3 * self.config.mixtures

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels as the network takes them: 0/1, or gray ``x/128 - 1`` (exact on the ``2^-7`` grid), in the
        model's dtype."""
        v = x.to(next(self.parameters()).dtype)
        return v if self.config.bits == 1 else v / 128 - 1

    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, D, K)`` outputs for images ``x`` of shape ``(B, H, W)`` or ``(B, D)`` (values 0/1 or 0..255)."""
        raise NotImplementedError

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` logits of ``p(x_d = 1 | x_<d)`` (binary models)."""
        return self.outputs(x)[..., 0]

    def mixture_params(self, out: torch.Tensor, grid: bool = False) -> torch.Tensor:
        """A gray pixel's outputs ``(..., 3M)`` laid out as the PixelCNN++ head's (:func:`mixture_layout`)."""
        return mixture_layout(out, self.config.mixtures, grid)

    def loss_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-item negative log-likelihood in nats (what training minimises and validation reports)."""
        v = x.reshape(len(x), -1)
        return {"nll": sequence_nll(v, self.outputs(v), self.config.bits, self.config.mixtures)}
