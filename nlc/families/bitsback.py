"""The bits-back family: latent-variable models (VAE, Bit-Swap, VRNN) coding a set as one bits-back ANS
chain (:mod:`nlc.coding.bitsback`); single images are not coded."""

from __future__ import annotations

import importlib.metadata
import time
import zlib
from typing import TYPE_CHECKING

import numpy as np
import torch

from .. import container
from ..coding.bitsback import (
    START_STEPS,
    LatentGrid,
    decode_chain,
    encode_chain,
    make_item_codec,
    model_grid,
    start_grid,
)
from ..coding.coders import PRECISION
from ..errors import FormatError, InputError
from ..progress import progress_bar
from ..threads import torch_threads
from .base import LoadedCodec, Unsupported

if TYPE_CHECKING:
    from ..container import SetHeader


def coded_values(items: np.ndarray, bits: int) -> tuple[np.ndarray, int]:
    """What a model of ``bits`` (8 or 1) codes of the items, and the scale that restores the stored values
    (a binary codec takes pixels that are all 0/1 or all 0/255)."""
    if bits == 8:
        return items, 1
    values = np.unique(items)
    if set(values.tolist()) <= {0, 1}:
        return items, 1
    if set(values.tolist()) <= {0, 255}:
        return (items // 255).astype(np.uint8), 255
    raise InputError(f"a binary codec needs pixels that are all 0/1 or all 0/255, found {values[:6].tolist()}...")


class BitsBack(Unsupported):
    """Sets of gray (or binary) items, one bits-back chain: each item's latent is popped, then its pixels and
    the latent pushed; the first items are coded without bits-back (the chain's start)."""

    name = "bitsback"
    set_only = True
    set_coding = "bits-back"
    set_modes: tuple[str, ...] = ("L", "1")

    def encode_set(self, codec: LoadedCodec, items: np.ndarray, source: dict, progress: bool,
                   coder: str | None, tile: int | None) -> tuple[bytes, dict]:
        """The items as one chain, on the CPU with this process's thread count (recorded for the decoder)."""
        if items.ndim != 3 or items.shape[1:] != codec.shape:
            raise InputError(f"codec {codec.spec.name!r} codes {codec.shape[0]}x{codec.shape[1]} images, "
                             f"got items of shape {items.shape[1:]}")
        values, scale = coded_values(items, codec.bits)
        model = codec.model
        grid = model_grid(model)
        t0 = time.perf_counter()
        start = start_grid(model, values[0], grid) if len(values) else grid
        with progress_bar(len(items), "encode", progress, "img") as bar:
            payload, stats = encode_chain(make_item_codec(model, grid), values, progress=bar,
                                          start_codec=make_item_codec(model, start))
        header = container.SetHeader(
            codec=codec.spec.name, weights_sha256=codec.spec.sha256,
            constriction=importlib.metadata.version("constriction"), torch=torch.__version__, device="cpu",
            count=len(items), height=codec.shape[0], width=codec.shape[1], bits=codec.bits, scale=scale,
            pixels_crc32=zlib.crc32(np.ascontiguousarray(items).tobytes()),
            schedule=container.schedule_runs(stats.schedule), source=source, precision=PRECISION,
            latent_step=grid.step, latent_bound=grid.bound, start_bits=stats.start_bits,
            start_items=stats.start_items, start_step=start.step, threads=torch.get_num_threads())
        data = container.pack_set(header, payload)
        return data, {"bytes": len(data), "payload_bytes": len(payload), "header_bytes": len(data) - len(payload),
                      "start_items": stats.start_items, "start_bits": stats.start_bits, "start_step": start.step,
                      "batches": len(stats.schedule), "seconds": time.perf_counter() - t0}

    def decode_set(self, codec: LoadedCodec, header: "SetHeader", payload: bytes, progress: bool) -> np.ndarray:
        """The chain's items, after the header's schedule, grids and thread count are checked."""
        schedule = container.schedule_from_runs(header.schedule)
        if sum(schedule) != header.count or header.latent_step != LatentGrid().step \
                or header.precision != PRECISION or header.latent_bound not in (8.0, 16.0):
            raise FormatError("corrupted header (batch schedule, latent grid or precision)")
        if header.start_step not in START_STEPS or not 0 <= header.start_items <= len(schedule):
            raise FormatError(f"corrupted header (start items {header.start_items} on latent step {header.start_step})")
        if not 1 <= header.threads <= 1024:
            raise FormatError(f"corrupted header (threads {header.threads})")
        with torch_threads(header.threads), progress_bar(header.count, "decode", progress, "img") as bar:
            grid, start = (LatentGrid(s, header.latent_bound) for s in (header.latent_step, header.start_step))
            values = decode_chain(make_item_codec(codec.model, grid), payload, schedule, header.start_items,
                                  progress=bar, start_codec=make_item_codec(codec.model, start))
        return (values * header.scale).astype(np.uint8)


BITSBACK = BitsBack()
