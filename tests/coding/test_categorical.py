"""The categorical (softmax over 256 values) head beside the logistic mixture: coding through the adapter, the
rate against the model's -log2 p, and the refusal of an unknown head."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nlc.coding.autoregressive import decode_tiles, encode_tiles, pixel_coder
from nlc.coding.categorical import code_categorical
from nlc.models.adapter import Causal
from nlc.models.masked import MaskedConv2d


def categorical_model(seed: int = 0) -> Causal:
    torch.manual_seed(seed)
    return Causal(MaskedConv2d(4, 256 * 3, 3, "A"), head="categorical").eval()


@settings(max_examples=12, deadline=None)
@given(st.integers(1, 11), st.integers(1, 11), st.sampled_from([1, 3]), st.sampled_from(["range", "ans"]),
       st.integers(0, 2**31))
def test_a_categorical_model_round_trips(h, w, c, coder, seed):
    model = categorical_model()
    pixels = np.random.default_rng(seed).integers(0, 256, (h, w, c)).astype(np.uint8)
    payload, bits = encode_tiles(model, 1, pixels, tile=6, coder=coder)
    assert np.array_equal(decode_tiles(model, 1, h, w, c, tile=6, coder=coder, payload=payload), pixels)


def test_the_file_is_the_models_rate_and_the_rate_is_its_likelihood():
    model = categorical_model(1)
    pixels = np.random.default_rng(2).integers(0, 256, (16, 16, 3)).astype(np.uint8)
    payload, bits = encode_tiles(model, 1, pixels, tile=16, coder="range")
    assert 0 < len(payload) * 8 - bits < 96  # a group length and the coder's closing words
    x4 = torch.ones(1, 4, 16, 16)
    x4[:, :3] = torch.from_numpy(pixels).permute(2, 0, 1).float() / 127.5 - 1
    with torch.no_grad():
        nats = -float(model.log_likelihood(x4))
    assert bits == pytest.approx(nats / math.log(2), rel=1e-4)  # the tables' floor costs at most 2e-5 bits each


def test_categorical_tables_are_the_softmax_with_the_uniform_floor():
    logits = torch.randn(5, 768)
    tables = []
    _, bits = code_categorical(logits, 1, 3, lambda ch, t: tables.append(t) or np.zeros(5, np.int64))
    probs = torch.softmax(logits[:, :256], 1).numpy()
    assert np.allclose(tables[0], probs * (1 - 2**-16) + 2**-24, rtol=1e-5)
    assert bits is not None and bits.shape == (5,)
    assert pixel_coder(categorical_model()) is code_categorical


def test_an_unknown_head_is_refused():
    with pytest.raises(ValueError, match=r"^unknown head 'gaussian' \(one of logistic, categorical\)$"):
        Causal(MaskedConv2d(4, 8, 3, "A"), head="gaussian")
