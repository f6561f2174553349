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
records the parameters and pushes the steps in reverse afterwards. Tiles are
coded in groups of at most :data:`GROUP` so memory stays bounded on huge images.

A model with exact arithmetic (:mod:`nlc.models.exact`) gives the same
parameters from one parallel pass as from the decoder's steps, so its encoder
takes that pass instead (:func:`_encode_parallel`) and codes with the integer
tables of :mod:`nlc.coding.exact_tables`, which are the same on every machine.
"""

from __future__ import annotations

import contextlib
import math
import struct
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol

import numpy as np
import torch

from ..fixed import GRID
from ..models.mixture import head_of, image_log_likelihood
from ..threads import pass_workers, step_threads
from . import adaptive_steps, context_tiles
from .adaptive import OnlineBias, make_stage
from .categorical import code_categorical
from .coders import Coder, CoderError, CompiledRangeQueue, make_coder
from .exact_tables import ExactMixture, code_pixels_exact, stage_symbols
from .logistic_mixture import code_pixels


class Stepper(Protocol):
    """What a model's incremental evaluator offers (see :class:`~nlc.models.pixelcnnpp.PixelStepper`)."""

    x: torch.Tensor

    def fill(self, x4: torch.Tensor) -> None:
        """Load ``(B, 4, H, W)`` input: RGB in ``[-1, 1]`` (zeros where unknown) and the ones channel."""
        ...

    def put(self, index: torch.Tensor, r: int, c: int, rgb: torch.Tensor) -> None:
        """Set pixel ``(r, c)`` of the tiles ``index`` to ``rgb`` ``(n, 3)`` in ``[-1, 1]`` once it is coded."""
        ...

    def start_row(self, r: int) -> None:
        """Prepare row ``r``: compute what depends on the rows above only (called before its first pixel)."""
        ...

    def params(self, c: int) -> torch.Tensor:
        """Mixture parameters ``(B, 10*M)`` of pixel ``(r, c)`` of the current row, from pixels before it."""
        ...

    def release(self) -> None:
        """Drop the caches now: the coder calls it when the last pixel is coded."""
        ...


