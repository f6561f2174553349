"""The sequence family: models that code a set's items as sequences of positions, all items at once, one
position per step (MADE; the char-RNN and WaveNet of issue 28 fit the same stepper), through
:mod:`nlc.coding.sequence`. Sets only."""

from __future__ import annotations

import time
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..coding.coders import CODERS, PRECISION
from ..coding.sequence import decode_binary, decode_levels, encode_binary, encode_levels
from ..errors import FormatError, InputError
from ..progress import progress_bar
from .base import LoadedCodec, Unsupported, stepped_set_file
from .bitsback import coded_values

if TYPE_CHECKING:
    from ..container import SetHeader


class Sequence(Unsupported):
    """Sets of binary (``0/1`` or ``0/255``) or gray items, each a sequence of ``height x width`` pixels in
    raster order, coded with a model's exact stepper (``model.exact().stepper(n)``)."""

    name = "sequence"
    set_only = True
    set_coding = "sequence"
    set_modes: tuple[str, ...] = ("L", "1")

    def encode_set(self, codec: LoadedCodec, items: np.ndarray, source: dict, progress: bool,
                   coder: str | None, tile: int | None) -> tuple[bytes, dict]:
        """The items' pixels, position by position for all items at once."""
        cfg = codec.model.config
        if items.ndim != 3 or items.shape[1:] != (cfg.height, cfg.width):
            raise InputError(f"codec {codec.spec.name!r} codes {cfg.height}x{cfg.width} images, "
                             f"got items of shape {items.shape[1:]}")
        values, scale = coded_values(items, cfg.bits)
        coder, _ = codec.coding(coder, None)
        n, dims = len(items), cfg.height * cfg.width
        t0 = time.perf_counter()
        with progress_bar(dims, "encode", progress, "position") as bar:
            stepper, flat = _exact(codec).stepper(n), values.reshape(n, dims)
            if cfg.bits == 1:
                payload, bits = encode_binary(stepper, flat, coder, bar)
            else:
                payload, bits = encode_levels(stepper, flat, cfg.mixtures, coder, bar)
        return stepped_set_file(codec, items, payload, coding=self.set_coding, coder=coder, bits=cfg.bits,
                                scale=scale, source=source, model_bits=bits, started=t0)

    def decode_set(self, codec: LoadedCodec, header: "SetHeader", payload: bytes, progress: bool) -> np.ndarray:
        """The items of a set coded by :meth:`encode_set`, after the header's fields are checked."""
        cfg = codec.model.config
        if (header.height, header.width, header.bits, header.channels) != (cfg.height, cfg.width, cfg.bits, 1) \
                or header.coder not in CODERS or header.precision != PRECISION:
            raise FormatError(f"corrupted header ({header.height}x{header.width}, {header.bits} bits, "
                              f"coder {header.coder!r}) for codec {codec.spec.name!r}")
        n, dims = header.count, cfg.height * cfg.width
        with progress_bar(dims, "decode", progress, "position") as bar:
            stepper = _exact(codec).stepper(n)
            if cfg.bits == 1:
                values = decode_binary(stepper, payload, n, dims, header.coder, bar)
            else:
                values = decode_levels(stepper, payload, n, dims, cfg.mixtures, header.coder, bar)
        return (values.reshape(n, cfg.height, cfg.width) * header.scale).astype(np.uint8)


_EXACT: "weakref.WeakKeyDictionary[torch.nn.Module, Any]" = weakref.WeakKeyDictionary()


def _exact(codec: LoadedCodec) -> Any:
    """The codec's model with exact weights (made once per loaded model)."""
    model = codec.model
    if model not in _EXACT:
        _EXACT[model] = model.exact()
    return _EXACT[model]


SEQUENCE = Sequence()
