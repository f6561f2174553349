"""Autoregressive image codec: tiles coded in parallel, pixels in raster order.

The image is cut into a grid of equal tiles (the last row and column of tiles
may be partly outside the image). Tiles are independent, so every step of the
loop codes the pixel at the same position ``(r, c)`` in every tile at once: a
768x512 image in 64x64 tiles needs 4096 steps of 96 pixels each, not 393,216
steps of one. The model's stepper gives each step's mixture parameters from a
row-cached vertical stream and a per-pixel horizontal stream.

Encoding runs exactly the decoder's computation with the known pixels, so the
probability tables on both sides are bit-identical. With a range coder
(FIFO) symbols are coded as they come; with an ANS stack (LIFO) the encoder
records the parameters and pushes the steps in reverse afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import torch

from .coders import Coder
from .logistic_mixture import code_pixels


class Stepper(Protocol):
    """What a model's incremental evaluator offers (see :class:`~nlc.models.pixelcnnpp.PixelStepper`)."""

    x: torch.Tensor
    PAD: int

    def start_row(self, r: int) -> None: ...

    def params(self, c: int) -> torch.Tensor: ...


class SteppedModel(Protocol):
    """A model that can be coded by this module."""

    def stepper(self, batch: int, height: int, width: int) -> Stepper: ...


@dataclass(frozen=True)
class TileGrid:
    """A ``height x width`` image cut into ``tile_h x tile_w`` tiles."""

    height: int
    width: int
    tile_h: int
    tile_w: int

    @classmethod
    def for_image(cls, height: int, width: int, tile: int) -> "TileGrid":
        """Square tiles of side ``tile``, shrunk to the image where it is smaller."""
        return cls(height, width, min(tile, height), min(tile, width))

    @property
    def ny(self) -> int:
        """Tile rows."""
        return math.ceil(self.height / self.tile_h)

    @property
    def nx(self) -> int:
        """Tile columns."""
        return math.ceil(self.width / self.tile_w)

    @property
    def batch(self) -> int:
        """Number of tiles."""
        return self.ny * self.nx

    def extents(self) -> tuple[np.ndarray, np.ndarray]:
        """Valid rows and columns of every tile, ``(B,)`` each, in row-major tile order."""
        hs = np.minimum(self.tile_h, self.height - np.arange(self.ny) * self.tile_h)
        ws = np.minimum(self.tile_w, self.width - np.arange(self.nx) * self.tile_w)
        return np.repeat(hs, self.nx), np.tile(ws, self.ny)

    def split(self, pixels: np.ndarray) -> np.ndarray:
        """``(H, W, C)`` -> ``(B, tile_h, tile_w, C)``, zero outside the image."""
        c = pixels.shape[2]
        padded = np.zeros((self.ny * self.tile_h, self.nx * self.tile_w, c), pixels.dtype)
        padded[: self.height, : self.width] = pixels
        t = padded.reshape(self.ny, self.tile_h, self.nx, self.tile_w, c).transpose(0, 2, 1, 3, 4)
        return t.reshape(self.batch, self.tile_h, self.tile_w, c)

    def merge(self, tiles: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`split`."""
        c = tiles.shape[3]
        t = tiles.reshape(self.ny, self.nx, self.tile_h, self.tile_w, c).transpose(0, 2, 1, 3, 4)
        return t.reshape(self.ny * self.tile_h, self.nx * self.tile_w, c)[: self.height, : self.width]


def _normalised(symbols: np.ndarray) -> torch.Tensor:
    """``(n, C)`` uint8 -> ``(n, 3)`` floats in ``[-1, 1]`` (gray repeated)."""
    t = torch.from_numpy(np.ascontiguousarray(symbols)).float() / 127.5 - 1.0
    return t.expand(-1, 3) if t.shape[1] == 1 else t


def _run(
    model: SteppedModel,
    mixtures: int,
    grid: TileGrid,
    channels: int,
    tiles: np.ndarray | None,
    on_pixels: Callable[[int, int, np.ndarray, torch.Tensor, np.ndarray | None], tuple[np.ndarray, float]],
    progress: Callable[[int], None] | None,
) -> float:
    """The loop shared by encoder and decoder; returns the model's information in bits."""
    hs, ws = grid.extents()
    st = model.stepper(grid.batch, grid.tile_h, grid.tile_w)
    pad = st.PAD
    rr = np.arange(grid.tile_h)[None, :, None]
    cc = np.arange(grid.tile_w)[None, None, :]
    valid = (rr < hs[:, None, None]) & (cc < ws[:, None, None])
    st.x[:, 3, :, pad:] = torch.from_numpy(valid.astype(np.float32))
    if tiles is not None:
        st.x[:, :3, :, pad:] = _normalised(tiles.reshape(-1, channels)).reshape(
            grid.batch, grid.tile_h, grid.tile_w, 3
        ).permute(0, 3, 1, 2) * torch.from_numpy(valid).unsqueeze(1)
    bits = 0.0
    for r in range(grid.tile_h):
        st.start_row(r)
        row_tiles = hs > r
        for c in range(grid.tile_w):
            idx = np.flatnonzero(row_tiles & (ws > c))
            params = st.params(c)
            if len(idx) < grid.batch:
                params = params[torch.from_numpy(idx)]
            known = None if tiles is None else tiles[idx, r, c]
            syms, b = on_pixels(r, c, idx, params, known)
            bits += b
            if tiles is None:
                st.x[torch.from_numpy(idx), :3, r, c + pad] = _normalised(syms)
        if progress:
            progress(1)
    return bits


def encode_tiles(
    model: SteppedModel,
    mixtures: int,
    pixels: np.ndarray,
    tile: int,
    coder: Coder,
    progress: Callable[[int], None] | None = None,
) -> float:
    """Code an ``(H, W, C)`` uint8 image (``C`` = 1 or 3) onto ``coder``.

    Returns the information content in bits under the model's float tables
    (the model's ``-log2 p`` of the image as coded).
    """
    grid = TileGrid.for_image(pixels.shape[0], pixels.shape[1], tile)
    channels = pixels.shape[2]
    tiles = grid.split(pixels)
    record: list[tuple[torch.Tensor, np.ndarray]] = []

    def on_pixels(r, c, idx, params, known):
        if coder.lifo:
            record.append((params, known))
            syms, b = code_pixels(params, mixtures, channels, lambda ch, t: known[:, ch])
        else:
            def fn(ch, table):
                coder.encode(known[:, ch], table)
                return known[:, ch]

            syms, b = code_pixels(params, mixtures, channels, fn)
        return syms, float(b.sum())

    bits = _run(model, mixtures, grid, channels, tiles, on_pixels, progress)
    for params, known in reversed(record):
        tables: list[np.ndarray] = []

        def collect(ch, table):
            tables.append(table)
            return known[:, ch]

        code_pixels(params, mixtures, channels, collect)
        coder.encode(known.T.reshape(-1), np.concatenate(tables))
    return bits


def decode_tiles(
    model: SteppedModel,
    mixtures: int,
    height: int,
    width: int,
    channels: int,
    tile: int,
    coder: Coder,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Decode an ``(height, width, channels)`` uint8 image from ``coder``."""
    grid = TileGrid.for_image(height, width, tile)
    out = np.zeros((grid.batch, grid.tile_h, grid.tile_w, channels), np.uint8)

    def on_pixels(r, c, idx, params, known):
        syms, b = code_pixels(params, mixtures, channels, lambda ch, table: coder.decode(table))
        out[idx, r, c] = syms
        return syms, float(b.sum())

    _run(model, mixtures, grid, channels, None, on_pixels, progress)
    return grid.merge(out)
