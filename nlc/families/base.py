"""What every codec family implements (:class:`Family`), what it is given (:class:`LoadedCodec`), and the
refusals a family inherits for what it does not code (:class:`Unsupported`)."""

from __future__ import annotations

import importlib.metadata
import time
import zlib
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from .. import container
from ..coding.coders import PRECISION
from ..errors import CodecError
from ..registry import CodecSpec

if TYPE_CHECKING:
    from ..container import Header, SetHeader


class LoadedCodec(Protocol):
    """What a family needs of a loaded codec (:class:`nlc.codec.Codec`)."""

    spec: CodecSpec

    @property
    def model(self) -> Any: ...  # a torch module of the family's kind (a stepped model, a flow, a VAE)

    @property
    def device(self) -> str: ...

    @property
    def mixtures(self) -> int: ...

    @property
    def bits(self) -> int: ...

    @property
    def shape(self) -> tuple[int, int]: ...

    def coding(self, coder: str | None, tile: int | None) -> tuple[str, int]: ...


class Family(Protocol):
    """What a codec family does; :class:`Unsupported` gives the refusals a family inherits."""

    name: str
    set_only: bool  # codes sets, never single images
    set_coding: str  # the set header's ``coding`` of this family's sets ("" for none)
    set_modes: tuple[str, ...]  # image modes a set of this family holds

    def estimate_rate(self, codec: LoadedCodec, pixels: np.ndarray, tile: int) -> float | None:
        """A quick estimate of the bits per sub-pixel of ``(H, W, C)`` pixels, or ``None`` if there is none."""

    def encode_pixels(self, codec: LoadedCodec, pixels: np.ndarray, tile: int, coder: str,
                      progress: bool) -> tuple[bytes, float, dict]:
        """An image's ``(H, W, C)`` uint8 pixels to ``(payload, model bits, header extra)``."""

    def decode_pixels(self, codec: LoadedCodec, header: "Header", payload: bytes, progress: bool) -> np.ndarray:
        """The ``(H, W, C)`` pixels of a payload that :meth:`encode_pixels` wrote under ``header``."""

    def encode_set(self, codec: LoadedCodec, items: np.ndarray, source: dict, progress: bool,
                   coder: str | None, tile: int | None) -> tuple[bytes, dict]:
        """``(N, H, W[, 3])`` uint8 items to the bytes of a set file and statistics."""

    def decode_set(self, codec: LoadedCodec, header: "SetHeader", payload: bytes, progress: bool) -> np.ndarray:
        """The items of a set file's payload that :meth:`encode_set` wrote under ``header``."""


class Unsupported:
    """The refusals of a family that codes only images or only sets."""

    name = ""
    set_only = False
    set_coding = ""
    set_modes: tuple[str, ...] = ()

    def estimate_rate(self, codec: LoadedCodec, pixels: np.ndarray, tile: int) -> float | None:
        """No estimate."""
        return None

    def encode_pixels(self, codec: LoadedCodec, pixels: np.ndarray, tile: int, coder: str,
                      progress: bool) -> tuple[bytes, float, dict]:
        """Refused: this family codes sets only."""
        raise CodecError(f"codec {codec.spec.name!r} codes sets only (nlc compress --set, or a *-fmnist set file)")

    def decode_pixels(self, codec: LoadedCodec, header: "Header", payload: bytes, progress: bool) -> np.ndarray:
        """Refused: this family codes sets only."""
        raise CodecError(f"codec {codec.spec.name!r} codes sets only, and this file is a single image")

    def encode_set(self, codec: LoadedCodec, items: np.ndarray, source: dict, progress: bool,
                   coder: str | None, tile: int | None) -> tuple[bytes, dict]:
        """Refused: this family codes single images only."""
        raise CodecError(f"codec {codec.spec.name!r} codes single images only; a set takes a latent-variable codec "
                         "(the *-fmnist codecs) or an autoregressive one (pixelcnnpp, pixelsnail, ...)")

    def decode_set(self, codec: LoadedCodec, header: "SetHeader", payload: bytes, progress: bool) -> np.ndarray:
        """Refused: this family codes single images only."""
        raise CodecError(f"codec {codec.spec.name!r} codes single images only, and this file is a set")


def stepped_set_file(codec: LoadedCodec, items: np.ndarray, payload: bytes, *, coding: str, coder: str, bits: int,
                     scale: int, source: dict, model_bits: float, started: float) -> tuple[bytes, dict]:
    """The set file of ``items`` whose payload a family wrote in one coder stream, one 28x28-style gray
    channel, no latent grid and no tiles (the sequence and set-flow families), and its statistics
    (``started``: the ``time.perf_counter()`` at which coding began)."""
    cfg = codec.model.config
    header = container.SetHeader(
        codec=codec.spec.name, weights_sha256=codec.spec.sha256,
        constriction=importlib.metadata.version("constriction"), torch=torch.__version__, device="cpu",
        count=len(items), height=cfg.height, width=cfg.width, bits=bits, scale=scale,
        pixels_crc32=zlib.crc32(np.ascontiguousarray(items).tobytes()), schedule=[], source=source,
        coder=coder, precision=PRECISION, threads=1, coding=coding, channels=1, tile=0, group=0)
    data = container.pack_set(header, payload)
    return data, {"bytes": len(data), "payload_bytes": len(payload), "header_bytes": len(data) - len(payload),
                  "model_bits": model_bits, "seconds": time.perf_counter() - started}
