"""Sequence codecs: every item of a batch coded one position at a time, in the same order on both sides.

A sequence model (MADE, and the char-RNN and WaveNet of issue 28) gives, through a *stepper*, the
logits of position ``d`` for every item given the positions before it; :meth:`put` hands it the
position's values once known. Encoder and decoder make the same calls in the same order, so the
decoder sees the same logits. Logits become probabilities here only: rounded to ``2^-8`` and looked
up in a table that every machine builds alike (:func:`nlc.fixed.bernoulli_lut`), so a model whose
logits are exact sums (:meth:`nlc.models.made.MADE.exact`) writes files that decode anywhere.

    >>> import numpy as np, torch
    >>> class Coin:                                     # every bit a fair coin: 1 bit each
    ...     def logits(self, d): return torch.zeros(3, dtype=torch.float64)
    ...     def put(self, d, x): pass
    >>> bits = np.array([[0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]], np.uint8)
    >>> payload, model_bits = encode_binary(Coin(), bits)
    >>> model_bits, (decode_binary(Coin(), payload, 3, 4) == bits).all()
    (12.0, True)
"""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np
import torch

from ..fixed import bernoulli_lut
from .coders import CoderError, make_coder
from .exact_tables import code_pixels_exact, stage_symbols

Progress = Callable[[int], None] | None
FLOOR = 2.0**-24  # the least probability of a value: any value stays codable


class SequenceStepper(Protocol):
    """What a sequence model gives the coder."""

    def logits(self, d: int) -> torch.Tensor:
        """``(batch,)`` logits of position ``d`` being 1, given positions ``< d`` (exact float64 sums)."""

    def put(self, d: int, x: torch.Tensor) -> None:
        """The values of position ``d``."""


class _Pushes:
    """Symbols in the decoder's order onto a coder: a queue takes them as they come, a stack (ANS) gets them
    reversed at the end, so that the decoder pops them in order."""

    def __init__(self, coder: str) -> None:
        self.enc = make_coder(coder)
        self.held: list[tuple[np.ndarray, np.ndarray]] = []

    def push(self, symbols: np.ndarray, table: np.ndarray) -> None:
        if self.enc.lifo:
            self.held.append((symbols, table))
        elif len(symbols):
            self.enc.encode(symbols, table)

    def finish(self) -> bytes:
        for symbols, table in reversed(self.held):
            if len(symbols):
                self.enc.encode(symbols, table)
        return self.enc.to_bytes()


def bernoulli_rows(logits: torch.Tensor) -> np.ndarray:
    """``(n, 2)`` probabilities of 0 and 1 (multiples of ``2^-24``, at least :data:`FLOOR`) from logits."""
    p1 = np.clip(bernoulli_lut().at(logits.numpy().astype(np.float64)), FLOOR, 1.0 - FLOOR)
    return np.stack([1.0 - p1, p1], 1)


def encode_binary(stepper: SequenceStepper, values: np.ndarray, coder: str = "range",
                  progress: Progress = None) -> tuple[bytes, float]:
    """``(N, D)`` 0/1 values, position by position for all items at once; returns the payload and the model's
    ``-log2 p`` of them under the tables coded with."""
    n, dims = values.shape
    pushes = _Pushes(coder)
    bits = 0.0
    for d in range(dims):  # the decoder's order: the stepper sees each position before the next
        rows = bernoulli_rows(stepper.logits(d))
        column = values[:, d].astype(np.int64)
        bits -= float(np.log2(rows[np.arange(n), column]).sum())
        pushes.push(column, rows)
        stepper.put(d, torch.from_numpy(column))
        if progress:
            progress(1)
    return pushes.finish(), bits


def decode_binary(stepper: SequenceStepper, payload: bytes, n: int, dims: int, coder: str = "range",
                  progress: Progress = None) -> np.ndarray:
    """The ``(n, dims)`` values :func:`encode_binary` coded into ``payload``."""
    dec = make_coder(coder, payload)
    out = np.zeros((n, dims), np.uint8)
    for d in range(dims):
        rows = bernoulli_rows(stepper.logits(d))
        column = dec.decode(rows) if n else np.zeros(0, np.int64)
        if column.size and (column.min() < 0 or column.max() > 1):
            raise CoderError("decoded a value outside {0, 1}")
        out[:, d] = column
        stepper.put(d, torch.from_numpy(column.astype(np.int64)))
        if progress:
            progress(1)
    return out


