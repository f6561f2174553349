"""Sets coded by an autoregressive photo codec: ``nlc compress --set`` / ``nlc decompress`` and the API."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from nlc import container, sets
from nlc.coding.autoregressive import TileGrid, decode_items, encode_items, encode_tiles
from tests.conftest import gradient_image
from tests.test_cli import assert_clean_error, run


def _rgb_items(n: int, h: int, w: int) -> np.ndarray:
    return np.stack([np.asarray(gradient_image(h, w, "RGB", seed=i)) for i in range(n)])


def test_split_items_is_split_of_each_item():
    items = _rgb_items(3, 21, 30)
    grid = TileGrid.for_image(21, 30, 8)
    tiles = grid.split_items(items)
    assert np.array_equal(tiles, np.concatenate([grid.split(a) for a in items]))
    assert np.array_equal(grid.merge_items(tiles), items)
    hs, ws = grid.extents(3)
    assert len(hs) == len(tiles) and np.array_equal(hs[: grid.batch], grid.extents()[0])


@pytest.mark.parametrize("coder", ["range", "ans"])
def test_items_round_trip_across_groups(tiny_codec, coder):
    """Tile groups that straddle image boundaries decode exactly; the information is the images' own."""
    items = _rgb_items(5, 13, 19)  # 4 tiles of 8x8 per image, 20 tiles in groups of 6
    payload, bits = encode_items(tiny_codec.model, 3, items, 8, coder, group=6)
    back = decode_items(tiny_codec.model, 3, 5, 13, 19, 3, 8, coder, payload, group=6)
    assert np.array_equal(back, items)
    one_by_one = sum(encode_tiles(tiny_codec.model, 3, a, 8, coder)[1] for a in items)
    assert bits == pytest.approx(one_by_one, rel=1e-6)
    words = len(payload) * 8 - 32 * 4  # four groups' byte counts
    assert bits <= words <= bits * 1.01 + 4 * 64  # each coder's flush costs at most two words


def test_rgb_folder_round_trip(tiny_home, tmp_path):
    d = tmp_path / "thumbs"
    d.mkdir()
    items = _rgb_items(6, 12, 10)
    names = [f"t{i}.png" for i in range(5)] + ["t5.webp"]
    for name, a in zip(names, items):
        Image.fromarray(a, "RGB").save(d / name, **({"lossless": True} if name.endswith("webp") else {}))
    r = run("compress", "--set", d)
    assert r.exit_code == 0, r.output
    assert "6 images" in r.stderr and "bits/subpixel" in r.stderr
    setfile = tmp_path / "thumbs.nlc"
    header = container.unpack_set(setfile.read_bytes())[0]
    assert (header.coding, header.codec, header.channels, header.count, header.tile) == ("tiles", "tiny", 3, 6, 16)
    assert setfile.read_bytes()[4] == container.SET_VERSION_COMPACT
    out = tmp_path / "out"
    r = run("decompress", setfile, "-o", out)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    for name, a in zip(names, items):
        back = Image.open(out / name)
        assert back.format == ("WEBP" if name.endswith("webp") else "PNG")
        assert np.array_equal(np.asarray(back), a)


@pytest.mark.parametrize("shape", [(7, 9, 11), (4, 10, 6, 3)])
def test_npy_array_round_trip_byte_exact(tiny_home, tmp_path, shape):
    arr = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    src = tmp_path / "data.npy"
    np.save(src, arr)
    r = run("compress", "--set", "--coder", "ans", "--tile", "8", src, "-o", tmp_path / "d.nlc")
    assert r.exit_code == 0, r.output
    out = tmp_path / "out"
    assert run("decompress", tmp_path / "d.nlc", "-o", out).exit_code == 0
    assert (out / "data.npy").read_bytes() == src.read_bytes()


