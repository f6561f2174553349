"""Entropy coders behind one interface: :class:`RangeQueue` (FIFO) and :class:`AnsStack` (LIFO).

Both code batches of symbols from categorical tables: ``probs`` is a
``(n, K)`` float array whose rows need not be normalised; constriction rescales
each row to fixed-point probabilities with ``precision`` bits and guarantees
every symbol a non-zero probability, so any symbol can be coded.

A codec written as a push/pop pair works on either: pushes on a queue come out
in the same order, pushes on a stack come out reversed (:attr:`Coder.lifo`).
"""

from __future__ import annotations

import constriction
import numpy as np

from . import range_kernels

PRECISION = 24  # constriction's default probability precision for 32-bit words
_FAMILY = constriction.stream.model.Categorical(perfect=False)
_BERNOULLI = constriction.stream.model.Bernoulli(perfect=False)


class CoderError(ValueError):
    """The compressed data cannot be decoded (truncated or corrupted)."""


class Coder:
    """Common interface of the two coders."""

    name: str = ""
    lifo: bool = False

    def __init__(self, data: bytes | None = None) -> None:  # pragma: no cover - interface
        """An empty coder, or one reading ``data``."""

    def encode(self, symbols: np.ndarray, probs: np.ndarray) -> None:  # pragma: no cover - interface
        """Code ``symbols`` (``(n,)`` ints) under the rows of ``probs`` (``(n, K)``)."""
        raise NotImplementedError

    def decode(self, probs: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        """Decode ``len(probs)`` symbols."""
        raise NotImplementedError

    def to_bytes(self) -> bytes:  # pragma: no cover - interface
        """The compressed words, little-endian."""
        raise NotImplementedError

    def num_bits(self) -> int:  # pragma: no cover - interface
        """Size of the compressed data so far in bits."""
        raise NotImplementedError


def _words(data: bytes) -> np.ndarray:
    if len(data) % 4:
        raise CoderError("compressed payload is not a whole number of 32-bit words")
    return np.frombuffer(data, dtype="<u4").astype(np.uint32)


def _as_probs(probs: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(probs, dtype=np.float64)


def _as_vector(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float64).reshape(-1))


class RangeQueue(Coder):
    """Range coder (FIFO): symbols decode in the order they were encoded."""

    name, lifo = "range", False

    def __init__(self, data: bytes | None = None) -> None:
        if data is None:
            self._enc = constriction.stream.queue.RangeEncoder()
            self._dec = None
        else:
            self._enc = None
            self._dec = constriction.stream.queue.RangeDecoder(_words(data))

    def encode(self, symbols: np.ndarray, probs: np.ndarray) -> None:
        """Append symbols to the queue."""
        self._enc.encode(np.ascontiguousarray(symbols, dtype=np.int32), _FAMILY, _as_probs(probs))

    def decode(self, probs: np.ndarray) -> np.ndarray:
        """Take the next ``len(probs)`` symbols from the queue."""
        if self._dec is None:
            raise CoderError("this range queue encodes; it has no data to decode")
        try:
            return self._dec.decode(_FAMILY, _as_probs(probs))
        except Exception as e:  # constriction raises on exhausted or invalid data
            raise CoderError(f"range decoder failed: {e}") from e

    def to_bytes(self) -> bytes:
        """Compressed words."""
        return self._enc.get_compressed().astype("<u4").tobytes()

    def num_bits(self) -> int:
        """Compressed size in bits (whole words)."""
        return self._enc.num_bits()


class CompiledRangeQueue(RangeQueue):
    """:class:`RangeQueue` through the compiled kernels of :mod:`nlc.coding.range_kernels`: the same
    words, and state arrays (``enc`` or ``dec``, and ``words``) that a compiled step loop codes with
    directly (:mod:`nlc.coding.adaptive_steps`)."""

    def __init__(self, data: bytes | None = None) -> None:
        if data is None:
            self.enc, self.dec = range_kernels.encoder_state(), None
            self.words = np.zeros(1024, np.uint32)
        else:
            self.words = _words(data)
            self.enc, self.dec = None, range_kernels.decoder_state(self.words)

    def encode(self, symbols: np.ndarray, probs: np.ndarray) -> None:
        """Append symbols to the queue."""
        symbols = np.ascontiguousarray(symbols, dtype=np.int64).reshape(-1)
        words = range_kernels.encode_rows(self.enc, self.words, symbols, _as_probs(probs))
        if len(words) == 0:
            raise ValueError("a symbol outside its table, or a table whose sum is not a positive number")
        self.words = words

    def decode(self, probs: np.ndarray) -> np.ndarray:
        """Take the next ``len(probs)`` symbols from the queue."""
        if self.dec is None:
            raise CoderError("this range queue encodes; it has no data to decode")
        out = range_kernels.decode_rows(self.dec, self.words, _as_probs(probs))
        if (out < 0).any():
            raise CoderError("range decoder failed: the data is not what an encoder wrote")
        return out.astype(np.int32)

    def encode_shared(self, symbols: np.ndarray, probs: np.ndarray) -> None:
        """Append ``symbols`` all under one table ``probs`` ``(K,)``: the words of :meth:`encode` with the
        row repeated, at the cost of quantizing it once."""
        symbols = np.ascontiguousarray(symbols, dtype=np.int64).reshape(-1)
        words = range_kernels.encode_shared(self.enc, self.words, symbols, _as_vector(probs))
        if len(words) == 0:
            raise ValueError("a symbol outside its table, or a table whose sum is not a positive number")
        self.words = words

    def decode_shared(self, probs: np.ndarray, n: int) -> np.ndarray:
        """Take the next ``n`` symbols, all coded under the one table ``probs`` (:meth:`encode_shared`)."""
        if self.dec is None:
            raise CoderError("this range queue encodes; it has no data to decode")
        out = range_kernels.decode_shared(self.dec, self.words, _as_vector(probs), n)
        if (out < 0).any():
            raise CoderError("range decoder failed: the data is not what an encoder wrote")
        return out

    def to_bytes(self) -> bytes:
        """Compressed words."""
        return range_kernels.finished_words(self.enc, self.words).astype("<u4").tobytes()

    def num_bits(self) -> int:
        """Compressed size in bits (whole words)."""
        return 32 * len(range_kernels.finished_words(self.enc, self.words))


class AnsStack(Coder):
    """Asymmetric numeral systems (LIFO): the last symbols pushed are popped first.

    ``data`` may also seed an encoder, which is what bits-back coding needs.
    """

    name, lifo = "ans", True

    def __init__(self, data: bytes | None = None) -> None:
        if data is None:
            self._ans = constriction.stream.stack.AnsCoder()
        else:
            self._ans = constriction.stream.stack.AnsCoder(_words(data))
        self.popped_bits = 0  # bits taken off the stack by decodes so far (what bits-back borrows)

    def _pop(self, *args) -> np.ndarray:
        before = self._ans.num_valid_bits()
        try:
            out = self._ans.decode(*args)
        except Exception as e:
            raise CoderError(f"ANS decoder failed: {e}") from e
        self.popped_bits += max(0, before - self._ans.num_valid_bits())
        return out

    def encode_gaussian(self, symbols: np.ndarray, means: np.ndarray, stds: np.ndarray, half: int) -> None:
        """Push integers in ``[-half, half]`` under Gaussians quantized to unit bins (constriction's
        ``QuantizedGaussian``; every symbol of the range keeps a non-zero probability)."""
        model = constriction.stream.model.QuantizedGaussian(-half, half)
        self._ans.encode_reverse(np.ascontiguousarray(symbols, dtype=np.int32), model,
                                 _as_vector(means), _as_vector(stds))

    def decode_gaussian(self, means: np.ndarray, stds: np.ndarray, half: int) -> np.ndarray:
        """Pop integers in ``[-half, half]``: the inverse of :meth:`encode_gaussian`."""
        model = constriction.stream.model.QuantizedGaussian(-half, half)
        return self._pop(model, _as_vector(means), _as_vector(stds))

    def encode_bernoulli(self, bits: np.ndarray, p_one: np.ndarray) -> None:
        """Push 0/1 symbols, each with its probability of a 1."""
        self._ans.encode_reverse(np.ascontiguousarray(bits, dtype=np.int32), _BERNOULLI, _as_vector(p_one))

    def decode_bernoulli(self, p_one: np.ndarray) -> np.ndarray:
        """Pop 0/1 symbols: the inverse of :meth:`encode_bernoulli`."""
        return self._pop(_BERNOULLI, _as_vector(p_one))

    def is_empty(self) -> bool:
        """Whether the stack holds no data (a complete decode must end here)."""
        return self._ans.is_empty()

    def num_valid_bits(self) -> int:
        """Bits of information on the stack (finer than :meth:`num_bits`)."""
        return self._ans.num_valid_bits()

    def encode(self, symbols: np.ndarray, probs: np.ndarray) -> None:
        """Push symbols so that :meth:`decode` returns them in the given order."""
        self._ans.encode_reverse(np.ascontiguousarray(symbols, dtype=np.int32), _FAMILY, _as_probs(probs))

    def decode(self, probs: np.ndarray) -> np.ndarray:
        """Pop ``len(probs)`` symbols."""
        return self._pop(_FAMILY, _as_probs(probs))

    def to_bytes(self) -> bytes:
        """Compressed words."""
        return self._ans.get_compressed().astype("<u4").tobytes()

    def num_bits(self) -> int:
        """Compressed size in bits (whole words)."""
        return self._ans.num_bits()


CODERS: dict[str, type[Coder]] = {"range": RangeQueue, "ans": AnsStack}


def make_coder(name: str, data: bytes | None = None) -> Coder:
    """A coder by name (``"range"`` or ``"ans"``), empty or reading ``data``."""
    try:
        return CODERS[name](data)
    except KeyError:
        raise ValueError(f"unknown coder {name!r} (known: {', '.join(CODERS)})") from None
