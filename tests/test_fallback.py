"""The lossless-WebP fallback: pixels a photo model codes badly (a screenshot) are kept as lossless WebP
when that is smaller, decode exactly without the model, and the CLI says so; otherwise the model's
coding is kept, byte for byte what ``fallback=False`` writes."""

import io
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw

from nlc import api, container
from nlc.api import decode_image, encode_image
from nlc.cli import main
from nlc.errors import FormatError
from tests.conftest import same_pixels


def screenshot(mode: str = "RGB") -> Image.Image:
    im = Image.new("RGB", (72, 40), (255, 255, 255))
    d = ImageDraw.Draw(im)
    for i in range(3):
        d.text((2, 2 + 12 * i), f"line {i}: nlc", fill=(10, 10, 10))
    d.rectangle((50, 4, 68, 30), fill=(30, 120, 200))
    if mode == "RGBA":
        im.putalpha(Image.fromarray(np.tile(np.arange(72, dtype=np.uint8) * 3, (40, 1))))
    return im.convert(mode)


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "LA"])
def test_screenshot_goes_to_webp_and_back_exactly(tiny_codec, mode):
    im = screenshot(mode)
    data, stats = encode_image(im, tiny_codec)
    model_only, model_stats = encode_image(im, tiny_codec, fallback=False)
    assert stats["pixels_coder"] == "webp" and model_stats["pixels_coder"] == "model"
    # WebP's rate is low, and the untrained model's estimate far above it: the model was not run
    assert stats["model_payload_bytes"] is None and stats["model_bits"] is None
    assert stats["model_estimate"] > api.SKIP_MARGIN * len(data) * 8 / model_stats["subpixels"]
    assert len(data) < len(model_only)
    header = container.unpack(data)[0]
    assert header.extra == {"pixels": "webp"}
    out, _ = decode_image(data, codec=tiny_codec)
    assert same_pixels(out, im)


def test_webp_kept_after_the_model_ran_where_no_estimate_is_made(tiny_codec, monkeypatch):
    monkeypatch.setattr(api, "SKIP_CHECK_RATE", 0.0)  # never estimate: code with the model, then compare
    im = screenshot()
    data, stats = encode_image(im, tiny_codec)
    model_only, model_stats = encode_image(im, tiny_codec, fallback=False)
    assert stats["pixels_coder"] == "webp" and stats["model_payload_bytes"] == model_stats["model_payload_bytes"]
    assert stats["model_bits"] == model_stats["model_bits"] and len(data) < len(model_only)


def test_no_estimate_for_an_image_of_no_more_tiles_than_the_estimate_samples(tiny_codec, monkeypatch):
    from nlc.coding import autoregressive

    calls = []
    monkeypatch.setattr(autoregressive, "tile_log_probs", lambda *a, **k: calls.append(a) or np.zeros(1))
    im = screenshot().crop((0, 0, 40, 32))  # 3 x 2 tiles of 16: an estimate would see them all
    data, stats = encode_image(im, tiny_codec)
    model_only, model_stats = encode_image(im, tiny_codec, fallback=False)
    assert calls == [] and "model_estimate" not in stats
    assert stats["model_payload_bytes"] == model_stats["model_payload_bytes"] == len(container.unpack(model_only)[1])
    assert len(data) <= len(model_only)
    assert same_pixels(decode_image(data, codec=tiny_codec)[0], im)


def test_rate_estimate_is_the_model_rate_when_it_sees_every_tile(tiny_codec):
    import math

    import torch

    from nlc.coding.autoregressive import TileGrid, estimate_rate
    from tests.conftest import gradient_image

    pixels = np.asarray(gradient_image(30, 27))  # 2 x 2 tiles of 16 (partial ones): the 8-tile sample is all
    grid = TileGrid.for_image(30, 27, 16)
    tiles = torch.from_numpy(grid.split(pixels)).permute(0, 3, 1, 2).float() / 127.5 - 1
    hs, ws = grid.extents()
    with torch.no_grad():  # partial tiles cropped to their pixels (the codec pads them: the U-net's strides differ)
        nats = sum(-float(tiny_codec.model.log_likelihood(tiles[i : i + 1, :, :h, :w]).sum())
                   for i, (h, w) in enumerate(zip(hs, ws)))
    estimate = estimate_rate(tiny_codec.model, tiny_codec.mixtures, pixels, 16)
    assert estimate == pytest.approx(nats / math.log(2) / pixels.size, rel=1e-3)
    assert estimate_rate(tiny_codec.model, tiny_codec.mixtures, pixels, 16, sample=1) != pytest.approx(estimate)


def test_model_coding_kept_where_it_is_smaller(tiny_codec, monkeypatch):
    im = screenshot()
    model_only, _ = encode_image(im, tiny_codec, fallback=False)
    monkeypatch.setattr(api, "encode_webp", lambda pixels: b"\0" * (len(model_only) + 1))
    data, stats = encode_image(im, tiny_codec)
    assert stats["pixels_coder"] == "model" and data == model_only


