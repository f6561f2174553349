"""Discretized logistic mixture likelihood (PixelCNN++, Salimans et al. 2017).

A pixel's three sub-pixels share the mixture component: with component ``m``,
``R ~ L(mu_R)``, ``G ~ L(mu_G + a*R)``, ``B ~ L(mu_B + b*R + c*G)`` where ``L`` is a
logistic discretized to 256 bins of ``[-1, 1]``. Parameters come in a tensor
with the parameter axis at dimension 1; this module turns them into named
parts and log-likelihoods. Turning them into integer probability tables is the
coding layer's job (:mod:`nlc.coding.logistic_mixture`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

LOG_SCALE_MIN = -7.0
HALF_BIN = 1.0 / 255.0


def num_params(mixtures: int) -> int:
    """Parameters per pixel: logits, then means, log-scales and coefficients for 3 channels."""
    return mixtures * 10


@dataclass
class MixtureParams:
    """Named parts of a mixture parameter tensor (``...`` is any batch/spatial shape)."""

    logits: torch.Tensor  # (B, M, ...)
    means: torch.Tensor  # (B, 3, M, ...)
    log_scales: torch.Tensor  # (B, 3, M, ...)
    coeffs: torch.Tensor  # (B, 3, M, ...) for (G|R, B|R, B|G)


def split_params(p: torch.Tensor, mixtures: int) -> MixtureParams:
    """Split ``(B, 10*M, ...)`` network output into :class:`MixtureParams`."""
    m = mixtures
    rest = p.shape[2:]
    logits = p[:, :m]
    tail = p[:, m:].reshape(p.shape[0], 3, 3 * m, *rest)
    means = tail[:, :, :m]
    log_scales = tail[:, :, m : 2 * m].clamp(min=LOG_SCALE_MIN)
    coeffs = torch.tanh(tail[:, :, 2 * m :])
    return MixtureParams(logits, means, log_scales, coeffs)


def conditional_means(mp: MixtureParams, x: torch.Tensor) -> torch.Tensor:
    """Means of each channel given the earlier channels of the same pixel.

    ``x`` is ``(B, 3, ...)`` in ``[-1, 1]``; returns ``(B, 3, M, ...)``.
    """
    xr, xg = x[:, 0:1], x[:, 1:2]
    mu = mp.means
    c = mp.coeffs
    g = mu[:, 1] + c[:, 0] * xr
    b = mu[:, 2] + c[:, 1] * xr + c[:, 2] * xg
    return torch.stack([mu[:, 0], g, b], dim=1)


def _log_bin_probs(x: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    """log P(bin containing x) for each channel and component, ``(B, 3, M, ...)``."""
    x = x.unsqueeze(2)
    centered = x - means
    inv_s = torch.exp(-log_scales)
    plus_in = inv_s * (centered + HALF_BIN)
    min_in = inv_s * (centered - HALF_BIN)
    log_cdf_plus = plus_in - F.softplus(plus_in)  # log sigmoid(plus_in), used at x = 0
    log_one_minus_cdf_min = -F.softplus(min_in)  # log(1 - sigmoid(min_in)), used at x = 255
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    mid_in = inv_s * centered
    log_pdf_mid = mid_in - log_scales - 2.0 * F.softplus(mid_in)
    # Where the bin probability underflows in float32, use the density times the bin width.
    inner = torch.where(
        cdf_delta > 1e-5,
        torch.log(cdf_delta.clamp(min=1e-12)),
        log_pdf_mid + torch.log(torch.tensor(2 * HALF_BIN)),
    )
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, inner))


HEADS = ("logistic", "categorical")  # what an image model's per-pixel parameters are
CATEGORIES = 256  # a categorical head's logits per channel


def head_of(model: object) -> str:
    """An image model's head: ``"logistic"`` (``10*M`` discretized logistic mixture parameters per pixel, the
    default) or ``"categorical"`` (``256`` logits per channel, a softmax over the values), from its config."""
    return getattr(getattr(model, "config", None), "head", "logistic")


def categorical_log_likelihood(x: torch.Tensor, logits: torch.Tensor, channels: int = 3) -> torch.Tensor:
    """Per-pixel log-likelihood in nats, ``(B, ...)``, under a categorical head: ``logits`` ``(B, 256*3, ...)``
    (channel ``ch``'s 256 logits at ``256*ch``), each channel independent given the pixels before; ``x`` as
    for :func:`log_likelihood`."""
    values = torch.round((x[:, :channels] + 1) * 127.5).long().clamp(0, CATEGORIES - 1)  # (B, C, ...)
    lp = F.log_softmax(logits[:, : channels * CATEGORIES].reshape(
        logits.shape[0], channels, CATEGORIES, *logits.shape[2:]), dim=2)
    return lp.gather(2, values.unsqueeze(2)).squeeze(2).sum(1)


def image_log_likelihood(x: torch.Tensor, p: torch.Tensor, mixtures: int, channels: int = 3,
                         head: str = "logistic") -> torch.Tensor:
    """:func:`log_likelihood` or :func:`categorical_log_likelihood`, by ``head``."""
    if head == "categorical":
        return categorical_log_likelihood(x, p, channels)
    return log_likelihood(x, p, mixtures, channels)


def log_likelihood(x: torch.Tensor, p: torch.Tensor, mixtures: int, channels: int = 3) -> torch.Tensor:
    """Per-pixel log-likelihood in nats, ``(B, ...)``.

    ``x`` is ``(B, 3, ...)`` in ``[-1, 1]``. With ``channels=1`` only the first
    channel is scored (its marginal), as used for grayscale images.
    """
    mp = split_params(p, mixtures)
    lp = _log_bin_probs(x, conditional_means(mp, x), mp.log_scales)[:, :channels].sum(dim=1)
    return torch.logsumexp(lp + F.log_softmax(mp.logits, dim=1), dim=1)
