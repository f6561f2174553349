"""Categorical heads -> 256-bin probability tables.

A model with a categorical head (:func:`nlc.models.mixture.head_of`) gives each pixel ``256 * 3``
logits, channel ``ch``'s at ``256 * ch``: a softmax over the values of each channel, the channels
independent given the pixels before (as PixelCNN's softmax without colour masks). The tables mix in
the same uniform floor as the logistic ones (:data:`nlc.coding.logistic_mixture.UNIFORM_MIX`), so every
value stays codable and the reported information content is what the coder pays. Float arithmetic: a
file decodes where its encoder's floats are reproduced, as for the float logistic codecs.
"""

from __future__ import annotations

import numpy as np
import torch

from ..models.mixture import CATEGORIES
from .logistic_mixture import UNIFORM_MIX, SymbolFn


def code_categorical(params: torch.Tensor, mixtures: int, channels: int, symbol_fn: SymbolFn,
                     with_bits: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Code one pixel per batch row, channel by channel, through ``symbol_fn`` (as
    :func:`nlc.coding.logistic_mixture.code_pixels`, whose signature it shares; ``mixtures`` is unused).
    ``params`` is ``(B, 256*3)``. Returns the symbols ``(B, channels)`` and each pixel's information content
    in bits under the tables (``None`` without ``with_bits``)."""
    n = params.shape[0]
    syms = np.empty((n, channels), np.uint8)
    bits = np.zeros(n) if with_bits else None
    for ch in range(channels):
        logits = params[:, ch * CATEGORIES : (ch + 1) * CATEGORIES].float()
        table = (torch.softmax(logits, dim=1) * (1 - UNIFORM_MIX) + UNIFORM_MIX / CATEGORIES).cpu().numpy()
        sym = np.asarray(symbol_fn(ch, table))
        syms[:, ch] = sym
        if bits is not None:
            picked = table[np.arange(n), sym.astype(np.int64)].astype(np.float64)
            bits -= np.log2(picked / table.sum(1, dtype=np.float64))
    return syms, bits