def test_webp_pixels_decode_without_the_model_and_bad_coders_are_refused(tiny_codec):
    data, _ = encode_image(screenshot(), tiny_codec)
    h, model, plane = container.unpack(data)
    h.codec, h.weights_sha256 = "gone", "00" * 32  # no such codec: WebP pixels need none
    out, _ = decode_image(container.pack(h, model, plane))
    assert same_pixels(out, screenshot())
    h.extra = {"pixels": "jpeg"}
    with pytest.raises(FormatError, match="unknown pixel coder 'jpeg'"):
        decode_image(container.pack(h, model, plane))
    h.extra = {"pixels": "webp"}
    with pytest.raises(FormatError, match="corrupted WebP pixels"):
        decode_image(container.pack(h, model[:40], plane))


def test_cli_reports_the_fallback_and_a_larger_lossy_input(tmp_path, tiny_home):
    shot = tmp_path / "shot.png"
    screenshot().save(shot)
    run = CliRunner().invoke
    r = run(main, ["compress", str(shot)])
    assert r.exit_code == 0 and "pixels as lossless WebP: the model, estimated at" in r.stderr, r.output
    info = json.loads(run(main, ["info", "--json", str(tmp_path / "shot.png.nlc")]).stdout)
    assert info["decodes_on"].startswith("any machine (pixels in lossless WebP")
    r = run(main, ["verify", str(tmp_path / "shot.png.nlc"), "--originals"])
    assert r.exit_code == 0 and "codec tiny (pixels as lossless WebP)" in r.stdout and "same pixels" in r.stdout
    r = run(main, ["compress", "--no-fallback", str(shot), "-o", str(tmp_path / "model.nlc")])
    assert r.exit_code == 0 and "WebP" not in r.stderr and "bits/subpixel" in r.stderr
    jpeg = tmp_path / "photo.jpg"
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(buf, "JPEG", quality=20)
    jpeg.write_bytes(buf.getvalue())
    r = run(main, ["compress", str(jpeg)])
    assert r.exit_code == 0 and f"larger than the {len(buf.getvalue())}-byte input (a JPEG may be lossy" in r.stderr


def test_images_wider_than_webp_allows_keep_the_model(tiny_codec):
    im = Image.new("RGB", (16384, 2), (255, 255, 255))  # WebP holds at most 16383 pixels a side
    data, stats = encode_image(im, tiny_codec, tile=8)
    assert stats["pixels_coder"] == "model"
    assert same_pixels(decode_image(data, codec=tiny_codec)[0], im)


def test_webp_output_refused_beyond_its_size_limit():
    from nlc.errors import InputError
    from nlc.images import output_format

    assert output_format("x.webp", "RGB", None, (16383, 16383)) == "WEBP"
    with pytest.raises(InputError, match="at most 16383 pixels a side .this image is 16384x2"):
        output_format("x.webp", "RGB", None, (16384, 2))


def test_a_cheap_webp_stops_the_model_coding_beside_it(tiny_codec, monkeypatch):
    """WebP runs beside the model; once it shows a rate below SKIP_CHECK_RATE, the model's coding stops at
    its next row and the estimate decides, as if WebP had run first: the same file."""
    import threading
    import time

    from nlc.progress import Superseded

    im = screenshot().resize((144, 80))
    reference, _ = encode_image(im, tiny_codec)
    family = type(tiny_codec.family)
    webp_done, outcomes = threading.Event(), []
    real_webp, real_encode = api.encode_webp, family.encode_pixels

    def webp(pixels):
        out = real_webp(pixels)
        webp_done.set()
        return out

    def watched(self, *args):  # starts coding once WebP is done: its first row stops it
        webp_done.wait(10)
        time.sleep(0.05)
        try:
            out = real_encode(self, *args)
        except Superseded:
            outcomes.append("stopped")
            raise
        outcomes.append("finished")
        return out

    monkeypatch.setattr(api, "encode_webp", webp)
    monkeypatch.setattr(family, "encode_pixels", watched)
    data, stats = encode_image(im, tiny_codec)
    assert data == reference and stats["pixels_coder"] == "webp" and "model_estimate" in stats
    assert outcomes == ["stopped"]


def test_bars_made_within_abort_when_stop_and_others_do_not():
    from nlc.progress import Superseded, abort_when, progress_bar

    flag = []
    with abort_when(lambda: bool(flag)):
        with progress_bar(10, "x", False) as inside:
            inside(1)
            flag.append(1)
            with pytest.raises(Superseded):
                inside(1)
    with progress_bar(10, "x", False) as outside:
        outside(1)  # made outside the block: never checks
