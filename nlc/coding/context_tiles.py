"""Tiles that see their coded neighbours: groups coded one after another, each tile with context.

Independent tiles decode in parallel, but each starts blind: its first rows and
columns are coded without the pixels above and to the left that the network
would use. Here the tiles are coded in groups, one group after another, and
every tile of a later group is extended
by :data:`CONTEXT` rows above and columns to the left of **pixels already
coded**: the network reads them (the model's pass and its steps run over the
extended tile) and codes only the tile.

The schedule (:func:`schedule`): tile row by tile row, first the tiles in even
columns, then those in odd columns. A tile below the first tile row has the
rows above it as context; a tile in an odd column also has the columns to
its left (its left neighbour was coded in the group before), and the corner
above-left. Every tile of a group has the same context, so a group is one
batch of equally shaped tiles; tiles on the image's top row or left column
have none (the natural zero padding: context of zeros outside the image
would change what the network computes). The adaptive stage carries its
statistics from group to group (:meth:`~nlc.coding.adaptive.OnlineBias.adopt`)
in two chains, the even columns' groups and the odd columns': each group has
its own coder words, so the decoder runs the two chains at once on two cores,
an odd group waiting row by row for the even group beside it.

Chosen on 768x512 crops of ``photos-val`` with the float model
(``bench/context.py``, ``docs/adaptive.md``).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..threads import cores, vertical_workers
from . import adaptive_steps
from .adaptive import OnlineBias, make_stage
from .coders import CoderError, CompiledRangeQueue

CONTEXT = 8  # rows above and columns left of a tile that its network reads (a multiple of 4: the U-net's strides)


@dataclass(frozen=True)
class ContextGroup:
    """Tiles (row-major indices of the grid's tiles) coded together, all with ``top`` rows above and
    ``left`` columns to the left of context."""

    tiles: np.ndarray
    top: int
    left: int
    odd: bool  # in the odd columns' chain (stage statistics, decoding thread), else the even columns'


def schedule(grid, context: int = CONTEXT) -> list[ContextGroup]:
    """The groups of a :class:`~nlc.coding.autoregressive.TileGrid` in coding order (see the module
    docstring); the context is at most a tile's height and width."""
    top, left = min(context, grid.tile_h), min(context, grid.tile_w)
    groups = []
    for ty in range(grid.ny):
        for odd in (False, True):
            cols = np.arange(int(odd), grid.nx, 2)
            if len(cols):
                groups.append(ContextGroup(ty * grid.nx + cols, top if ty else 0, left if odd else 0, odd))
    return groups


def extended_input(image: np.ndarray, known_tiles: bool, grid, group: ContextGroup) -> torch.Tensor:
    """The model input ``(B, 4, top + tile_h, left + tile_w)`` of a group's extended tiles from the
    ``(H, W, C)`` uint8 ``image`` (the whole image for an encoder, the pixels coded so far for a
    decoder): RGB in ``[-1, 1]`` (gray repeated) as float32 ``v / 127.5 - 1`` and the ones channel where
    the image is, the tiles' own pixels only with ``known_tiles`` (zeros for a decoder)."""
    th, tw, top, left = grid.tile_h, grid.tile_w, group.top, group.left
    h, w = top + th, left + tw
    x4 = torch.zeros(len(group.tiles), 4, h, w)
    for i, t in enumerate(group.tiles):
        y0, x0 = (t // grid.nx) * th - top, (t % grid.nx) * tw - left
        y1, x1 = min(y0 + h, image.shape[0]), min(x0 + w, image.shape[1])
        patch = torch.from_numpy(np.array(image[y0:y1, x0:x1])).float() / 127.5 - 1.0
        if patch.shape[2] == 1:
            patch = patch.expand(-1, -1, 3)
        x4[i, :3, : y1 - y0, : x1 - x0] = patch.permute(2, 0, 1)
        x4[i, 3, : y1 - y0, : x1 - x0] = 1.0
        if not known_tiles:
            x4[i, :3, top:, left : left + tw] = 0.0
    return x4


def _extents(grid, tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hs, ws = grid.extents()
    return hs[tiles].astype(np.int64), ws[tiles].astype(np.int64)


def _stage(name, previous: OnlineBias | None, batch: int, grid, channels: int) -> OnlineBias:
    stage = make_stage(name, batch, grid.tile_h, grid.tile_w, channels)
    assert stage is not None
    if previous is not None:
        stage.adopt(previous)
    return stage


def encode(mixtures: int, pixels: np.ndarray, grid, adaptive: str, context: int, pass_params: Callable | None,
           progress: Callable[[int], None] | None, model=None) -> tuple[bytes, float]:
    """Code an ``(H, W, C)`` uint8 image group by group on a range coder (the payload: per group a u32
    byte count and the coder's words, as :func:`~nlc.coding.autoregressive.encode_tiles`). With ``model``
    (an exact model whose steps are compiled) each group steps through its tiles as the decoder does, the
    pixels known (:func:`_encode_stepped`: the same words); else ``pass_params`` maps a model input to the
    exact parameters ``(B, P, h, w)`` in int32 counts of ``2^-16``. Returns the payload and the bits
    under the tables."""
    channels = pixels.shape[2]
    tiles = grid.split(pixels)
    groups = schedule(grid, context)
    coded: dict[int, tuple[bytes, float]] = {}
    stages = dict[bool, OnlineBias | None]()
    stop = threading.Event()

    def tick(rows: int) -> None:
        if stop.is_set():  # the other chain failed, or the encode was interrupted
            raise _Aborted
        if progress:
            progress(rows)

    if model is not None:
        def stepped_chain(odd: bool) -> None:
            try:
                stage = None
                for g, group in enumerate(groups):
                    if group.odd == odd:
                        stage = _stage(adaptive, stage, len(group.tiles), grid, channels)
                        coded[g] = _encode_stepped(model, mixtures, pixels, grid, group, tiles[group.tiles], stage,
                                                   tick)
            except BaseException:
                stop.set()
                raise

        _both_chains(stepped_chain, stop.set, cores() >= 2 and grid.nx > 1)
        return _joined(coded, len(groups))

    def chain(odd: bool, window: dict[int, np.ndarray]) -> None:
        try:
            for g in sorted(window):
                if groups[g].odd == odd:
                    group, params = groups[g], window[g]
                    hs, ws = _extents(grid, group.tiles)
                    stage = stages[odd] = _stage(adaptive, stages.get(odd), len(group.tiles), grid, channels)
                    enc = CompiledRangeQueue()
                    bits = adaptive_steps.encode_tile_rows(stage, mixtures, hs, ws, params, tiles[group.tiles], enc,
                                                           tick)
                    coded[g] = (enc.to_bytes(), bits)
        except BaseException:
            stop.set()
            raise

    assert pass_params is not None  # without a model
    first = 0
    while first < len(groups):  # a window of groups' parameters, then its two chains at once on two cores
        window = _passes(pixels, grid, groups, first, pass_params)
        first = max(window) + 1
        _both_chains(lambda odd: chain(odd, window), stop.set, cores() >= 2)
        window.clear()  # this window's parameters go before the next window's pass (a large image's are 0.8 GB)
    return _joined(coded, len(groups))


def _joined(coded: dict[int, tuple[bytes, float]], count: int) -> tuple[bytes, float]:
    """The payload of ``count`` coded groups (each a u32 byte count and its words) and their bits."""
    payload: list[bytes] = []
    for g in range(count):
        words = coded[g][0]
        payload += [len(words).to_bytes(4, "little"), words]
    return b"".join(payload), sum(coded[g][1] for g in range(count))


def _encode_stepped(model, mixtures: int, pixels: np.ndarray, grid, group: ContextGroup, known: np.ndarray,
                    stage: OnlineBias, progress: Callable[[int], None]) -> tuple[bytes, float]:
    """One group's words and bits from the model's compiled steps over its extended tiles, filled with
    every pixel (``known`` ``(B, tile_h, tile_w, C)`` the tiles' own)."""
    st = model.stepper(len(group.tiles), group.top + grid.tile_h, group.left + grid.tile_w)
    if not getattr(st, "kernel", False):
        raise ValueError("context tiles need a model whose steps are compiled (an exact PixelCNN++ on a CPU)")
    try:
        st.fill(extended_input(pixels, True, grid, group))
        hs, ws = _extents(grid, group.tiles)
        enc = CompiledRangeQueue()
        bits = adaptive_steps.encode_stepped_rows(st, stage, True, mixtures, hs, ws, known, enc, group.top,
                                                  group.left, progress)
    finally:  # (also when the other chain failed or Ctrl-C stopped this one: the stepper's threads end)
        st.release()
    return enc.to_bytes(), bits


def _both_chains(chain: Callable[[bool], None], stop: Callable[[], None], parallel: bool) -> None:
    """Run ``chain(False)`` (the even columns' groups) and ``chain(True)``: with ``parallel`` in two threads
    on two cores (the compiled rows release the GIL), else one after the other. On Ctrl-C in this thread
    ``stop()`` makes both chains stop at their next row; the first real error is raised."""
    if not parallel:
        chain(False)
        chain(True)
        return
    def one_core(odd: bool) -> None:  # each chain keeps one core busy: its steppers' slices run in turn
        with vertical_workers(1):
            chain(odd)

    with ThreadPoolExecutor(max_workers=2) as pool:
        jobs = [pool.submit(one_core, odd) for odd in (False, True)]
        try:
            errors = [e for e in (job.exception() for job in jobs) if e is not None]
        except BaseException:  # Ctrl-C in this thread: both chains stop at their next row
            stop()
            raise
    if errors:
        raise next((e for e in errors if not isinstance(e, _Aborted)), errors[0])


PASS_WINDOW = 384 * 64 * 64  # tile pixels whose parameters the encoder holds at once (a coder group's of 64x64 tiles)


def _passes(pixels: np.ndarray, grid, groups: list[ContextGroup], first: int,
            pass_params: Callable) -> dict[int, np.ndarray]:
    """The exact parameters ``(B, P, tile_h, tile_w)`` of the groups from ``first`` on that hold
    :data:`PASS_WINDOW` tile pixels (at least one group), groups of one shape in one pass, so that the
    pass's chunks keep both cores busy while memory stays bounded on huge images."""
    window: list[int] = []
    pixels_held = 0
    for g in range(first, len(groups)):
        if window and pixels_held + len(groups[g].tiles) * grid.tile_h * grid.tile_w > PASS_WINDOW:
            break
        window.append(g)
        pixels_held += len(groups[g].tiles) * grid.tile_h * grid.tile_w
    out: dict[int, np.ndarray] = {}
    for top, left in dict.fromkeys((groups[g].top, groups[g].left) for g in window):
        members = [g for g in window if (groups[g].top, groups[g].left) == (top, left)]
        x4 = torch.cat([extended_input(pixels, True, grid, groups[g]) for g in members])
        params = pass_params(x4)[:, :, top:, left : left + grid.tile_w].numpy()
        sizes = np.cumsum([len(groups[g].tiles) for g in members])[:-1]
        out.update(zip(members, np.split(params, sizes)))
    return out


def _slices(payload: bytes, count: int) -> list[bytes]:
    """The coder words of each of ``count`` groups (each after its u32 byte count)."""
    out, pos = [], 0
    for _ in range(count):
        if pos + 4 > len(payload):
            raise CoderError("payload ends before the last tile group")
        n = int.from_bytes(payload[pos : pos + 4], "little")
        if pos + 4 + n > len(payload):
            raise CoderError("tile group runs past the end of the payload")
        out.append(payload[pos + 4 : pos + 4 + n])
        pos += 4 + n
    if pos != len(payload):
        raise CoderError("unexpected bytes after the last tile group")
    return out


class _Aborted(Exception):
    """The other chain failed: this one stops (the other's error is the one reported)."""


class _Progress:
    """Rows decoded so far per group, for the odd chain to wait on the even one."""

    def __init__(self, groups: int) -> None:
        self.rows = [0] * groups
        self.failed = False
        self.cond = threading.Condition()

    def done(self, group: int, rows: int) -> None:
        with self.cond:
            self.rows[group] = rows
            self.cond.notify_all()

    def fail(self) -> None:
        with self.cond:
            self.failed = True
            self.cond.notify_all()

    def wait(self, group: int, rows: int) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.failed or self.rows[group] >= rows)
            if self.failed:
                raise _Aborted


@torch.no_grad()
def decode(model, mixtures: int, height: int, width: int, channels: int, grid, payload: bytes, adaptive: str,
           context: int, progress: Callable[[int], None] | None) -> np.ndarray:
    """Decode :func:`encode`'s payload into an ``(height, width, channels)`` uint8 image.

    The even columns' groups need nothing of the odd ones', and an odd group needs of the even group
    beside it only the rows decoded so far: on two cores the two chains decode at once, the odd one a
    row behind (each group has its own coder words and each chain its own stage)."""
    groups = schedule(grid, context)
    words = _slices(payload, len(groups))
    image = np.zeros((height, width, channels), np.uint8)
    rows = _Progress(len(groups))
    origin = [((t // grid.nx) * grid.tile_h, (t % grid.nx) * grid.tile_w) for t in range(grid.batch)]

    def chain(odd: bool) -> None:
        stage = None
        try:
            for g, group in enumerate(groups):
                if group.odd == odd:
                    stage = _stage(adaptive, stage, len(group.tiles), grid, channels)
                    _decode_group(model, mixtures, grid, channels, group, g, words[g], stage, image, origin, rows,
                                  progress)
        except BaseException:
            rows.fail()
            raise

    _both_chains(chain, rows.fail, cores() >= 2 and grid.nx > 1)
    return image


def _decode_group(model, mixtures: int, grid, channels: int, group: ContextGroup, g: int, words: bytes,
                  stage: OnlineBias, image: np.ndarray, origin: list, rows: _Progress,
                  progress: Callable[[int], None] | None) -> None:
    """Decode group ``g`` into ``image``, row by row (an odd group waits for the even group before it)."""
    dec = CompiledRangeQueue(words)
    hs, ws = _extents(grid, group.tiles)
    part = np.zeros((len(group.tiles), grid.tile_h, grid.tile_w, channels), np.uint8)
    if group.odd:
        rows.wait(g - 1, 1)  # the even group beside this one has begun: the tile row above is coded
    st = model.stepper(len(group.tiles), group.top + grid.tile_h, group.left + grid.tile_w)
    if not getattr(st, "kernel", False):
        raise ValueError("context tiles need a model whose steps are compiled (an exact PixelCNN++ on a CPU)")
    st.fill(extended_input(image, False, grid, group))
    puts = adaptive_steps.put_values(st.arith.input)

    def before_row(r: int) -> None:
        if group.odd:  # this row's left context, coded by the even group meanwhile
            rows.wait(g - 1, r + 1)
            _refresh_left(st, image, grid, group, r, origin, puts)

    def after_row(r: int) -> None:
        for i, t in enumerate(group.tiles):
            y, x = origin[t]
            if r < hs[i]:
                image[y + r, x : x + ws[i]] = part[i, r, : ws[i]]
        rows.done(g, r + 1)
        if rows.failed:  # the other chain failed, or the decode was interrupted
            raise _Aborted

    adaptive_steps.decode_tile_rows(st, stage, True, mixtures, hs, ws, dec, part, puts, group.top, group.left,
                                    before_row, after_row, progress)
    st.release()


def _refresh_left(st, image: np.ndarray, grid, group: ContextGroup, r: int, origin: list, puts: np.ndarray) -> None:
    """Copy row ``r``'s left context of every tile of ``group`` from ``image`` into the model's buffer."""
    row = st.TOP + group.top + r
    for i, t in enumerate(group.tiles):
        y, x = origin[t]
        if y + r < image.shape[0]:
            values = puts[image[y + r, x - group.left : x]]  # (left, channels)
            st.xs[i, :3, row, st.LEFT : st.LEFT + group.left] = (values if values.shape[1] == 3 else
                                                                  np.repeat(values, 3, 1)).T
