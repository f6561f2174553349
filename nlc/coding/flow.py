"""The integer-flow image codec: an image's latents coded stage by stage.

A flow maps the image to integer latents exactly (:mod:`nlc.models.flows`), so
coding the latents under their prior codes the image. The encoder runs the
flow forward once, then codes the latents top level first, and within a
level stage by stage (:class:`~nlc.models.flows.priors.StagedPrior`); the
decoder decodes a level's latents stage by stage, inverts that level, and uses
the result as the next level's conditioning. Both sides compute every prior
from the same integers with the same operations, so their tables agree.

Each latent's discretized logistic mixture becomes a table over a window of
integers around the mixture's mean (16 to 4096 wide, reaching :data:`TAIL`
scales past every component, so narrow latents get small tables) plus two
tail bins. A value in a tail bin is coded in further windows of the same width
beyond it, under the mixture's tail, so its cost stays the model's
``-log2 p``; after :data:`ESCAPE_ROUNDS` windows its distance goes as
:data:`ESCAPE_BYTES` raw bytes. Large images are cut into tiles of at most
``tile x tile``, of any size (the flow pads odd sides level by level), coded
one after another into one range-coder stream.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from ..models.heads import integer_logistic_log_prob
from .coders import RangeQueue

WIDTHS = tuple(2**k for k in range(4, 13))  # 16 .. 4096
TAIL = 6.0  # a window reaches this many scales past each component's mean (logistic tail beyond: e^-6)
ESCAPE_BYTES = 3
UNIFORM_MIX = 2.0**-16  # every bin keeps probability >= 2^-24 before quantization
CELLS = 1 << 21  # table cells (latents x width) built at once
_BYTE_TABLE = np.ones((1, 256))


def mixture_params(logits: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Float64 ``(weights, means, inverse scales)`` from float32 ``(n, M)`` network outputs."""
    return torch.softmax(logits.double(), 1), means.double(), torch.exp(-log_scales.double())