def test_set_file_size_matches_the_model(tiny_home):
    """The payload is the model's -log2 p plus a few words per coder group."""
    items = _rgb_items(40, 16, 16)
    data, stats = sets.encode_set(items, "tiny")
    assert stats["payload_bytes"] * 8 == pytest.approx(stats["model_bits"], rel=0.01, abs=64)
    back, header = sets.decode_set(data)
    assert np.array_equal(back, items) and header.count == 40
    assert stats["model_bits"] / items.size < 8  # the model, not a copy of the bytes


def test_empty_image_set(tiny_home):
    data, _ = sets.encode_set(np.zeros((0, 5, 5, 3), np.uint8), "tiny")
    back, _ = sets.decode_set(data)
    assert back.shape == (0, 5, 5, 3)


def test_mixed_modes_are_refused(tiny_home, tmp_path):
    d = tmp_path / "mixed"
    d.mkdir()
    Image.new("RGB", (8, 8)).save(d / "a.png")
    Image.new("L", (8, 8)).save(d / "b.png")
    assert_clean_error(run("compress", "--set", d, "-o", tmp_path / "s.nlc"), "must not mix image modes", "L and RGB")
    assert not (tmp_path / "s.nlc").exists()


def test_a_set_is_one_file_not_a_folder(tiny_home, tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    Image.new("RGB", (8, 8)).save(d / "a.png")
    (tmp_path / "out").mkdir()
    assert_clean_error(run("compress", "--set", d, "-o", tmp_path / "out", "--force"), "is a folder", "-o SET.nlc")


def test_rgba_images_are_refused(tiny_home, tmp_path):
    d = tmp_path / "alpha"
    d.mkdir()
    Image.new("RGBA", (8, 8)).save(d / "a.png")
    assert_clean_error(run("compress", "--set", d, "-o", tmp_path / "s.nlc"), "a.png", "mode RGBA",
                       "8-bit gray (L) or RGB")


def test_a_flow_codec_codes_no_sets(tiny_home, tmp_path):
    (tiny_home / "codecs" / "tiny-idf.toml").write_text(  # refused before any weights are needed
        'name = "tiny-idf"\narchitecture = "idf"\nweights = "none.safetensors"\ntile = 16\n')
    d = tmp_path / "one"
    d.mkdir()
    Image.new("RGB", (8, 8)).save(d / "a.png")
    assert_clean_error(run("compress", "--set", "-m", "tiny-idf", d, "-o", tmp_path / "s.nlc"),
                       "codes single images only")


def test_absurd_set_header_is_refused(tiny_home):
    data, _ = sets.encode_set(_rgb_items(2, 8, 8), "tiny")
    header, payload = container.unpack_set(data)
    header.count = 1 << 40
    with pytest.raises(container.FormatError, match="absurd dimensions"):
        sets.decode_set(container.pack_set(header, payload))


def test_corrupted_tile_payload_is_a_clean_error(tiny_home, tmp_path):
    src = tmp_path / "d.npy"
    np.save(src, _rgb_items(3, 8, 8))
    assert run("compress", "--set", src, "-o", tmp_path / "d.nlc").exit_code == 0
    data = bytearray((tmp_path / "d.nlc").read_bytes())
    header, payload = container.unpack_set(bytes(data))
    bad = container.pack_set(header, payload[:-3])  # a valid CRC over a cut payload
    (tmp_path / "bad.nlc").write_bytes(bad)
    assert_clean_error(run("decompress", tmp_path / "bad.nlc", "-o", tmp_path / "out"), "bad.nlc",
                       "corrupted payload")
    assert not (tmp_path / "out" / "d.npy").exists()


def test_rate_is_the_same_as_per_image_tiling(tiny_codec):
    """A set of crops of one image costs what the image costs in tiles of the crop size."""
    im = np.asarray(gradient_image(24, 32, "RGB"))
    crops = TileGrid(24, 32, 8, 8).split(im)  # 12 crops of 8x8, row-major
    _, set_bits = encode_items(tiny_codec.model, 3, crops, 8, "range")
    _, image_bits = encode_tiles(tiny_codec.model, 3, im, 8, "range")
    assert set_bits == pytest.approx(image_bits, rel=1e-6)
    assert math.isfinite(set_bits)
