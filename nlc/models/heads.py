"""Likelihood heads shared by the latent-variable models.

Pixel values are integers ``0..255`` (8-bit) or ``0/1`` (binarized). Network
outputs are turned into log-probabilities here; turning them into the integer
tables a coder needs is the coding layer's job (:mod:`nlc.coding.bitsback`).
All log-probabilities are in nats.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_SCALE_MIN = -7.0
HALF_BIN = 1.0 / 255.0
LOG_2PI = math.log(2 * math.pi)


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Pixel values ``0..255`` mapped to ``[-1, 1]`` (the logistic heads' scale)."""
    return x.float() / 127.5 - 1.0


def split_logistic(params: torch.Tensor, mixtures: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split ``(B, 3M, ...)`` into mixture logits, means and log-scales, each ``(B, M, ...)``."""
    logits, means, log_scales = params.split(mixtures, dim=1)
    return logits, means, log_scales.clamp(min=LOG_SCALE_MIN)


def logistic_log_prob(x: torch.Tensor, params: torch.Tensor, mixtures: int) -> torch.Tensor:
    """log P(x) of 8-bit gray pixels under a discretized logistic mixture, ``(B, ...)``.

    ``x`` holds integers ``0..255`` with shape ``(B, ...)``; ``params`` is
    ``(B, 3M, ...)``. The first and last of the 256 bins take the tails.
    """
    logits, means, log_scales = split_logistic(params, mixtures)
    xu = to_unit(x).unsqueeze(1)
    centered = xu - means
    inv_s = torch.exp(-log_scales)
    plus_in = inv_s * (centered + HALF_BIN)
    min_in = inv_s * (centered - HALF_BIN)
    log_cdf_plus = plus_in - F.softplus(plus_in)
    log_one_minus_cdf_min = -F.softplus(min_in)
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    mid_in = inv_s * centered
    log_pdf_mid = mid_in - log_scales - 2.0 * F.softplus(mid_in)
    inner = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)), log_pdf_mid + math.log(2 * HALF_BIN))
    lp = torch.where(xu < -0.999, log_cdf_plus, torch.where(xu > 0.999, log_one_minus_cdf_min, inner))
    return torch.logsumexp(lp + F.log_softmax(logits, dim=1), dim=1)


def bernoulli_log_prob(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """log P(x) of binary pixels ``x`` (0/1) under Bernoulli ``logits`` of the same shape."""
    return -F.binary_cross_entropy_with_logits(logits, x.float(), reduction="none")


def pixel_log_prob(x: torch.Tensor, params: torch.Tensor, bits: int, mixtures: int) -> torch.Tensor:
    """Per-pixel log P(x), shaped like ``x``: logistic mixture for 8 bits, Bernoulli for 1."""
    return bernoulli_log_prob(x, params[:, 0]) if bits == 1 else logistic_log_prob(x, params, mixtures)


def obs_log_prob(x: torch.Tensor, params: torch.Tensor, bits: int, mixtures: int) -> torch.Tensor:
    """Per-image log P(x) summed over pixels."""
    return pixel_log_prob(x, params, bits, mixtures).flatten(1).sum(1)


def obs_channels(bits: int, mixtures: int) -> int:
    """Output channels a decoder needs per pixel."""
    return 1 if bits == 1 else 3 * mixtures


def gaussian_log_prob(z: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Diagonal Gaussian log-density, summed over all but the batch axis."""
    return (-0.5 * ((z - mean) * torch.exp(-log_std)) ** 2 - log_std - 0.5 * LOG_2PI).flatten(1).sum(1)


def gaussian_kl(mean: torch.Tensor, log_std: torch.Tensor, p_mean: torch.Tensor | float = 0.0,
                p_log_std: torch.Tensor | float = 0.0) -> torch.Tensor:
    """KL(N(mean, std) || N(p_mean, p_std)) summed over all but the batch axis."""
    p_log_std = torch.as_tensor(p_log_std, dtype=mean.dtype)
    var_ratio = torch.exp(2 * (log_std - p_log_std))
    t = ((mean - p_mean) * torch.exp(-p_log_std)) ** 2
    return (0.5 * (var_ratio + t - 1) - (log_std - p_log_std)).flatten(1).sum(1)


def integer_logistic_log_prob(z: torch.Tensor, logits: torch.Tensor, means: torch.Tensor,
                              log_scales: torch.Tensor) -> torch.Tensor:
    """log P(z) of unbounded integers under a discretized logistic mixture with unit bins.

    ``z`` is ``(B, ...)``; the parameters are ``(B, M, ...)``. Each bin is
    ``[z - 1/2, z + 1/2]``; the CDF difference is taken on the side of the
    mean where it is a difference of small numbers, so far tails keep their
    precision, with the density at the centre as a floor.
    """
    centered = z.unsqueeze(1) - means
    inv_s = torch.exp(-log_scales)
    plus = inv_s * (centered + 0.5)
    minus = inv_s * (centered - 0.5)
    delta = torch.where(centered > 0, torch.sigmoid(-minus) - torch.sigmoid(-plus),
                        torch.sigmoid(plus) - torch.sigmoid(minus))
    mid = inv_s * centered
    log_pdf_mid = mid - log_scales - 2.0 * F.softplus(mid)
    inner = torch.where(delta > 1e-6, torch.log(delta.clamp(min=1e-12)), log_pdf_mid)
    return torch.logsumexp(inner + F.log_softmax(logits, dim=1), dim=1)
