"""The flow family: integer discrete flows (:mod:`nlc.coding.flow`), single images only."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..coding import flow
from ..errors import InputError
from ..progress import progress_bar
from ..threads import torch_threads
from .base import LoadedCodec, Unsupported

if TYPE_CHECKING:
    from ..container import Header


def _rgb(pixels: np.ndarray) -> np.ndarray:
    """A flow codes three channels: a gray image goes in as R = G = B."""
    return np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels


class Flow(Unsupported):
    """An image mapped to integer latents by an exactly invertible flow; the latents coded under its priors."""

    name = "flow"

    def encode_pixels(self, codec: LoadedCodec, pixels: np.ndarray, tile: int, coder: str,
                      progress: bool) -> tuple[bytes, float, dict]:
        """The image's latents with the range coder; the header records the thread count (conv sums are split
        by thread, so the decoder uses the same)."""
        if coder != "range":
            raise InputError(f"codec {codec.spec.name!r} codes with the range coder only")
        h, w = pixels.shape[:2]
        with progress_bar(flow.progress_steps(codec.model, h, w, tile), "encode", progress) as bar:
            payload, bits = flow.encode_flow(codec.model, _rgb(pixels), tile, bar)
        return payload, bits, {"threads": torch.get_num_threads()}

    def decode_pixels(self, codec: LoadedCodec, header: "Header", payload: bytes, progress: bool) -> np.ndarray:
        """The image, with the encoder's thread count."""
        threads = int(header.extra.get("threads", torch.get_num_threads()))
        steps = flow.progress_steps(codec.model, header.height, header.width, header.tile)
        with torch_threads(threads), progress_bar(steps, "decode", progress) as bar:
            rgb = flow.decode_flow(codec.model, payload, header.height, header.width, header.tile, bar)
        return rgb[:, :, :1] if header.model_channels == 1 else rgb


FLOW = Flow()
