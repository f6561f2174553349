"""The autoregressive model zoo: one interface, exact steppers, causality, blind spot, round trips."""

import math

import numpy as np
import pytest
import torch

from nlc.coding.autoregressive import decode_tiles, encode_tiles
from nlc.models.pixelcnnpp import widen_vertical
from nlc.registry import build_model

TINY = {
    "pixelcnnpp": dict(channels=8, levels=2, nr_resnet=1, h_layers=1, mixtures=3),
    "pixelcnn": dict(channels=8, layers=2, first_kernel=3, mixtures=3),
    "gated-pixelcnn": dict(channels=8, layers=2, skip_channels=8, mixtures=3),
    "pixelsnail": dict(channels=8, blocks=2, res_layers=1, first_kernel=3, key_channels=4, heads=2,
                       mixtures=3),
    # PixelCNN++ with a vertical stream wider than its horizontal one
    "pixelcnnpp:wide": dict(channels=8, levels=2, nr_resnet=1, h_layers=1, mixtures=3, v_channels=12),
}


def tiny(arch: str, seed: int = 0) -> torch.nn.Module:
    """A small random model of ``arch`` (a key of ``TINY``): every network weight nudged off its (often zero) start,
    the neighbourhood skip left as the classical predictor it starts as."""
    torch.manual_seed(seed)
    m = build_model(arch.split(":")[0], TINY[arch])
    with torch.no_grad():
        for name, p in m.named_parameters():
            if not name.startswith("skip."):
                p.add_(0.05 * torch.randn_like(p))
    return m.eval()


def changed_params(m: torch.nn.Module, r: int, c: int, size: int = 10) -> torch.Tensor:
    """``(size, size)`` booleans: which pixels' parameters move when pixel ``(r, c)`` changes."""
    torch.manual_seed(1)
    x = torch.rand(1, 3, size, size) * 2 - 1
    y = x.clone()
    y[:, :, r, c] = -x[:, :, r, c]
    with torch.no_grad():
        return (m(x) - m(y)).abs().sum(dim=(0, 1)) > 0


@pytest.mark.parametrize("arch", TINY)
def test_stepper_matches_parallel_forward(arch):
    m = tiny(arch)
    x = torch.rand(2, 3, 9, 11) * 2 - 1
    with torch.no_grad():
        full = m(x)
    st = m.stepper(2, 9, 11)
    st.fill(m.with_ones(x))
    for r in range(9):
        st.start_row(r)
        for c in range(11):
            assert torch.allclose(st.params(c), full[:, :, r, c], atol=1e-5), (r, c)


@pytest.mark.parametrize("arch", TINY)
def test_parameters_depend_only_on_earlier_pixels(arch):
    moved = changed_params(tiny(arch), 5, 4)
    order = torch.arange(100).view(10, 10)
    assert not moved[order <= 5 * 10 + 4].any()  # nothing at or before (5, 4) moved
    assert moved[5, 5] and moved[6, 4]  # the next pixel and the one below see it


def test_pixelcnn_has_the_blind_spot_and_the_others_do_not():
    # (6, 2) reads row 5 only up to column 3 through the masked stack, whatever its depth;
    # the Gated PixelCNN's vertical stack reaches (5, 4), and PixelSNAIL's attention every earlier pixel.
    assert not changed_params(tiny("pixelcnn"), 5, 4)[6, 2]
    assert changed_params(tiny("gated-pixelcnn"), 5, 4)[6, 2]
    assert changed_params(tiny("pixelsnail"), 0, 9)[9, 0]


@pytest.mark.parametrize("coder", ["range", "ans"])
@pytest.mark.parametrize("arch", TINY)
def test_tiles_round_trip_and_cost_their_likelihood(arch, coder):
    m = tiny(arch, seed=2)
    rng = np.random.default_rng(0)
    # mid-gray and smooth, so an untrained model keeps its symbols out of the tables' floored tails
    img = (128 + np.cumsum(rng.integers(-2, 3, (13, 17, 3)), axis=1)).clip(0, 255).astype(np.uint8)
    payload, bits = encode_tiles(m, 3, img, 8, coder)
    assert np.array_equal(decode_tiles(m, 3, 13, 17, 3, 8, coder, payload), img)
    whole = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1
    # the tiles are coded independently: compare with the likelihood of each tile on its own
    ideal = 0.0
    with torch.no_grad():
        for y in range(0, 13, 8):
            for x in range(0, 17, 8):
                ideal -= m.log_likelihood(whole[:, :, y : y + 8, x : x + 8]).sum().item() / math.log(2)
    assert abs(bits - ideal) / ideal < 5e-4
    assert abs(len(payload) * 8 - bits) < 0.001 * bits + 128  # a coder state and a u32 length


def test_widening_the_vertical_stream_keeps_the_function_and_trains_the_new_channels():
    m = tiny("pixelcnnpp")
    wide = widen_vertical(m, 12)
    assert wide.config.vertical_width == 12 and wide.config.channels == 8
    x = torch.rand(2, 3, 9, 11) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(wide(x), m(x), atol=1e-6, rtol=0)
    wide.log_likelihood(x).sum().backward()
    # the zero weights from the added channels into the old ones get a gradient, so training opens them
    assert wide.h_u.lin.weight.grad[:, 8:].abs().sum() > 0
    assert wide.up_blocks[0][0].conv1.weight.grad[:8, 8:].abs().sum() > 0
    with pytest.raises(ValueError, match="width 4 is below the vertical stream's 8 channels"):
        widen_vertical(m, 4)


@pytest.mark.parametrize("name", ["pixelcnn", "gated-pixelcnn", "pixelsnail"])
def test_shipped_zoo_codecs_round_trip(name):
    """The committed weights match their registry hash and code a small image exactly, near its likelihood."""
    from nlc.api import Codec, decode_image, encode_image
    from tests.conftest import gradient_image, same_pixels

    codec = Codec.load(name)
    im = gradient_image(12, 20)
    data, stats = encode_image(im, codec, fallback=False)
    out, _ = decode_image(data, codec=codec)
    assert same_pixels(out, im)
    assert abs((len(data) - stats["header_bytes"]) * 8 - stats["model_bits"]) < 0.01 * stats["model_bits"] + 64
