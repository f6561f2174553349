"""The autoregressive family: PixelCNN, Gated PixelCNN, PixelCNN++, PixelSNAIL (float or exact arithmetic,
with or without an adaptive stage), coded tile by tile, pixel by pixel (:mod:`nlc.coding.autoregressive`)."""

from __future__ import annotations

import importlib.metadata
import time
import zlib
from typing import TYPE_CHECKING

import numpy as np
import torch

from .. import container
from ..coding.autoregressive import (
    GROUP,
    SAMPLE_TILES,
    decode_items,
    decode_tiles,
    encode_items,
    encode_tiles,
    estimate_rate,
    group_for,
    is_exact,
    progress_total,
)
from ..coding.coders import CODERS, PRECISION
from ..datasets import image_array_shape
from ..errors import FormatError, InputError
from ..progress import progress_bar
from ..threads import cpu_kind, torch_threads
from .base import LoadedCodec, Unsupported

if TYPE_CHECKING:
    from ..container import Header, SetHeader


MAX_GROUP_PIXELS = GROUP * 128 * 128  # pixels a coder group may hold: 384 tiles of 128x128 (a few GB to decode)


def check_group(tiles: int, tile: int, group: int, writing: bool = False) -> None:
    """Refuse a coder group larger than :data:`MAX_GROUP_PIXELS`: a header that asks for one would make the
    decoder hold gigabytes (``group`` tiles of ``tile x tile`` at once) before the payload says anything."""
    pixels = min(tiles, group) * tile * tile
    if pixels > MAX_GROUP_PIXELS:
        what = f"{min(tiles, group)} tiles of {tile}x{tile} per coder group ({pixels:,} pixels)"
        if writing:
            raise InputError(f"{what}: more than nlc decodes ({MAX_GROUP_PIXELS:,}); choose a smaller --tile")
        raise FormatError(f"header asks for {what}: more than nlc decodes ({MAX_GROUP_PIXELS:,})")


