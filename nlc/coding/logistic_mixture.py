"""Discretized logistic mixture parameters -> 256-bin probability tables.

Tables are float32 differences of the logistic CDF at the 255 bin edges (the
first and last bins take the tails). Encoder and decoder run exactly the same
operations on the same inputs, so they get bit-identical tables; constriction
then quantizes each row to fixed point. Each table mixes in a uniform
distribution with weight 2^-16 so that no value's probability underflows: the
information content reported for a pixel is then what the coder really pays.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..models.mixture import split_params

_EDGES = (torch.arange(255, dtype=torch.float32) + 0.5) / 127.5 - 1.0
_TINY = 1e-30
UNIFORM_MIX = 2.0**-16  # every value keeps probability >= 2^-24: at most 24 bits, 2e-5 bits of overhead


def component_pmfs(means: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    """Bin probabilities of each logistic component: ``(B, M) -> (B, M, 256)``."""
    edges = _EDGES if means.device.type == "cpu" else _EDGES.to(means.device)
    cdf = torch.sigmoid((edges - means.unsqueeze(-1)) * torch.exp(-log_scales).unsqueeze(-1))
    out = torch.empty(*means.shape, 256, device=means.device)
    out[..., 0] = cdf[..., 0]
    torch.sub(cdf[..., 1:], cdf[..., :-1], out=out[..., 1:255])
    out[..., 255] = 1.0 - cdf[..., -1]
    return out


SymbolFn = Callable[[int, np.ndarray], np.ndarray]


def code_pixels(params: torch.Tensor, mixtures: int, channels: int, symbol_fn: SymbolFn,
                with_bits: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Code one pixel per batch row, channel by channel, through ``symbol_fn``.

    ``params`` is ``(B, 10*M)``. For each channel ``ch`` in ``R, G, B`` (or only
    ``R`` when ``channels == 1``), the table ``(B, 256)`` of that channel given the
    earlier ones is handed to ``symbol_fn(ch, table)``, which must return the
    ``(B,)`` symbols (an encoder returns the known ones after coding them, a
    decoder the decoded ones). The mixture weights are updated with each coded
    channel, so the product of the tables is exactly the joint likelihood.

    Returns the symbols ``(B, channels)`` and the information content in bits
    of each pixel under the float tables ``(B,)`` (``None`` without
    ``with_bits``: a decoder needs none). ``params`` may live on any device;
    tables reach ``symbol_fn`` as float32 numpy arrays.
    """
    dev = params.device
    mp = split_params(params, mixtures)
    w = torch.softmax(mp.logits, dim=1)
    syms = np.empty((params.shape[0], channels), np.uint8)
    bits = torch.zeros(params.shape[0], device=dev) if with_bits else None
    xs: list[torch.Tensor] = []
    for ch in range(channels):
        mean = mp.means[:, ch]
        if ch == 1:
            mean = mean + mp.coeffs[:, 0] * xs[0]
        elif ch == 2:
            mean = mean + mp.coeffs[:, 1] * xs[0] + mp.coeffs[:, 2] * xs[1]
        comp = component_pmfs(mean, mp.log_scales[:, ch])  # (B, M, 256)
        table = torch.bmm(w.unsqueeze(1), comp)[:, 0] * (1 - UNIFORM_MIX) + UNIFORM_MIX / 256  # (B, 256)
        sym = np.asarray(symbol_fn(ch, table.cpu().numpy()))
        syms[:, ch] = sym
        last = ch + 1 == channels
        if last and bits is None:
            break
        sym_t = torch.from_numpy(sym.astype(np.int64)).to(dev)
        if bits is not None:  # what the coder pays under this table
            bits -= torch.log2(table.gather(1, sym_t.view(-1, 1))[:, 0] / table.sum(1))
        if not last:
            p_comp = comp.gather(2, sym_t.view(-1, 1, 1).expand(-1, comp.shape[1], 1))[:, :, 0]  # (B, M)
            w = w * p_comp.clamp_min(_TINY)
            w = w / w.sum(1, keepdim=True)
            xs.append(torch.from_numpy(sym.astype(np.float32)).to(dev).unsqueeze(1) / 127.5 - 1.0)
    return syms, None if bits is None else bits.double().cpu().numpy()


def mixture_tables(logits: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    """256-bin tables of single-channel discretized logistic mixtures: ``(n, M)`` each -> ``(n, 256)`` float64.

    The mixture's CDF at the 255 bin edges is formed in one fused pass
    (``sigmoid(edge / s - mu / s)`` weighted by the mixture weights), then
    differenced; the same uniform floor as :func:`code_pixels` keeps every
    value codable.
    """
    w = torch.softmax(logits, dim=1)
    inv_s = torch.exp(-log_scales)
    arg = torch.addcmul((-means * inv_s).unsqueeze(2), inv_s.unsqueeze(2), _EDGES.view(1, 1, 255))  # (edge - mu) / s
    cdf = torch.bmm(w.unsqueeze(1), arg.sigmoid_())[:, 0].double()  # (n, 255)
    table = torch.empty(cdf.shape[0], 256, dtype=torch.float64)
    table[:, 0] = cdf[:, 0]
    torch.sub(cdf[:, 1:], cdf[:, :-1], out=table[:, 1:255])
    table[:, 255] = 1.0 - cdf[:, -1]
    return table.clamp_(min=0.0).mul_(1 - UNIFORM_MIX).add_(UNIFORM_MIX / 256)