def encode_levels(stepper: "LevelStepper", values: np.ndarray, mixtures: int, coder: str = "range",
                  progress: Progress = None) -> tuple[bytes, float]:
    """``(N, D)`` gray values 0..255, position by position for all items at once, each under its exact
    mixture (``stepper.params(d)``, on the ``2^-16`` grid) in the two stages of
    :func:`nlc.coding.exact_tables.code_pixels_exact`; returns the payload and the model's ``-log2 p``."""
    n, dims = values.shape
    pushes = _Pushes(coder)
    bits = 0.0
    for d in range(dims):
        known = values[:, d: d + 1]

        def code(stage: int, table: np.ndarray, known: np.ndarray = known) -> np.ndarray:
            symbols = stage_symbols(known, stage)
            pushes.push(symbols, table)
            return symbols

        _, b = code_pixels_exact(stepper.params(d), mixtures, 1, code, adapt=_offset(stepper, d))
        assert b is not None  # with_bits
        bits += float(b.sum())
        stepper.put(d, torch.from_numpy(values[:, d].astype(np.int64)))
        if progress:
            progress(1)
    return pushes.finish(), bits


def decode_levels(stepper: "LevelStepper", payload: bytes, n: int, dims: int, mixtures: int, coder: str = "range",
                  progress: Progress = None) -> np.ndarray:
    """The ``(n, dims)`` gray values :func:`encode_levels` coded into ``payload``."""
    dec = make_coder(coder, payload)
    out = np.zeros((n, dims), np.uint8)

    def code(stage: int, table: np.ndarray) -> np.ndarray:
        symbols = dec.decode(table) if n else np.zeros(0, np.int64)
        if symbols.size and (symbols.min() < 0 or symbols.max() >= table.shape[1]):
            raise CoderError("decoded a symbol outside its table")
        return symbols

    for d in range(dims):
        values, _ = code_pixels_exact(stepper.params(d), mixtures, 1, code, with_bits=False,
                                      adapt=_offset(stepper, d))
        out[:, d] = values[:, 0]
        stepper.put(d, torch.from_numpy(out[:, d].astype(np.int64)))
        if progress:
            progress(1)
    return out


class LevelStepper(Protocol):
    """What a gray sequence model gives the coder (and, optionally, ``offsets(d)``: ``(batch,)`` integer
    levels that every component's mean of position ``d`` moves by, called after :meth:`params`; see
    :class:`LevelOffset`)."""

    def params(self, d: int) -> torch.Tensor:
        """``(batch, 10M)`` mixture parameters of position ``d`` (one channel, on the ``2^-16`` grid)."""

    def put(self, d: int, x: torch.Tensor) -> None:
        """The values 0..255 of position ``d``."""


class LevelOffset:
    """A mean stage for :func:`~nlc.coding.exact_tables.code_pixels_exact`: every component's mean of pixel
    ``i`` moved by ``offsets[i]`` whole levels (exact: the means are on the ``2^-10`` grid), the scales kept.
    An integer MAF's base in pixel terms (:mod:`nlc.models.maf_made`)."""

    def __init__(self, offsets: np.ndarray) -> None:
        self.offsets = np.asarray(offsets, np.float64)
        self._inv = np.zeros((0, 0))

    def shift(self, ch: int, weights: np.ndarray, log_scales: np.ndarray, inv_scales: np.ndarray,
              levels: np.ndarray) -> np.ndarray:
        """The means ``levels`` ``(n, M)`` moved by each pixel's offset."""
        self._inv = inv_scales
        return levels + self.offsets[:, None]

    def scales(self, ch: int) -> np.ndarray:
        """The inverse scales given to :meth:`shift`, unchanged."""
        return self._inv

    def observe(self, ch: int, values: np.ndarray) -> None:
        """Nothing to learn."""


def _offset(stepper: LevelStepper, d: int) -> LevelOffset | None:
    """Position ``d``'s :class:`LevelOffset` where the stepper moves its means (``offsets``), else None."""
    offsets = getattr(stepper, "offsets", None)
    return None if offsets is None else LevelOffset(offsets(d))
