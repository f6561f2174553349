"""Exact arithmetic through attention (PixelSNAIL's exact twin is checked with the others in test_exact.py)
and the ``pixelsnail-exact`` codec (with ``gated-pixelcnn-exact``'s round trip)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import nlc
from nlc.models.attention import MAX_EXACT_POSITIONS, clamp_qkv, exact_attend


def _grid(*shape: int, scale: float = 3.0, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.round(torch.randn(*shape, generator=g, dtype=torch.float64) * scale * 2**16) / 2**16


def test_exact_attention_gives_the_same_rows_whole_in_query_blocks_and_one_query_at_a_time():
    q, k, v = (clamp_qkv(_grid(2, 3, 40, 16, scale=60.0, seed=s)) for s in range(3))  # some beyond the clamp
    whole = exact_attend(q, k, v, first=0)
    blocks = torch.cat([exact_attend(q[:, :, i : i + 7], k[:, :, : i + 7], v[:, :, : i + 7], first=i)
                        for i in range(0, 40, 7)], 2)
    assert torch.equal(blocks, whole)
    for i in (0, 1, 17, 39):
        assert torch.equal(exact_attend(q[:, :, i : i + 1], k[:, :, : i + 1], v[:, :, : i + 1]), whole[:, :, i : i + 1])
    assert torch.equal(whole * 2**16, (whole * 2**16).round())  # on the grid
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert float((ref - whole).abs().max()) < 5e-3  # softmax attention, its scores looked up in steps of 2^-10


def test_exact_attention_refuses_what_it_cannot_sum_exactly():
    with pytest.raises(ValueError, match="power-of-4"):
        exact_attend(_grid(1, 2, 8), _grid(1, 2, 8), _grid(1, 2, 8))
    k = torch.zeros(1, MAX_EXACT_POSITIONS + 1, 16, dtype=torch.float64)
    with pytest.raises(ValueError, match=f"at most {MAX_EXACT_POSITIONS} positions"):
        exact_attend(_grid(1, 1, 16), k, k)


@pytest.mark.parametrize("mode, shape", [("L", (70, 130)), ("RGB", (65, 66, 3))])
def test_gated_exact_files_of_several_tiles_round_trip(mode, shape):
    """``gated-pixelcnn-exact`` decodes a row per compiled call (adaptive_steps.decode_gated_row): gray and
    RGB images of several 64x64 tiles, the last ones cut short, against its parallel-pass encoder."""
    arr = np.random.default_rng(3).integers(0, 256, shape).astype(np.uint8)
    im = Image.fromarray(arr, mode)
    data, _ = nlc.encode_image(im, "gated-pixelcnn-exact", device="cpu", fallback=False)
    out, _ = nlc.decode_image(data, device="cpu")
    assert out.tobytes() == im.tobytes()


@pytest.mark.parametrize("codec, coder", [("pixelsnail-exact", None), ("pixelsnail-exact", "ans"),
                                          ("gated-pixelcnn-exact", None)])
def test_pixelsnail_and_gated_exact_files_round_trip(codec, coder):
    arr = np.random.default_rng(8).integers(0, 256, (9, 7, 3)).astype(np.uint8)
    im = Image.fromarray(arr, "RGB")
    data, stats = nlc.encode_image(im, codec, coder=coder, device="cpu", fallback=False)
    out, _ = nlc.decode_image(data, device="cpu")
    assert nlc.read_header(data).codec == codec
    assert out.tobytes() == im.tobytes()
    assert "cpu" not in nlc.read_header(data).extra  # exact files do not depend on the CPU kind
    payload_bits = 8 * (len(data) - stats["header_bytes"])
    assert stats["model_bits"] <= payload_bits < stats["model_bits"] + 3 * 32