def _tiles(height: int, width: int, tile: int, items: int = 1) -> int:
    return items * -(-height // tile) * -(-width // tile)


class Autoregressive(Unsupported):
    """Images and sets of tiles, each sub-pixel coded with the model's mixture given the ones before it."""

    name = "autoregressive"
    set_coding = "tiles"
    set_modes: tuple[str, ...] = ("L", "RGB")

    def estimate_rate(self, codec: LoadedCodec, pixels: np.ndarray, tile: int) -> float | None:
        """The model's bits per sub-pixel on a few of the image's tiles; ``None`` for an image of no more tiles
        than the estimate samples, whose estimate would take about what coding it takes."""
        if _tiles(pixels.shape[0], pixels.shape[1], tile) <= SAMPLE_TILES:
            return None
        return estimate_rate(codec.model, codec.mixtures, pixels, tile)

    def encode_pixels(self, codec: LoadedCodec, pixels: np.ndarray, tile: int, coder: str,
                      progress: bool) -> tuple[bytes, float, dict]:
        """The image's tiles in one batch; a float codec's file records the CPU kind its floats need."""
        h, w = pixels.shape[:2]
        group = group_for(tile)
        check_group(_tiles(h, w, tile), tile, group, writing=True)
        # context tiles where there is more than one tile (one tile codes the same without, minus the header field)
        context = codec.spec.context if coder == "range" and codec.device == "cpu" and _tiles(h, w, tile) > 1 else 0
        with progress_bar(progress_total(h, w, tile, group, context=context), "encode", progress) as bar:
            payload, bits = encode_tiles(codec.model, codec.mixtures, pixels, tile, coder, group, bar,
                                         codec.spec.adaptive or None, context)
        extra: dict = {"cpu": cpu_kind()} if codec.device == "cpu" and not is_exact(codec.model) else {}
        if context:
            extra["context"] = context
        return payload, bits, extra

    def decode_pixels(self, codec: LoadedCodec, header: "Header", payload: bytes, progress: bool) -> np.ndarray:
        """The image's tiles, stepped in the encoder's order."""
        check_group(_tiles(header.height, header.width, header.tile), header.tile, header.group)
        context = header.extra.get("context", 0)
        if context and (not codec.spec.context or header.coder != "range"):
            raise FormatError(f"header asks for context tiles, which codec {codec.spec.name!r} with the "
                              f"{header.coder} coder does not code")
        if context and codec.device != "cpu":
            raise InputError("a file with context tiles decodes on the CPU (--device cpu): its coding loop is "
                             "compiled for it")
        total = progress_total(header.height, header.width, header.tile, header.group, context=context)
        with progress_bar(total, "decode", progress) as bar:
            return decode_tiles(codec.model, codec.mixtures, header.height, header.width, header.model_channels,
                                header.tile, header.coder, payload, header.group, bar, codec.spec.adaptive or None,
                                context)

    def encode_set(self, codec: LoadedCodec, items: np.ndarray, source: dict, progress: bool,
                   coder: str | None, tile: int | None) -> tuple[bytes, dict]:
        """The tiles of all the items as one batch, so that small images share every step."""
        if not image_array_shape(items.shape) or items.dtype != np.uint8:
            raise InputError(f"codec {codec.spec.name!r} codes uint8 arrays of shape (N, H, W) or (N, H, W, 3), "
                             f"got {items.dtype} {items.shape}")
        if items.shape[1] < 1 or items.shape[2] < 1:
            raise InputError(f"images of a set must be at least 1x1, got {items.shape[2]}x{items.shape[1]}")
        coder, tile = codec.coding(coder, tile)
        pixels = items if items.ndim == 4 else items[..., None]
        n, h, w, channels = pixels.shape
        group = group_for(tile)
        check_group(_tiles(h, w, tile, n), tile, group, writing=True)
        t0 = time.perf_counter()
        with progress_bar(progress_total(h, w, tile, group, n), "encode", progress) as bar:
            payload, bits = encode_items(codec.model, codec.mixtures, pixels, tile, coder, group, bar,
                                         codec.spec.adaptive or None)
        header = container.SetHeader(
            codec=codec.spec.name, weights_sha256=codec.spec.sha256,
            constriction=importlib.metadata.version("constriction"), torch=torch.__version__, device=codec.device,
            count=n, height=h, width=w, bits=8, scale=1, pixels_crc32=zlib.crc32(np.ascontiguousarray(items).tobytes()),
            schedule=[], source=source, coder=coder, precision=PRECISION, threads=torch.get_num_threads(),
            coding=self.set_coding, channels=channels, tile=tile, group=group)
        data = container.pack_set(header, payload)
        return data, {"bytes": len(data), "payload_bytes": len(payload), "header_bytes": len(data) - len(payload),
                      "model_bits": bits, "seconds": time.perf_counter() - t0}

    def decode_set(self, codec: LoadedCodec, header: "SetHeader", payload: bytes, progress: bool) -> np.ndarray:
        """The items of a set coded by :meth:`encode_set`, after the header's fields are checked."""
        n, h, w, ch = header.count, header.height, header.width, header.channels
        if header.coder not in CODERS or header.precision != PRECISION or ch not in (1, 3) or header.bits != 8 \
                or header.scale != 1:
            raise FormatError(f"corrupted header (coder {header.coder!r}, precision {header.precision}, "
                              f"{ch} channels, {header.bits} bits)")
        if not (0 <= n and 1 <= h <= container.MAX_SIDE and 1 <= w <= container.MAX_SIDE
                and n * h * w <= container.MAX_PIXELS):
            raise FormatError(f"header claims absurd dimensions: {n} images of {w}x{h}")
        if not (1 <= header.tile <= container.MAX_SIDE and 1 <= header.group <= 1 << 20
                and 1 <= header.threads <= 1024):
            raise FormatError(f"corrupted header (tile {header.tile}, group {header.group}, threads {header.threads})")
        check_group(_tiles(h, w, header.tile, n), header.tile, header.group)
        with torch_threads(header.threads), \
                progress_bar(progress_total(h, w, header.tile, header.group, n), "decode", progress) as bar:
            pixels = decode_items(codec.model, codec.mixtures, n, h, w, ch, header.tile, header.coder, payload,
                                  header.group, bar, codec.spec.adaptive or None)
        return pixels if ch == 3 else pixels[..., 0]


AUTOREGRESSIVE = Autoregressive()