class SteppedModel(Protocol):
    """A model that can be coded by this module: a stepper for decoding (and encoding through the steps),
    and for the parallel encoder and rate estimates a torch module's ``parameters`` and ``forward_x4``."""

    def stepper(self, batch: int, height: int, width: int) -> Stepper:
        """An incremental evaluator over ``batch`` tiles of ``height x width``."""
        ...

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        """The model's parameters (their device is where the model runs)."""
        ...

    def forward_x4(self, x4: torch.Tensor) -> torch.Tensor:
        """Every pixel's parameters ``(B, P, H, W)`` of ``(B, 4, H, W)`` input, in one pass."""
        ...


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

    def extents(self, items: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Valid rows and columns of every tile, ``(items * B,)`` each, in row-major tile order per item."""
        hs = np.minimum(self.tile_h, self.height - np.arange(self.ny) * self.tile_h)
        ws = np.minimum(self.tile_w, self.width - np.arange(self.nx) * self.tile_w)
        return np.tile(np.repeat(hs, self.nx), items), np.tile(np.tile(ws, self.ny), items)

    def split(self, pixels: np.ndarray) -> np.ndarray:
        """``(H, W, C)`` -> ``(B, tile_h, tile_w, C)``, zero outside the image."""
        return self.split_items(pixels[None])

    def split_items(self, items: np.ndarray) -> np.ndarray:
        """``(N, H, W, C)`` same-sized images -> ``(N * B, tile_h, tile_w, C)``, item after item."""
        n, c = items.shape[0], items.shape[3]
        padded = np.zeros((n, self.ny * self.tile_h, self.nx * self.tile_w, c), items.dtype)
        padded[:, : self.height, : self.width] = items
        t = padded.reshape(n, self.ny, self.tile_h, self.nx, self.tile_w, c).transpose(0, 1, 3, 2, 4, 5)
        return t.reshape(n * self.batch, self.tile_h, self.tile_w, c)

    def merge(self, tiles: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`split`."""
        return self.merge_items(tiles)[0]

    def merge_items(self, tiles: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`split_items`."""
        c = tiles.shape[3]
        t = tiles.reshape(-1, self.ny, self.nx, self.tile_h, self.tile_w, c).transpose(0, 1, 3, 2, 4, 5)
        return t.reshape(-1, self.ny * self.tile_h, self.nx * self.tile_w, c)[:, : self.height, : self.width]


def _normalised(symbols: np.ndarray) -> torch.Tensor:
    """``(n, C)`` uint8 -> ``(n, 3)`` floats in ``[-1, 1]`` (gray repeated)."""
    t = torch.from_numpy(np.ascontiguousarray(symbols)).float() / 127.5 - 1.0
    return t.expand(-1, 3) if t.shape[1] == 1 else t


GROUP = 384  # tiles coded together: bounds memory on huge images
LARGE_TILE_MIN_TILES = 24  # a codec's large tile is used where the image makes at least this many (a Kodak image)


def group_for(tile: int) -> int:
    """Tiles per coder group for tiles of ``tile x tile``: :data:`GROUP`, and for tiles over 64 fewer, so that a
    group holds the pixels of :data:`GROUP` tiles of 64x64 at most (the decoder's memory stays as bounded)."""
    return GROUP if tile <= 64 else max(1, GROUP * 64 * 64 // (tile * tile))


def large_tile_fits(height: int, width: int, tile: int, any_size: bool = False) -> bool:
    """Whether an image codes in tiles of ``tile`` with at least :data:`LARGE_TILE_MIN_TILES` of them, all in one
    coder group: a larger image would take several groups of the larger tile's many steps one after another
    (measured: ``docs/adaptive.md``). With ``any_size`` (a codec of context tiles, whose groups run one after
    another whatever the tile) however many there are."""
    tiles = -(-height // tile) * -(-width // tile)
    return LARGE_TILE_MIN_TILES <= tiles and (any_size or tiles <= group_for(tile))


def is_exact(model: object) -> bool:
    """Whether ``model`` computes with exact arithmetic (:func:`~nlc.models.exact.make_exact`)."""
    return bool(getattr(getattr(model, "arith", None), "exact", False))


PixelCoder = Callable[..., tuple[np.ndarray, np.ndarray | None]]


def exact_kernels(model: object) -> contextlib.AbstractContextManager:
    """Where an exact model runs on CUDA, cuDNN off: its FFT and Winograd convolutions do not sum products
    exactly, the native ones (im2col and GEMM) do. Elsewhere nothing changes."""
    weight = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
    if is_exact(model) and weight is not None and weight.is_cuda:
        return torch.backends.cudnn.flags(enabled=False)
    return contextlib.nullcontext()


def pixel_coder(model: object) -> PixelCoder:
    """The function that turns ``model``'s parameters into tables: exact integer tables for an exact model,
    softmax tables for a categorical head (:func:`nlc.models.mixture.head_of`), else float mixture tables."""
    if is_exact(model):
        return code_pixels_exact
    return code_categorical if head_of(model) == "categorical" else code_pixels


def _input(grid: TileGrid, hs: np.ndarray, ws: np.ndarray, channels: int, tiles: np.ndarray | None,
           dev: torch.device) -> torch.Tensor:
    """The ``(B, 4, tile_h, tile_w)`` model input of a group of tiles (zeros where unknown or outside)."""
    batch = len(hs)
    rr = np.arange(grid.tile_h)[None, :, None]
    cc = np.arange(grid.tile_w)[None, None, :]
    valid = (rr < hs[:, None, None]) & (cc < ws[:, None, None])
    mask = torch.from_numpy(valid.astype(np.float32)).to(dev).unsqueeze(1)
    if tiles is None:
        rgb = torch.zeros(batch, 3, grid.tile_h, grid.tile_w, device=dev)
    else:
        rgb = _normalised(tiles.reshape(-1, channels)).to(dev).reshape(
            batch, grid.tile_h, grid.tile_w, 3).permute(0, 3, 1, 2) * mask
    return torch.cat([rgb, mask], 1)


SAMPLE_TILES = 8  # tiles an estimate of the model's rate looks at


@torch.no_grad()
def tile_log_probs(model: SteppedModel, mixtures: int, pixels: np.ndarray, tile: int,
                   pick: np.ndarray | None = None, batch: int = 32) -> torch.Tensor:
    """Log-probabilities in nats ``(n,)`` of the pixels of ``(H, W, C)`` uint8 ``pixels`` (``C`` = 1 or 3)
    in the tiles ``pick`` (default: all), cut as the codec cuts them, from the model's parallel pass
    (nothing is coded)."""
    grid = TileGrid.for_image(pixels.shape[0], pixels.shape[1], tile)
    pick = np.arange(grid.batch) if pick is None else pick
    tiles, (hs, ws) = grid.split(pixels)[pick], (e[pick] for e in grid.extents())
    dev = next(model.parameters()).device
    out = []
    for i in range(0, len(pick), batch):
        x4 = _input(grid, hs[i : i + batch], ws[i : i + batch], pixels.shape[2], tiles[i : i + batch], dev)
        with exact_kernels(model):
            params = model.forward_x4(x4)
        ll = image_log_likelihood(x4[:, :3].to(params.dtype), params, mixtures, pixels.shape[2], head_of(model))
        out.append(ll[x4[:, 3] > 0])
    return torch.cat(out)


def estimate_rate(model: SteppedModel, mixtures: int, pixels: np.ndarray, tile: int,
                  sample: int = SAMPLE_TILES) -> float:
    """The model's ``-log2 p`` in bits per sub-pixel of ``(H, W, C)`` uint8 ``pixels``, estimated from
    ``sample`` of its tiles spread evenly over the image, in one parallel pass (nothing is coded)."""
    tiles = TileGrid.for_image(pixels.shape[0], pixels.shape[1], tile).batch
    pick = np.unique(np.linspace(0, tiles - 1, min(sample, tiles)).round().astype(np.int64))
    ll = tile_log_probs(model, mixtures, pixels, tile, pick)
    return float(-ll.sum()) / math.log(2) / (len(ll) * pixels.shape[2])


def _run(
    model: SteppedModel,
    grid: TileGrid,
    hs: np.ndarray,
    ws: np.ndarray,
    channels: int,
    tiles: np.ndarray | None,
    on_pixels: Callable[[int, int, np.ndarray, torch.Tensor, np.ndarray | None], tuple[np.ndarray, float]],
    progress: Callable[[int], None] | None,
) -> float:
    """The loop shared by encoder and decoder over one group of tiles (valid extents ``hs``, ``ws``).

    Returns the model's information in bits.
    """
    batch = len(hs)
    bits = 0.0
    with exact_kernels(model), step_threads():
        st = model.stepper(batch, grid.tile_h, grid.tile_w)
        dev = st.x.device
        st.fill(_input(grid, hs, ws, channels, tiles, dev))
        for r in range(grid.tile_h):
            st.start_row(r)
            row_tiles = hs > r
            for c in range(grid.tile_w):
                idx = np.flatnonzero(row_tiles & (ws > c))
                index = torch.from_numpy(idx).to(dev)
                params = st.params(c)  # a numpy array from an exact model's steps on a CPU
                if len(idx) < batch:
                    params = params[idx] if isinstance(params, np.ndarray) else params[index]
                known = None if tiles is None else tiles[idx, r, c]
                syms, b = on_pixels(r, c, idx, params, known)
                bits += b
                if tiles is None:
                    st.put(index, r, c, _normalised(syms).to(dev))
            if progress:
                progress(1)
        st.release()
    return bits


def _groups(batch: int, group: int) -> list[slice]:
    return [slice(i, min(batch, i + group)) for i in range(0, batch, group)]


def progress_total(height: int, width: int, tile: int, group: int = GROUP, items: int = 1, context: int = 0) -> int:
    """Number of progress ticks (tile rows times tile groups) of ``items`` images of one size (of one image
    coded with ``context``: :func:`~nlc.coding.context_tiles.schedule`'s groups)."""
    grid = TileGrid.for_image(height, width, tile)
    if context:
        return grid.tile_h * len(context_tiles.schedule(grid, context))
    return grid.tile_h * len(_groups(items * grid.batch, group))


def encode_tiles(
    model: SteppedModel,
    mixtures: int,
    pixels: np.ndarray,
    tile: int,
    coder: str,
    group: int = GROUP,
    progress: Callable[[int], None] | None = None,
    adaptive: str | None = None,
    context: int = 0,
) -> tuple[bytes, float]:
    """Code an ``(H, W, C)`` uint8 image (``C`` = 1 or 3).

    With ``context`` (rows and columns; an adaptive stage, a range coder and an exact PixelCNN++ on a
    CPU) the tiles are coded group after group, each seeing coded neighbours
    (:mod:`nlc.coding.context_tiles`); ``group`` is then unused.

    Tiles are coded in groups of at most ``group``, each group on its own coder;
    the payload is, per group, a u32 little-endian byte count and the coder's
    words. Returns the payload and the information content in bits under the
    model's float tables (the model's ``-log2 p`` of the image as coded).
    ``adaptive`` names an adaptive stage (:mod:`nlc.coding.adaptive`) for an
    exact model; each tile group starts it afresh.
    """
    if context:
        _check_context(model, coder, adaptive)
        grid = TileGrid.for_image(pixels.shape[0], pixels.shape[1], tile)
        if not STEPPED_ENCODER:
            return context_tiles.encode(mixtures, pixels, grid, str(adaptive), context,
                                        lambda x4: _pass(model, x4, grid.tile_h * grid.tile_w), progress)
        with exact_kernels(model), step_threads():  # the steps of the decoder, on its threads
            return context_tiles.encode(mixtures, pixels, grid, str(adaptive), context, None, progress, model)
    return encode_items(model, mixtures, pixels[None], tile, coder, group, progress, adaptive)


def _check_context(model: SteppedModel, coder: str, adaptive: str | None) -> None:
    if not adaptive or coder != CompiledRangeQueue.name or not is_exact(model):
        raise ValueError("context tiles need an exact model, an adaptive stage and the range coder")


def encode_items(
    model: SteppedModel,
    mixtures: int,
    items: np.ndarray,
    tile: int,
    coder: str,
    group: int = GROUP,
    progress: Callable[[int], None] | None = None,
    adaptive: str | None = None,
) -> tuple[bytes, float]:
    """Code ``(N, H, W, C)`` same-sized uint8 images as one batch of tiles (an image set).

    The tiles of all images, item after item, are coded in groups of at most
    ``group`` as in :func:`encode_tiles` (which is the case ``N = 1``), so
    many small images share every step of the loop.
    """
    grid = TileGrid.for_image(items.shape[1], items.shape[2], tile)
    channels = items.shape[3]
    all_tiles = grid.split_items(items)
    all_hs, all_ws = grid.extents(len(items))
    _check_adaptive(model, adaptive)
    payload, bits = [], 0.0
    for g in _groups(len(all_hs), group):
        enc = CompiledRangeQueue() if adaptive and coder == CompiledRangeQueue.name and COMPILED_STEPS \
            else make_coder(coder)
        if adaptive:
            stage = make_stage(adaptive, len(all_hs[g]), grid.tile_h, grid.tile_w, channels)
            assert stage is not None  # a named stage
            bits += _encode_adaptive(model, mixtures, grid, all_hs[g], all_ws[g], channels, all_tiles[g], enc,
                                     stage, progress)
            words = enc.to_bytes()
            payload += [struct.pack("<I", len(words)), words]
            continue
        if is_exact(model):
            stepped = None
            if coder == CompiledRangeQueue.name and COMPILED_STEPS and STEPPED_ENCODER:
                queue = CompiledRangeQueue()  # the words of constriction's range coder
                stepped = _encode_stepped(model, mixtures, grid, all_hs[g], all_ws[g], channels, all_tiles[g],
                                          queue, None, progress)
                if stepped is not None:
                    enc, bits = queue, bits + stepped
            if stepped is None:
                bits += _encode_parallel(model, mixtures, grid, all_hs[g], all_ws[g], channels, all_tiles[g], enc,
                                         progress)
            words = enc.to_bytes()
            payload += [struct.pack("<I", len(words)), words]
            continue
        record: list[tuple[torch.Tensor, np.ndarray]] = []
        to_tables = pixel_coder(model)

        def on_pixels(r, c, idx, params, known):
            if enc.lifo:
                record.append((params, known))
                return to_tables(params, mixtures, channels, lambda ch, t: known[:, ch])

            def fn(ch, table):
                enc.encode(known[:, ch], table)
                return known[:, ch]

            return to_tables(params, mixtures, channels, fn)

        bits += _run(model, grid, all_hs[g], all_ws[g], channels, all_tiles[g],
                     lambda *a: _summed(on_pixels(*a)), progress)
        for params, known in reversed(record):
            tables: list[np.ndarray] = []

            def collect(ch, table):
                tables.append(table)
                return known[:, ch]

            to_tables(params, mixtures, channels, collect, with_bits=False)
            enc.encode(known.T.reshape(-1), np.concatenate(tables))
        words = enc.to_bytes()
        payload += [struct.pack("<I", len(words)), words]
    return b"".join(payload), bits


COMPILED_STEPS = True  # an exact model on a range coder decodes (with an adaptive stage also encodes) a tile row
# per compiled call (adaptive_steps); False: step by step through constriction (the same bytes; tests read its tables)
STEPPED_ENCODER = True  # an exact model with compiled steps on the range coder encodes by stepping through the
# tiles as the decoder does (the same parameters, so the same words, with no parallel pass); False: from the pass
PASS_PIXELS = 4 * 64 * 64  # pixels per parallel pass of the exact encoder: 4 tiles of 64x64, 1 of 128x128
# (smaller passes ran faster; 4 tiles of 128x128 at once took twice as long, their activations out of cache)
PIXEL_CHUNK = 256  # about this many pixels' tables at once (their tables stay in cache)


def _check_adaptive(model: SteppedModel, adaptive: str | None) -> None:
    if adaptive and not is_exact(model):
        raise ValueError(f"adaptive stage {adaptive!r} needs a model with exact arithmetic")


@torch.no_grad()
def _parallel_params(model: SteppedModel, grid: TileGrid, hs: np.ndarray, ws: np.ndarray, channels: int,
                     tiles: np.ndarray) -> torch.Tensor:
    """An exact model's parameters of every pixel of a group of tiles from one parallel pass, as int32
    counts of ``2^-16`` (exact: they are multiples of ``2^-16`` below ``2^10``, and half the memory)."""
    dev = next(model.parameters()).device
    return _pass(model, _input(grid, hs, ws, channels, tiles, dev), grid.tile_h * grid.tile_w)


@torch.no_grad()
def _pass(model: SteppedModel, x4: torch.Tensor, tile_pixels: int) -> torch.Tensor:
    """An exact model's parameters of the tiles ``x4`` in int32 counts of ``2^-16``, in passes of about
    :data:`PASS_PIXELS` pixels (``tile_pixels`` a tile's coded pixels) shared out to the cores."""
    x4 = x4.to(next(model.parameters()).device)
    per_pass = max(1, PASS_PIXELS // tile_pixels)

    def chunk(i: int) -> torch.Tensor:
        return (model.forward_x4(x4[i : i + per_pass]) / GRID).to(torch.int32)

    starts = range(0, len(x4), per_pass)
    with exact_kernels(model):
        if x4.device.type != "cpu":
            return torch.cat([chunk(i) for i in starts])
        out: torch.Tensor | None = None
        with pass_workers() as pool:  # chunks shared out as workers free up: a busy core slows one worker only
            for i, params in zip(starts, pool.map(chunk, starts)):  # each chunk copied in as it comes (no
                if out is None:  # second copy of the whole pass, which a large image's window made 0.6 GB)
                    out = torch.empty((len(x4), *params.shape[1:]), dtype=torch.int32)
                out[i : i + len(params)] = params
        assert out is not None  # at least one chunk
        return out


def _encode_adaptive(model: SteppedModel, mixtures: int, grid: TileGrid, hs: np.ndarray, ws: np.ndarray,
                     channels: int, tiles: np.ndarray, enc: Coder, stage: OnlineBias,
                     progress: Callable[[int], None] | None) -> float:
    """Code one group of tiles with an exact model and an adaptive stage, step by step in the decoder's
    order, so the stage learns what the decoder will have learned: on the compiled range coder by the
    model's compiled steps (:func:`_encode_stepped`) where it has them, else with the parameters of one
    parallel pass (on an ANS stack the steps are pushed in reverse afterwards). Returns the bits."""
    if isinstance(enc, CompiledRangeQueue) and STEPPED_ENCODER:
        bits = _encode_stepped(model, mixtures, grid, hs, ws, channels, tiles, enc, stage, progress)
        if bits is not None:
            return bits
    params = _parallel_params(model, grid, hs, ws, channels, tiles).numpy()
    if isinstance(enc, CompiledRangeQueue):  # a tile row per compiled call, the same words
        return adaptive_steps.encode_tile_rows(stage, mixtures, hs, ws, params, tiles, enc, progress)
    bits = 0.0
    steps: list[tuple[np.ndarray, np.ndarray]] = []
    width = grid.tile_w
    for r in range(grid.tile_h):
        stage.start_row(r)
        row_tiles = hs > r
        # the row's mixtures at once, pixel (tile t, column c) at t * width + c: one step takes its part
        row_mix = ExactMixture(params[:, :, r].transpose(0, 2, 1).reshape(-1, params.shape[1]) * GRID, mixtures)
        for c in range(width):
            idx = np.flatnonzero(row_tiles & (ws > c))
            known = tiles[idx, r, c]
            tables: list[np.ndarray] = []
            coded: list[np.ndarray] = []

            def collect(k: int, table: np.ndarray) -> np.ndarray:
                tables.append(table)
                coded.append(stage_symbols(known, k))
                return coded[-1]

            stage.at(r, c, idx)
            _, b = code_pixels_exact(row_mix.take(idx * width + c), mixtures, channels, collect, adapt=stage)
            assert b is not None  # with_bits
            bits += float(b.sum())
            step = (np.concatenate(coded), np.concatenate(tables))  # the step's symbols, stage by stage
            if enc.lifo:
                steps.append(step)
            else:
                enc.encode(*step)
        if progress:
            progress(1)
    for symbols, rows in reversed(steps):
        enc.encode(symbols, rows)
    return bits


@contextlib.contextmanager
def _compiled_steps(model: SteppedModel, grid: TileGrid, batch: int, channels: int, stage: OnlineBias | None,
                    decoding: bool = False) -> Iterator[tuple | None]:
    """The model's stepper for ``batch`` tiles with the stage to code with (a neutral one where ``stage`` is
    None: its arrays go unused) and whether it adapts, released on leaving; ``None``, nothing made, where
    the stepper has no compiled step (``kernel``: PixelCNN++'s, which also encodes a row at once;
    ``snail_kernel``: PixelSNAIL's; in ``decoding``, also ``gated_kernel``: Gated PixelCNN's)."""
    with exact_kernels(model), step_threads():
        st = model.stepper(batch, grid.tile_h, grid.tile_w)
        names = ("kernel", "snail_kernel", "gated_kernel") if decoding else ("kernel", "snail_kernel")
        if not any(getattr(st, name, False) for name in names):
            st.release()
            yield None
            return
        neutral = stage or make_stage("bias-v1", 1, 1, 1, channels)
        try:
            yield st, neutral, stage is not None
        finally:  # (also when interrupted: the stepper's threads end)
            st.release()


@torch.no_grad()
def _encode_stepped(model: SteppedModel, mixtures: int, grid: TileGrid, hs: np.ndarray, ws: np.ndarray,
                    channels: int, tiles: np.ndarray, enc: CompiledRangeQueue, stage: OnlineBias | None,
                    progress: Callable[[int], None] | None) -> float | None:
    """Encode one group of tiles ``(B, H, W, C)`` with an exact model, with its adaptive stage or without
    (``stage`` None), on a range coder by the model's compiled steps, the decoder's loop with the pixels
    known (:func:`~nlc.coding.adaptive_steps.encode_stepped_rows`, PixelSNAIL's
    :func:`~nlc.coding.adaptive_steps.encode_step_columns`): the words of the parallel pass's encoding,
    without the pass. Returns the bits, or None, having done nothing, where the model's stepper
    has no compiled step."""
    with _compiled_steps(model, grid, len(hs), channels, stage) as steps:
        if steps is None:
            return None
        st, coding_stage, adapt = steps
        st.fill(_input(grid, hs, ws, channels, tiles, st.x.device))
        if getattr(st, "snail_kernel", False):
            return adaptive_steps.encode_step_columns(st, coding_stage, adapt, mixtures, hs, ws, tiles, enc,
                                                      progress=progress)
        return adaptive_steps.encode_stepped_rows(st, coding_stage, adapt, mixtures, hs, ws, tiles, enc,
                                                  progress=progress)


@torch.no_grad()
def _decode_compiled(model: SteppedModel, mixtures: int, grid: TileGrid, hs: np.ndarray, ws: np.ndarray,
                     channels: int, dec: CompiledRangeQueue, stage: OnlineBias | None, out: np.ndarray,
                     progress: Callable[[int], None] | None) -> bool:
    """Decode one group of tiles of an exact model, with its adaptive stage or without (``stage`` None),
    from a range coder, a tile row per compiled call (:func:`~nlc.coding.adaptive_steps.decode_row`), into
    ``out`` ``(B, H, W, C)``. Returns False, having done nothing, where the model's stepper has no
    compiled step (then :func:`_run` decodes)."""
    with _compiled_steps(model, grid, len(hs), channels, stage, decoding=True) as steps:
        if steps is None:
            return False
        st, coding_stage, adapt = steps
        st.fill(_input(grid, hs, ws, channels, None, st.x.device))
        adaptive_steps.decode_tile_rows(st, coding_stage, adapt, mixtures, hs, ws, dec, out,
                                        adaptive_steps.put_values(st.arith.input),  # a compiled stepper
                                        progress=progress)  # (``kernel``) has ``arith``
    return True


@torch.no_grad()
def _encode_parallel(model: SteppedModel, mixtures: int, grid: TileGrid, hs: np.ndarray, ws: np.ndarray,
                     channels: int, tiles: np.ndarray, enc: Coder,
                     progress: Callable[[int], None] | None) -> float:
    """Code one group of tiles with an exact model: parameters from one parallel pass, symbols in the
    decoder's order (step by step, each step stage by stage). Returns the information in bits."""
    params = _parallel_params(model, grid, hs, ws, channels, tiles)
    bits = 0.0
    stages = 2 * channels
    cols, tiles_of = (a.reshape(-1) for a in np.meshgrid(np.arange(grid.tile_w), np.arange(len(hs)), indexing="ij"))
    for r in (reversed(range(grid.tile_h)) if enc.lifo else range(grid.tile_h)):
        keep = (r < hs[tiles_of]) & (cols < ws[tiles_of])
        if not keep.any():  # a group of tiles all shorter than this row (the last tile row's, in small groups)
            if progress:
                progress(1)
            continue
        cc, tt = cols[keep], tiles_of[keep]
        known = tiles[tt, r, cc]  # (n, channels): row r's pixels in the decoder's order
        p = params[torch.from_numpy(tt), :, r, torch.from_numpy(cc)]
        tables: list[list[np.ndarray]] = [[] for _ in range(stages)]
        for i in range(0, len(tt), PIXEL_CHUNK):
            part = known[i : i + PIXEL_CHUNK]

            def collect(stage: int, table: np.ndarray) -> np.ndarray:
                tables[stage].append(table)
                return stage_symbols(part, stage)

            _, b = code_pixels_exact(p[i : i + PIXEL_CHUNK].double() * GRID, mixtures, channels, collect)
            assert b is not None  # with_bits
            bits += float(b.sum())
        symbols = np.concatenate([stage_symbols(known, k) for k in range(stages)])
        order = np.argsort(np.concatenate([cc * stages + k for k in range(stages)]), kind="stable")
        enc.encode(symbols[order], np.concatenate([np.concatenate(t) for t in tables])[order])
        if progress:
            progress(1)
    return bits


def _summed(result: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, float]:
    syms, b = result
    return syms, float(b.sum())


def decode_tiles(
    model: SteppedModel,
    mixtures: int,
    height: int,
    width: int,
    channels: int,
    tile: int,
    coder: str,
    payload: bytes,
    group: int = GROUP,
    progress: Callable[[int], None] | None = None,
    adaptive: str | None = None,
    context: int = 0,
) -> np.ndarray:
    """Decode an ``(height, width, channels)`` uint8 image from :func:`encode_tiles`' payload."""
    if context:
        _check_context(model, coder, adaptive)
        grid = TileGrid.for_image(height, width, tile)
        with exact_kernels(model), step_threads():
            return context_tiles.decode(model, mixtures, height, width, channels, grid, payload, str(adaptive),
                                        context, progress)
    return decode_items(model, mixtures, 1, height, width, channels, tile, coder, payload, group, progress,
                        adaptive)[0]


def decode_items(
    model: SteppedModel,
    mixtures: int,
    count: int,
    height: int,
    width: int,
    channels: int,
    tile: int,
    coder: str,
    payload: bytes,
    group: int = GROUP,
    progress: Callable[[int], None] | None = None,
    adaptive: str | None = None,
) -> np.ndarray:
    """Decode ``(count, height, width, channels)`` uint8 images from :func:`encode_items`' payload."""
    _check_adaptive(model, adaptive)
    grid = TileGrid.for_image(height, width, tile)
    all_hs, all_ws = grid.extents(count)
    out = np.zeros((len(all_hs), grid.tile_h, grid.tile_w, channels), np.uint8)
    to_tables = pixel_coder(model)
    pos = 0
    for g in _groups(len(all_hs), group):
        if pos + 4 > len(payload):
            raise CoderError("payload ends before the last tile group")
        (n,) = struct.unpack_from("<I", payload, pos)
        if pos + 4 + n > len(payload):
            raise CoderError("tile group runs past the end of the payload")
        data = payload[pos + 4 : pos + 4 + n]
        pos += 4 + n
        part = out[g]
        stage = make_stage(adaptive, len(all_hs[g]), grid.tile_h, grid.tile_w, channels) if adaptive else None
        if (stage is not None or is_exact(model)) and coder == CompiledRangeQueue.name and COMPILED_STEPS \
                and _decode_compiled(model, mixtures, grid, all_hs[g], all_ws[g], channels, CompiledRangeQueue(data),
                                     stage, part, progress):
            continue
        dec = make_coder(coder, data)

        def on_pixels(r, c, idx, params, known, stage=stage, dec=dec, part=part):
            if stage is None:
                syms, _ = to_tables(params, mixtures, channels, lambda ch, table: dec.decode(table), with_bits=False)
                part[idx, r, c] = syms
                return syms, 0.0
            if c == 0:
                stage.start_row(r)
            stage.at(r, c, idx)
            syms, _ = code_pixels_exact(params, mixtures, channels, lambda ch, table: dec.decode(table),
                                        with_bits=False, adapt=stage)
            part[idx, r, c] = syms
            return syms, 0.0

        _run(model, grid, all_hs[g], all_ws[g], channels, None, on_pixels, progress)
    if pos != len(payload):
        raise CoderError("unexpected bytes after the last tile group")
    return grid.merge_items(out)
