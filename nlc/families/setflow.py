"""The set-flow family: an integer autoregressive flow (the integer MAF, :mod:`nlc.models.maf`) maps every
item of a set to integer latents in one parallel pass; the latents are coded position by position under
the base distribution's bounded tables (:mod:`nlc.coding.bounded`), all items of a position under one
table. Decoding takes the latents back from the coder at once, then undoes the flow's steps dimension by
dimension for all items together. Sets only; the compiled range coder only."""

from __future__ import annotations

import math
import time
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..coding.bounded import mixture_counts
from ..coding.coders import PRECISION, CompiledRangeQueue
from ..errors import FormatError, InputError
from ..progress import progress_bar
from .base import LoadedCodec, Unsupported, stepped_set_file

if TYPE_CHECKING:
    from ..container import SetHeader


CHUNK = 16384  # items through the flow at once (its float64 arrays: 100 MiB per 784-pixel chunk)


class SetFlow(Unsupported):
    """Sets of gray items coded through an integer flow's latents."""

    name = "setflow"
    set_only = True
    set_coding = "flow"
    set_modes: tuple[str, ...] = ("L",)

    def encode_set(self, codec: LoadedCodec, items: np.ndarray, source: dict, progress: bool,
                   coder: str | None, tile: int | None) -> tuple[bytes, dict]:
        """The items' latents (one flow pass), position by position."""
        cfg = codec.model.config
        if items.ndim != 3 or items.shape[1:] != (cfg.height, cfg.width):
            raise InputError(f"codec {codec.spec.name!r} codes {cfg.height}x{cfg.width} gray images, "
                             f"got items of shape {items.shape[1:]}")
        coder, _ = codec.coding(coder, None)
        if coder != "range":
            raise InputError(f"codec {codec.spec.name!r} codes with the range coder only, not {coder!r}")
        t0 = time.perf_counter()
        model, (lo, tables) = _exact(codec)
        n, flat = len(items), items.reshape(len(items), model.dims)
        symbols, model_bits = np.empty((n, model.dims), np.int16), 0.0
        with torch.no_grad():
            for i in range(0, n, CHUNK):  # the flow's pass in chunks of items: bounded memory
                z = model.latents(torch.from_numpy(flat[i : i + CHUNK].astype(np.float64)))
                model_bits -= float(model.base_log_prob(z).sum()) / math.log(2)
                symbols[i : i + CHUNK] = z.numpy() - lo
        queue = CompiledRangeQueue()
        with progress_bar(model.dims, "encode", progress, "position") as bar:
            for d in range(model.dims if n else 0):
                queue.encode_shared(symbols[:, d], tables[d])
                bar(1)
        payload = queue.to_bytes()
        return stepped_set_file(codec, items, payload, coding=self.set_coding, coder=coder, bits=8, scale=1,
                                source=source, model_bits=model_bits, started=t0)

    def decode_set(self, codec: LoadedCodec, header: "SetHeader", payload: bytes, progress: bool) -> np.ndarray:
        """The items of a set coded by :meth:`encode_set`, after the header's fields are checked."""
        cfg = codec.model.config
        if (header.height, header.width, header.bits, header.channels, header.scale) != \
                (cfg.height, cfg.width, 8, 1, 1) or header.coder != "range" or header.precision != PRECISION:
            raise FormatError(f"corrupted header ({header.height}x{header.width}, {header.bits} bits, "
                              f"coder {header.coder!r}) for codec {codec.spec.name!r}")
        model, (lo, tables) = _exact(codec)
        n, dims = header.count, model.dims
        if n == 0:
            return np.zeros((0, cfg.height, cfg.width), np.uint8)
        queue = CompiledRangeQueue(payload)
        symbols = np.empty((n, dims), np.int16)  # at most 2^28 of them (the header's bound): 512 MiB
        out = np.empty((n, dims), np.uint8)
        chunks = -(-n // CHUNK)
        with progress_bar((1 + cfg.layers * chunks) * dims, "decode", progress, "position") as bar:
            for d in range(dims):
                symbols[:, d] = queue.decode_shared(tables[d], n)
                bar(1)
            for i in range(0, n, CHUNK):
                z = torch.from_numpy(symbols[i : i + CHUNK].astype(np.float64) + lo)
                x = model.invert(z, progress=bar).numpy()
                if x.min() < 0 or x.max() > 255:
                    raise FormatError("decoded values out of the 8-bit range (corrupted payload)")
                out[i : i + CHUNK] = x
        return out.reshape(n, cfg.height, cfg.width)


_EXACT: "weakref.WeakKeyDictionary[torch.nn.Module, Any]" = weakref.WeakKeyDictionary()


def _exact(codec: LoadedCodec) -> tuple[Any, tuple[int, np.ndarray]]:
    """The codec's flow with exact weights, and its latents' least value and tables (made once per model)."""
    model = codec.model
    if model not in _EXACT:
        twin = model.exact()
        _EXACT[model] = twin, _tables(twin)
    return _EXACT[model]


def _tables(model: Any) -> tuple[int, np.ndarray]:
    """The least latent value and the ``(D, count)`` tables of the base distribution."""
    lo, count = model.latent_range
    logits, means, log_scales = (p.detach().numpy() for p in model.base_params())
    return lo, mixture_counts(logits, means, log_scales, lo, count)


SET_FLOW = SetFlow()
