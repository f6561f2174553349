"""Checks every sequence codec's tests share (WaveNet, char-RNN): exact set round trips, the file against
the exact model's ``-log2 p``, and the refusal of a truncated file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nlc import container
from nlc.codec import Codec
from nlc.errors import FormatError
from nlc.sets import decode_set, encode_set


def check_round_trip(codec: Codec, items: np.ndarray, coder: str) -> None:
    """``items`` through ``codec`` as a set on ``coder``: decoded exactly, as a sequence-coded file."""
    data, _ = encode_set(items, codec, coder=coder)
    out, header = decode_set(data, codec)
    assert header.coding == "sequence" and np.array_equal(out, items)


def check_rate(codec: Codec, items: np.ndarray) -> None:
    """The payload is at most 0.1% (+ two words) above the coded tables' ``-log2 p``, and those are the exact
    model's own ``-log2 p`` within 0.2%."""
    data, stats = encode_set(items, codec)
    payload = len(container.unpack_set(data)[1]) * 8
    assert stats["model_bits"] <= payload <= stats["model_bits"] * 1.001 + 64
    with torch.no_grad():
        nats = float(codec.model.exact().loss_terms(torch.from_numpy(items))["nll"].sum())
    assert abs(stats["model_bits"] - nats / np.log(2)) < 2e-3 * stats["model_bits"]


def check_truncated_refused(codec: Codec, items: np.ndarray) -> None:
    """A set file cut short is refused as truncated."""
    data, _ = encode_set(items, codec)
    with pytest.raises(FormatError, match="truncated"):
        decode_set(data[:-9], codec)
