"""Property tests: decode(encode(x)) == x for random images of every mode, size and content."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from nlc.api import decode_image, encode_image, read_header
from nlc.errors import CodecError
from nlc.registry import sha256_file
from tests.conftest import gradient_image, same_pixels

MODES = ["RGB", "L", "RGBA", "LA", "P", "1"]


@st.composite
def images(draw):
    h = draw(st.integers(1, 32))
    w = draw(st.integers(1, 32))
    mode = draw(st.sampled_from(MODES))
    kind = draw(st.sampled_from(["noise", "flat", "gradient"]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if kind == "gradient":
        return gradient_image(h, w, mode, seed)
    if kind == "flat":
        rgba = np.broadcast_to(rng.integers(0, 256, 4, dtype=np.uint8), (h, w, 4)).copy()
    else:
        rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    im = Image.fromarray(rgba, "RGBA")
    if mode == "P":
        return im.convert("RGB").quantize(draw(st.integers(2, 256)))
    return im.convert(mode)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(im=images(), coder=st.sampled_from(["range", "ans"]), tile=st.sampled_from([8, 13, 16, 32]))
def test_round_trip_any_image(tiny_codec, im, coder, tile):
    data, stats = encode_image(im, tiny_codec, coder=coder, tile=tile, fallback=False)
    out, _ = decode_image(data, codec=tiny_codec)
    assert same_pixels(out, im)


@pytest.mark.parametrize("coder", ["range", "ans"])
def test_file_size_tracks_model_information(tiny_codec, coder):
    im = gradient_image(48, 40)
    data, stats = encode_image(im, tiny_codec, coder=coder, fallback=False)
    payload_bits = (len(data) - stats["header_bytes"]) * 8
    assert abs(payload_bits - stats["model_bits"]) <= stats["model_bits"] * 0.001 + 64


def test_palette_transparency_survives(tiny_codec):
    im = gradient_image(9, 7, "P")
    im.info["transparency"] = 3
    data, _ = encode_image(im, tiny_codec, fallback=False)
    out, transparency = decode_image(data, codec=tiny_codec)
    assert same_pixels(out, im) and transparency == 3


def test_rgba_palette_survives(tiny_codec):
    im = Image.new("P", (5, 4))
    im.putpalette(bytes(range(64)), rawmode="RGBA")
    im.putdata([i % 16 for i in range(20)])
    data, _ = encode_image(im, tiny_codec, fallback=False)
    out, _ = decode_image(data, codec=tiny_codec)
    assert same_pixels(out, im)


@pytest.mark.parametrize("coder", ["range", "ans"])
def test_several_tile_groups(tiny_codec, coder):
    from nlc.coding.autoregressive import decode_tiles, encode_tiles

    px = np.asarray(gradient_image(21, 30))
    payload, bits = encode_tiles(tiny_codec.model, 3, px, 8, coder, group=4)  # 12 tiles -> 3 groups
    back = decode_tiles(tiny_codec.model, 3, 21, 30, 3, 8, coder, payload, group=4)
    assert np.array_equal(back, px)


def test_shipped_default_codec_round_trip():
    """The committed weights match their registry hash and code a small photo crop exactly."""
    from nlc.api import Codec

    codec = Codec.load("default")
    im = gradient_image(12, 20)
    data, stats = encode_image(im, codec, fallback=False)
    out, _ = decode_image(data)
    assert same_pixels(out, im)
    assert stats["model_bits"] > 0


def test_files_coded_before_new_weights_still_decode(tiny_home, tmp_path):
    """Shipping new weights archives the old ones, and a file coded with them decodes exactly after the update."""
    import json

    from safetensors.torch import save_file

    from nlc.errors import CodecError
    from nlc.registry import codec_names, get_spec, sha256_file, ship_weights
    from tests.conftest import tiny_model

    im = gradient_image(20, 24, seed=3)
    before, _ = encode_image(im, fallback=False)  # the model's coding: it needs the old weights
    old_sha = get_spec("tiny").sha256
    shared = (tiny_home / "codecs" / "tiny.toml").read_text().replace('name = "tiny"', 'name = "tiny-exact"')
    (tiny_home / "codecs" / "tiny-exact.toml").write_text(shared.replace('tile = 16\n', 'tile = 16\narithmetic = "exact"\n'))
    before_exact, _ = encode_image(im, "tiny-exact", fallback=False)
    run = tmp_path / "run"
    save_file(tiny_model(seed=1).state_dict(), str(run.with_suffix(".safetensors")))
    run.with_suffix(".json").write_text(json.dumps({"steps": 1}))
    new_sha = ship_weights(run, "tiny")
    assert new_sha != old_sha and get_spec("tiny").sha256 == new_sha == sha256_file(tiny_home / "trained" / "tiny.safetensors")
    keep = f"tiny-{old_sha[:12]}"
    assert sha256_file(tiny_home / "trained" / "archive" / f"{keep}.safetensors") == old_sha
    assert sorted(codec_names()) == ["tiny", "tiny-exact"]  # the archive is not a codec of its own
    assert get_spec("tiny-exact").sha256 == new_sha  # a codec that shares the weights file follows them
    after, _ = encode_image(im, fallback=False)
    assert after != before
    for data in (before, after, before_exact, encode_image(im, "tiny-exact", fallback=False)[0]):
        assert same_pixels(decode_image(data)[0], im)
    assert ship_weights(run, "tiny") == new_sha  # the same weights again: nothing more to archive
    save_file(tiny_model(seed=2).state_dict(), str(tiny_home / "trained" / "tiny.safetensors"))  # damaged in place
    save_file(tiny_model(seed=3).state_dict(), str(tmp_path / "other.safetensors"))
    with pytest.raises(CodecError, match="tiny.safetensors: does not match the registry's sha256"):
        ship_weights(tmp_path / "other", "tiny")
    save_file(tiny_model(seed=1).state_dict(), str(tiny_home / "trained" / "tiny.safetensors"))  # restored
    assert sorted(p.name for p in (tiny_home / "codecs" / "archive").iterdir()) == sorted([
        f"tiny-exact-{old_sha[:12]}.toml", f"{keep}.toml"])
    (tiny_home / "codecs" / "archive" / f"{keep}.toml").unlink()
    with pytest.raises(CodecError, match=f"file was coded with 'tiny' weights {old_sha[:12]}..., but the registry "
                                         f"has {new_sha[:12]}... and keeps no archived weights of that hash"):
        decode_image(before)


def test_codec_files_keep_array_hyperparameters(tmp_path):
    """A codec TOML written for weights keeps list hyper-parameters (idf's level_groups) as TOML arrays."""
    import tomllib

    from nlc.registry import CodecSpec, write_spec_toml

    spec = CodecSpec(name="x", architecture="idf", weights="x.safetensors", sha256="ab" * 32,
                     hyperparameters={"levels": 2, "level_groups": (6, 4), "checkerboard": True})
    raw = tomllib.loads(write_spec_toml(spec, tmp_path / "x.toml").read_text())
    assert raw["hyperparameters"] == {"levels": 2, "level_groups": [6, 4], "checkerboard": True}
    assert CodecSpec(**raw) == CodecSpec(**{**spec.__dict__, "hyperparameters": raw["hyperparameters"]})


def test_a_codec_from_a_runs_weights(tiny_codec, tmp_path):
    """Codec.from_run builds a run's weights with its metadata's hyper-parameters, or else the spec's."""
    import json

    import torch
    from safetensors.torch import save_file

    from nlc.api import Codec
    from nlc.models.pixelcnnpp import widen_vertical

    spec = tiny_codec.spec
    wide = widen_vertical(tiny_codec.model, 16)
    save_file({k: v.contiguous() for k, v in wide.state_dict().items()}, str(tmp_path / "wide.safetensors"))
    (tmp_path / "wide.json").write_text(json.dumps({"hyperparameters": {**spec.hyperparameters, "v_channels": 16}}))
    codec = Codec.from_run(spec, tmp_path / "wide.safetensors")
    assert codec.spec.hyperparameters["v_channels"] == 16 and codec.model.config.vertical_width == 16
    assert not codec.model.training
    assert all(torch.equal(v, codec.model.state_dict()[k]) for k, v in wide.state_dict().items())
    save_file(tiny_codec.model.state_dict(), str(tmp_path / "plain.safetensors"))  # no metadata beside it
    plain = Codec.from_run(spec, tmp_path / "plain.safetensors")
    digest = sha256_file(tmp_path / "plain.safetensors")
    assert plain.spec.hyperparameters == spec.hyperparameters
    assert (plain.spec.name, plain.spec.sha256) == (f"tiny-run-{digest[:8]}", digest)  # never the shipped weights'
    im = gradient_image(12, 10, seed=4)
    data = encode_image(im, plain, fallback=False)[0]
    assert read_header(data).codec == plain.spec.name and read_header(data).weights_sha256 == digest
    assert decode_image(data, codec=plain)[0].tobytes() == im.tobytes()
    with pytest.raises(CodecError, match=r"^file was coded with codec 'tiny-run-.{8}', not 'tiny'$"):
        decode_image(data, codec=tiny_codec)


def test_a_decompress_parses_the_header_once(tiny_home, tmp_path, monkeypatch):
    """`nlc decompress` (and `nlc verify`) read a file's header once, however many checks use it."""
    from nlc import api, container
    from nlc.verification import verify

    src = tmp_path / "g.png"
    gradient_image(9, 7, "RGB").save(src)
    api.compress(src, fallback=False)
    calls = []
    real = container.unpack
    monkeypatch.setattr(container, "unpack", lambda data: calls.append(1) or real(data))
    api.decompress(tmp_path / "g.png.nlc", tmp_path / "back.webp")
    assert len(calls) == 1
    verify(tmp_path / "g.png.nlc")
    assert len(calls) == 2


def test_any_causal_network_codes_through_the_recompute_adapter():
    """nlc.models.adapter.Causal: the stepper's parameters are the parallel pass's at every pixel (the future
    zeroed changes nothing for a causal network), and images round-trip exactly, gray and RGB."""
    import torch

    from nlc.codec import Codec
    from nlc.models.adapter import Causal
    from nlc.models.masked import MaskedConv2d
    from nlc.registry import CodecSpec

    torch.manual_seed(3)
    net = torch.nn.Sequential(MaskedConv2d(4, 12, 5, "A"), torch.nn.ELU(), MaskedConv2d(12, 20, 3, "B"))
    model = Causal(net, mixtures=2).eval()
    x4 = torch.cat([torch.rand(2, 3, 6, 7) * 2 - 1, torch.ones(2, 1, 6, 7)], 1)
    whole = model.forward_x4(x4).detach()
    st = model.stepper(2, 6, 7)
    st.fill(x4)
    for r in range(6):
        st.start_row(r)
        for c in range(7):
            assert torch.allclose(st.params(c), whole[:, :, r, c], atol=1e-5)
    codec = Codec(CodecSpec("causal", "pixelcnnpp", sha256="0" * 64, tile=8), model)
    for mode in ("RGB", "L"):
        im = gradient_image(11, 9, mode, seed=2)
        data, stats = encode_image(im, codec, fallback=False)
        assert decode_image(data, codec=codec)[0].tobytes() == im.tobytes() and stats["model_bits"] > 0


def test_a_decompress_enters_the_api_module_once(tiny_home, tmp_path):
    """`nlc decompress` calls into `nlc/api.py` once (`api.decompress`); everything after is inside it."""
    import sys

    from click.testing import CliRunner

    from nlc import api
    from nlc.cli import main

    src = tmp_path / "g.png"
    gradient_image(9, 7, "RGB").save(src)
    api.compress(src, fallback=False)
    entries: list[str] = []

    def trace(frame, event, arg):
        if event == "call" and frame.f_code.co_filename == api.__file__:
            caller = frame.f_back
            if caller is None or caller.f_code.co_filename != api.__file__:
                entries.append(frame.f_code.co_name)

    sys.setprofile(trace)
    try:
        r = CliRunner().invoke(main, ["decompress", str(tmp_path / "g.png.nlc"), "-o", str(tmp_path / "back.png")])
    finally:
        sys.setprofile(None)
    assert r.exit_code == 0, r.output
    assert entries == ["decompress"]
