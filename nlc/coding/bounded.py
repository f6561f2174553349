"""Tables of a discretized logistic mixture over a bounded range of integers, the same on every machine.

A flow's latents that stay in a known range (the integer MAF's, :mod:`nlc.models.maf`) are coded under
their base distribution's mixture, one per position: bins ``lo .. lo + count - 1``, the first and the last
holding the tails. The CDF at the bins' edges is rounded to multiples of ``2^-24`` *correctly*: computed in
float64 (numpy's exp is within a few ulps), and where that value lies within a ``2^-36`` relative margin of a
rounding boundary it is recomputed in 50-digit decimal arithmetic (as :func:`nlc.fixed.build_lut` does), so
the integer tables do not depend on the machine's libm. The coder then quantizes them the same way
everywhere.

    >>> import numpy as np
    >>> t = mixture_counts(np.zeros((1, 1)), np.full((1, 1), 2.0), np.zeros((1, 1)), lo=0, count=5)
    >>> bool(t.sum() == 2**24), int(t.argmax())
    (True, 2)
"""

from __future__ import annotations

import decimal

import numpy as np

ONE = 1 << 24  # the CDF's unit
_MARGIN = 2.0**-36


def _float_cdf(w: np.ndarray, mu: np.ndarray, inv_s: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``(D, E)`` mixture CDFs at ``edges`` in float64."""
    arg = (edges[None, None, :] - mu[:, :, None]) * inv_s[:, :, None]
    with np.errstate(over="ignore"):  # exp overflowing to inf far below a component: its CDF is 0 there
        return (w[:, :, None] / (1.0 + np.exp(-arg))).sum(1)


def _decimal_cdf(logits: np.ndarray, means: np.ndarray, log_scales: np.ndarray, edge: float) -> decimal.Decimal:
    """One position's mixture CDF at ``edge``, in decimal arithmetic (the float inputs are exact binary
    fractions)."""
    top = max(float(v) for v in logits)
    e = [(decimal.Decimal(float(v)) - decimal.Decimal(top)).exp() for v in logits]
    total = sum(e, decimal.Decimal(0))
    out = decimal.Decimal(0)
    for ei, m, ls in zip(e, means, log_scales):
        arg = (decimal.Decimal(edge) - decimal.Decimal(float(m))) / decimal.Decimal(float(ls)).exp()
        out += ei / total / (1 + (-arg).exp())
    return out


def mixture_counts(logits: np.ndarray, means: np.ndarray, log_scales: np.ndarray, lo: int, count: int) -> np.ndarray:
    """``(D, count)`` float64 tables of integers summing to ``2^24``: position ``d``'s logistic mixture
    (``(D, M)`` weights' logits, means, log-scales) over the integers ``lo .. lo + count - 1``, the first bin
    holding everything below and the last everything above."""
    logits, means, log_scales = (np.asarray(a, np.float64) for a in (logits, means, log_scales))
    w = np.exp(logits - logits.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    edges = lo + np.arange(1, count, dtype=np.float64) - 0.5
    scaled = _float_cdf(w, means, np.exp(-log_scales), edges) * ONE
    cdf = np.round(scaled)
    near = np.abs(np.abs(scaled - np.floor(scaled)) - 0.5) <= _MARGIN * np.maximum(1.0, np.abs(scaled))
    with decimal.localcontext() as ctx:
        ctx.prec = 50
        for d, i in zip(*np.nonzero(near)):
            v = _decimal_cdf(logits[d], means[d], log_scales[d], float(edges[i])) * ONE
            cdf[d, i] = int(v.to_integral_value(rounding=decimal.ROUND_HALF_EVEN))
    full = np.concatenate([np.zeros((len(cdf), 1)), np.clip(cdf, 0, ONE), np.full((len(cdf), 1), ONE)], 1)
    return np.diff(full, axis=1)