def window_plan(w: torch.Tensor, means: torch.Tensor, inv_s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Window start ``(n,)`` and index into :data:`WIDTHS` ``(n,)`` of each latent's table.

    The window is centred on the mixture's mean and wide enough to reach
    :data:`TAIL` scales past every component that weighs at least 1e-3.
    """
    center = torch.round((w * means).sum(1))
    reach = ((means - center.unsqueeze(1)).abs() + TAIL / inv_s).where(w > 1e-3, 0.0).amax(1)
    k = torch.searchsorted(torch.tensor(WIDTHS, dtype=torch.float64), 2 * reach).clamp(max=len(WIDTHS) - 1)
    return center - torch.tensor(WIDTHS, dtype=torch.float64)[k] // 2, k


def windowed_tables(w: torch.Tensor, means: torch.Tensor, inv_s: torch.Tensor, low: torch.Tensor,
                    width: int) -> np.ndarray:
    """Tables ``(n, width + 2)`` of integer logistic mixtures over windows starting at ``low``.

    Bin 0 holds everything below the window, bin ``width + 1`` everything
    above it; bins ``1..width`` the integers ``low .. low + width - 1``. The
    CDF is evaluated in float32 (identically by encoder and decoder), the upper
    tail in float64.
    """
    edges = (low.unsqueeze(1) + torch.arange(width + 1, dtype=torch.float64) - 0.5).float()
    s32 = inv_s.float().unsqueeze(2)
    arg = torch.baddbmm(-means.float().unsqueeze(2) * s32, s32, edges.unsqueeze(1))  # (edge - mean) / scale
    cdf = torch.bmm(w.float().unsqueeze(1), arg.sigmoid_())[:, 0].double()
    table = torch.empty(cdf.shape[0], width + 2, dtype=torch.float64)
    table[:, 0] = cdf[:, 0]
    torch.sub(cdf[:, 1:], cdf[:, :-1], out=table[:, 1:-1])
    # the mass above the window as a survival function: 1 - cdf would lose small tails to float rounding
    table[:, -1] = (w * torch.sigmoid((means - edges[:, -1:].double()) * inv_s)).sum(1)
    table.clamp_(min=0.0).mul_(1 - UNIFORM_MIX).add_(UNIFORM_MIX / (width + 2))
    return table.numpy()


def _escape_digits(d: np.ndarray) -> np.ndarray:
    """Distances ``(k,)`` beyond the last escape window -> ``(k * ESCAPE_BYTES,)`` base-256 digits."""
    if len(d) and int(d.max()) >= 256**ESCAPE_BYTES:
        raise ValueError("a flow latent is out of range (|value| >= 2^24); the model is broken")
    return np.stack([(d >> (8 * i)) & 255 for i in range(ESCAPE_BYTES)], 1).astype(np.int32).reshape(-1)


def _digits_value(digits: np.ndarray) -> np.ndarray:
    k = len(digits) // ESCAPE_BYTES
    return (digits.reshape(k, ESCAPE_BYTES).astype(np.int64) << (8 * np.arange(ESCAPE_BYTES))).sum(1)


def escape_table(w: torch.Tensor, means: torch.Tensor, inv_s: torch.Tensor, base: np.ndarray,
                 sign: np.ndarray, start: int, width: int) -> np.ndarray:
    """Table ``(n, width + 1)`` of the escape round that covers distances ``start .. start + width - 1``.

    A value beyond a window is ``base + sign * t`` for a distance ``t >= 0``
    (``sign`` +1 above the window, -1 below). Column ``j >= 1`` is the distance
    ``start + j - 1``, column 0 everything further out. Probabilities come from
    the mixture's tail on that side (survival function above, CDF below), where
    they are differences of small numbers, so far tails keep their precision.
    """
    sg = torch.from_numpy(sign).double().unsqueeze(1)
    i = torch.arange(width + 1, dtype=torch.float64)
    edges = torch.from_numpy(base).double().unsqueeze(1) + sg * (start - 0.5 + i)
    arg = sg.unsqueeze(2) * (means.unsqueeze(2) - edges.unsqueeze(1)) * inv_s.unsqueeze(2)
    g = torch.bmm(w.unsqueeze(1), arg.sigmoid_())[:, 0]  # (n, width + 1), decreasing in i
    table = torch.empty_like(g)
    table[:, 0] = g[:, -1]
    torch.sub(g[:, :-1], g[:, 1:], out=table[:, 1:])
    table.clamp_(min=0.0).div_(g[:, :1].clamp(min=1e-300))  # the tail's own mass: the floor is relative to it
    table.mul_(1 - UNIFORM_MIX).add_(UNIFORM_MIX / (width + 1))
    return table.numpy()


ESCAPE_ROUNDS = 16  # windows tried beyond the first before the distance is sent as raw bytes


def _beyond(above: np.ndarray, low: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``(sign, base)`` of escaped values: ``value = base + sign * distance`` beyond their window."""
    return np.where(above, 1, -1), np.where(above, low + width, low - 1)


def _batches(logits: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor):
    """Yield ``(positions, w, means, inv_s, low, width)``: chunks of latents that share a window width."""
    w, mu, inv_s = mixture_params(logits, means, log_scales)
    low, k = window_plan(w, mu, inv_s)
    for j, width in enumerate(WIDTHS):
        pos = torch.nonzero(k == j)[:, 0]
        step = max(1, CELLS // width)
        for i in range(0, len(pos), step):
            p = pos[i : i + step]
            yield p, w[p], mu[p], inv_s[p], low[p], width


class LatentCoder:
    """Codes batches of integer latents under mixture parameters on a range-coder queue."""

    def __init__(self, queue: RangeQueue) -> None:
        self.queue = queue
        self.model_bits = 0.0

    def encode(self, values: torch.Tensor, logits: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor) -> None:
        """Code integer ``values`` ``(n,)`` under ``(n, M)`` mixture parameters."""
        for pos, w, mu, inv_s, low, width in _batches(logits, means, log_scales):
            table = windowed_tables(w, mu, inv_s, low, width)
            v, lo = values[pos].long().numpy(), low.long().numpy()
            idx = v - lo + 1
            below, above = idx < 1, idx > width
            self.queue.encode(np.clip(idx, 0, width + 1).astype(np.int32), table)
            esc = np.nonzero(below | above)[0]
            if len(esc):
                sign, base = _beyond(above[esc], lo[esc], width)
                self._encode_escapes(sign * (v[esc] - base), base, sign, esc, w, mu, inv_s, width)
        lp = integer_logistic_log_prob(values.double(), logits.double(), means.double(), log_scales.double())
        self.model_bits -= float(lp.sum()) / math.log(2)

    def decode(self, logits: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
        """Decode ``n`` integers coded by :meth:`encode` with the same parameters."""
        out = torch.zeros(len(logits))
        for pos, w, mu, inv_s, low, width in _batches(logits, means, log_scales):
            table = windowed_tables(w, mu, inv_s, low, width)
            sym = np.asarray(self.queue.decode(table)).astype(np.int64)
            lo = low.long().numpy()
            v = lo + sym - 1
            below, above = sym == 0, sym == width + 1
            esc = np.nonzero(below | above)[0]
            if len(esc):
                sign, base = _beyond(above[esc], lo[esc], width)
                v[esc] = base + sign * self._decode_escapes(base, sign, esc, w, mu, inv_s, width)
            out[pos] = torch.from_numpy(v).float()
        return out

    def _encode_escapes(self, t: np.ndarray, base: np.ndarray, sign: np.ndarray, rows: np.ndarray,
                        w: torch.Tensor, mu: torch.Tensor, inv_s: torch.Tensor, width: int) -> None:
        """Code distances ``t`` beyond the window in further windows of ``width``, then raw bytes."""
        left = np.arange(len(t))
        for r in range(ESCAPE_ROUNDS):
            if not len(left):
                return
            sel = torch.from_numpy(rows[left])
            table = escape_table(w[sel], mu[sel], inv_s[sel], base[left], sign[left], r * width, width)
            col = t[left] - r * width + 1
            col = np.where(col > width, 0, col)
            self.queue.encode(col.astype(np.int32), table)
            left = left[col == 0]
        if len(left):
            digits = _escape_digits(t[left] - ESCAPE_ROUNDS * width)
            self.queue.encode(digits, np.broadcast_to(_BYTE_TABLE, (len(digits), 256)))

    def _decode_escapes(self, base: np.ndarray, sign: np.ndarray, rows: np.ndarray,
                        w: torch.Tensor, mu: torch.Tensor, inv_s: torch.Tensor, width: int) -> np.ndarray:
        """Inverse of :meth:`_encode_escapes`: the distances."""
        t = np.zeros(len(base), np.int64)
        left = np.arange(len(base))
        for r in range(ESCAPE_ROUNDS):
            if not len(left):
                return t
            sel = torch.from_numpy(rows[left])
            table = escape_table(w[sel], mu[sel], inv_s[sel], base[left], sign[left], r * width, width)
            col = np.asarray(self.queue.decode(table)).astype(np.int64)
            t[left] = r * width + col - 1
            left = left[col == 0]
        if len(left):
            digits = np.asarray(self.queue.decode(np.broadcast_to(_BYTE_TABLE, (len(left) * ESCAPE_BYTES, 256))))
            t[left] = ESCAPE_ROUNDS * width + _digits_value(digits)
        return t


def _select(params: tuple[torch.Tensor, ...], mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``(1, M, C, H, W)`` parameters at ``mask`` ``(C, H, W)`` -> ``(n, M)``."""
    return tuple(p[0][:, mask].T.contiguous() for p in params)


def _code_level(prior, kept: torch.Tensor | None, z: torch.Tensor | None, shape: tuple[int, int, int],
                coder: LatentCoder) -> torch.Tensor:
    """Encode ``z`` (given) or decode it (``z is None``) under ``prior`` given ``kept``; returns ``z``."""
    decoding = z is None
    out = torch.zeros(1, *shape) if z is None else z
    for mask, params in prior.stages_of(out, kept):
        if decoding:
            out[0][mask] = coder.decode(*_select(params, mask))
        else:
            coder.encode(out[0][mask], *_select(params, mask))
    return out


def tile_boxes(height: int, width: int, tile: int) -> list[tuple[int, int, int, int]]:
    """``(y, x, h, w)`` of the tiles of an image, row by row."""
    return [(y, x, min(tile, height - y), min(tile, width - x))
            for y in range(0, height, tile) for x in range(0, width, tile)]


def level_shapes(model, height: int, width: int) -> list[tuple[int, int, int]]:
    """``(C, H, W)`` of each level's coded latent for a tile of ``height x width``."""
    return [(lvl.prior.channels, -(-h // 2), -(-w // 2))
            for lvl, (h, w) in zip(model.levels, model.input_sizes(height, width))]


Progress = Callable[[int], object] | None


@torch.no_grad()
def encode_flow(model, pixels: np.ndarray, tile: int, progress: Progress = None) -> tuple[bytes, float]:
    """Code ``(H, W, 3)`` uint8 pixels; returns the payload and the model's ``-log2 p`` in bits."""
    queue = RangeQueue()
    coder = LatentCoder(queue)
    for y, x, h, w in tile_boxes(pixels.shape[0], pixels.shape[1], tile):
        img = torch.from_numpy(np.array(pixels[y : y + h, x : x + w])).permute(2, 0, 1).unsqueeze(0).float() - 128.0
        latents = model.latents(img)
        shapes = level_shapes(model, h, w)
        for i in reversed(range(len(model.levels))):
            kept, z = latents[i]
            _code_level(model.levels[i].prior, kept, z, shapes[i], coder)
            if progress:
                progress(1)
    return queue.to_bytes(), coder.model_bits


@torch.no_grad()
def decode_flow(model, payload: bytes, height: int, width: int, tile: int, progress: Progress = None) -> np.ndarray:
    """Inverse of :func:`encode_flow`: ``(H, W, 3)`` uint8 pixels."""
    queue = RangeQueue(payload)
    coder = LatentCoder(queue)
    out = np.empty((height, width, 3), np.uint8)
    for y, x, h, w in tile_boxes(height, width, tile):
        shapes, sizes = level_shapes(model, h, w), model.input_sizes(h, w)
        kept = None
        for i in reversed(range(len(model.levels))):
            z = _code_level(model.levels[i].prior, kept, None, shapes[i], coder)
            kept = model.reconstruct(i, kept, z, sizes[i])
            if progress:
                progress(1)
        assert kept is not None  # the last level reconstructs the image
        img = (kept[0] + 128.0).permute(1, 2, 0).numpy()
        if img.min() < 0 or img.max() > 255:
            raise ValueError("decoded values out of the 8-bit range (corrupted payload)")
        out[y : y + h, x : x + w] = img.astype(np.uint8)
    return out


def progress_steps(model, height: int, width: int, tile: int) -> int:
    """Progress-bar steps of :func:`encode_flow` / :func:`decode_flow` (one per tile and level)."""
    return len(tile_boxes(height, width, tile)) * len(model.levels)

