"""Integer discrete flows: exact invertibility of every block, exact round trips, rates against -log2 p."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from nlc.api import Codec, decode_image, encode_image
from nlc.coding.coders import RangeQueue
from nlc.coding.flow import LatentCoder, decode_flow, encode_flow
from nlc.errors import FormatError, InputError
from nlc.models.flows import (
    IDF,
    AdditiveCoupling,
    AffineCoupling,
    IDFConfig,
    IntegerConv1x1,
    Reverse,
    Squeeze,
    check_invertible,
)
from nlc.registry import CodecSpec
from tests.conftest import gradient_image, photo_folder, same_pixels

TINY_FLOW = dict(levels=2, couplings=2, hidden=8, blocks=1, prior_hidden=8, prior_blocks=1, mixtures=3, groups=2)


def weights_file(model: torch.nn.Module, path) -> str:
    """Write ``model``'s weights as safetensors at ``path``; returns the path as a string."""
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return str(path)


def tiny_flow(seed: int = 0, **kw) -> IDF:
    """A small flow with every weight perturbed, so couplings and priors are far from identity."""
    torch.manual_seed(seed)
    m = IDF(IDFConfig(**dict(TINY_FLOW, **kw)))
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m.eval()


@pytest.fixture(scope="module")
def flow_codec() -> Codec:
    return Codec(CodecSpec(name="tiny-idf", architecture="idf", sha256="0" * 64, tile=16,
                           hyperparameters=TINY_FLOW), tiny_flow())


def extreme_integers(shape, seed=0) -> torch.Tensor:
    """Random integers mixing pixel extremes with large magnitudes (up to 2^16)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-(2**16), 2**16, shape, generator=g).float()
    pick = torch.randint(0, 3, shape, generator=g)
    return torch.where(pick == 0, torch.full_like(x, -128.0), torch.where(pick == 1, torch.full_like(x, 127.0), x))


@pytest.mark.parametrize("make", [
    lambda: Squeeze(), lambda: Reverse(), lambda: IntegerConv1x1(12), lambda: AdditiveCoupling(12, 8, 1),
    lambda: AffineCoupling(12, 8, 1),
], ids=["squeeze", "reverse", "conv1x1", "additive", "affine"])
def test_every_bijection_is_exactly_invertible(make):
    torch.manual_seed(1)
    block = make()
    with torch.no_grad():
        for p in block.parameters():
            p.add_(torch.randn_like(p))  # large weights: rounding matters everywhere
    x = extreme_integers((2, 12, 8, 6))
    y = check_invertible(block, x)
    if not isinstance(block, (Squeeze, Reverse)):
        assert not torch.equal(y, x)


def test_affine_coupling_scales_pairs():
    """With a constant log-scale, the four shears scale u by about a and v by about 1/a."""
    torch.manual_seed(0)
    c = AffineCoupling(4, 8, 1)
    with torch.no_grad():
        c.net.out.weight.zero_()
        c.net.out.bias.zero_()
        c.net.out.bias[0] = math.atanh(math.log(2.0) / AffineCoupling.MAX_LOG)  # a = 2, no translation
    x = torch.zeros(1, 4, 1, 1)
    x[0, 2], x[0, 3] = 100.0, 400.0
    y = check_invertible(c, x)
    assert abs(y[0, 2].item() - 200) <= 2 and abs(y[0, 3].item() - 200) <= 2


def test_integer_conv_is_volume_preserving_and_not_a_permutation():
    torch.manual_seed(0)
    conv = IntegerConv1x1(6)
    x = extreme_integers((1, 6, 5, 5), seed=3)
    y = check_invertible(conv, x)
    assert y.dtype == torch.float32 and not torch.equal(y.sort(1).values, x.sort(1).values)


@pytest.mark.parametrize("coupling", ["additive", "affine"])
def test_whole_flow_is_exactly_invertible_level_by_level(coupling):
    m = tiny_flow(coupling=coupling)
    x = extreme_integers((2, 3, 16, 8), seed=5).clamp(-128, 127)
    latents = m.latents(x)
    kept = None
    for i, size in reversed(list(enumerate(m.input_sizes(16, 8)))):
        kept = m.reconstruct(i, kept, latents[i][1], size)
    assert torch.equal(kept, x)
    for lvl, inp in zip(m.levels, [x, latents[0][0]]):
        check_invertible(lvl, inp)


def test_check_invertible_catches_a_broken_block():
    class Broken(Reverse):
        def inverse(self, y):
            return y

    with pytest.raises(AssertionError, match="inverse"):
        check_invertible(Broken(), extreme_integers((1, 4, 2, 2)))


@st.composite
def flow_images(draw):
    h, w = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    mode = draw(st.sampled_from(["RGB", "L", "RGBA", "LA"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    kind = draw(st.sampled_from(["noise", "flat", "extreme", "gradient"]))
    if kind == "gradient":
        return gradient_image(h, w, mode)
    if kind == "flat":
        px = np.broadcast_to(rng.integers(0, 256, 4, dtype=np.uint8), (h, w, 4)).copy()
    elif kind == "extreme":
        px = rng.choice(np.array([0, 255], np.uint8), (h, w, 4))
    else:
        px = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    return Image.fromarray(px, "RGBA").convert(mode)


def test_odd_sizes_pad_one_row_per_level():
    """A 37x21 image pads to even sides level by level: latents of 19x11, 10x6, 5x3 (not 64x32)."""
    m = tiny_flow(levels=3)
    x = extreme_integers((1, 3, 37, 21), seed=2).clamp(-128, 127)
    assert [z.shape[-2:] for _, z in m.latents(x)] == [(19, 11), (10, 6), (5, 3)]
    assert m.input_sizes(37, 21) == [(37, 21), (19, 11), (10, 6)]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(im=flow_images(), tile=st.sampled_from([4, 8, 13, 64]))
def test_round_trip_any_image(flow_codec, im, tile):
    data, stats = encode_image(im, flow_codec, tile=tile, fallback=False)
    out, _ = decode_image(data, codec=flow_codec)
    assert same_pixels(out, im)


def test_coder_bits_equal_the_training_objective():
    """The codec's -log2 p of an image is the model's log_prob (what training minimises)."""
    m = tiny_flow(seed=2)
    px = np.asarray(gradient_image(16, 24))
    x = torch.from_numpy(px.copy()).permute(2, 0, 1).unsqueeze(0).float() - 128
    expected = -m.log_prob(x).item() / math.log(2)
    payload, bits = encode_flow(m, px, 64)
    assert bits == pytest.approx(expected, rel=1e-4)
    assert np.array_equal(decode_flow(m, payload, 16, 24, 64), px)


def test_latent_coder_rate_matches_minus_log2_p_with_escapes():
    """Real bits are within 0.5% of -log2 p, and values far outside every window (escapes) come back."""
    g = torch.Generator().manual_seed(0)
    n, mix = 20000, 3
    logits = torch.randn(n, mix, generator=g)
    means = torch.randn(n, mix, generator=g) * 30
    log_scales = torch.rand(n, mix, generator=g) * 4 - 1
    comp = torch.multinomial(torch.softmax(logits, 1), 1, generator=g)[:, 0]
    u = torch.rand(n, generator=g).clamp(1e-6, 1 - 1e-6)
    sample = means.gather(1, comp[:, None])[:, 0] + log_scales.gather(1, comp[:, None])[:, 0].exp() * torch.log(u / (1 - u))
    values = torch.round(sample)
    q = RangeQueue()
    coder = LatentCoder(q)
    coder.encode(values, logits, means, log_scales)
    assert abs(q.num_bits() - coder.model_bits) <= 0.005 * coder.model_bits
    # values the model gives almost no probability: escape windows, then raw bytes
    values[:5] = torch.tensor([1e6, -1e6, 5000.0, -7777.0, 2.0**23])
    q = RangeQueue()
    LatentCoder(q).encode(values, logits, means, log_scales)
    back = LatentCoder(RangeQueue(q.to_bytes())).decode(logits, means, log_scales)
    assert torch.equal(back, values)


def test_file_size_tracks_model_bits(flow_codec):
    """Never more than -log2 p (+0.2%), even for an untrained flow whose latents often fall far outside
    the windows; there the tables' floor makes the farthest outliers a little cheaper than -log2 p."""
    im = gradient_image(32, 48)
    data, stats = encode_image(im, flow_codec, fallback=False)
    payload_bits = (len(data) - stats["header_bytes"]) * 8
    assert 0.97 * stats["model_bits"] <= payload_bits <= stats["model_bits"] * 1.002 + 64


def test_far_tails_cost_their_information():
    """Escapes are coded under the mixture's tail; only where float64 underflows do they cost less."""
    n = 500
    logits, means, log_scales = torch.zeros(n, 1), torch.zeros(n, 1), torch.full((n, 1), math.log(8))
    for value, lo, hi in [(10.0, 5.4, 5.6), (150.0, 29.5, 30.1), (-300.0, 50.0, 57.2)]:
        q = RangeQueue()
        coder = LatentCoder(q)
        coder.encode(torch.full((n,), value), logits, means, log_scales)
        assert lo <= q.num_bits() / n <= hi
        assert q.num_bits() <= coder.model_bits * 1.01 + 32


def test_decoder_uses_the_encoders_thread_count(flow_codec):
    im = gradient_image(40, 40)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        data, _ = encode_image(im, flow_codec, tile=64, fallback=False)
        torch.set_num_threads(1)
        out, _ = decode_image(data, codec=flow_codec)
    finally:
        torch.set_num_threads(old)
    assert same_pixels(out, im)


def test_corrupted_flow_payload_is_a_format_error(flow_codec):
    im = gradient_image(24, 24)
    data, _ = encode_image(im, flow_codec, fallback=False)
    bad = bytearray(data)
    bad[-12] ^= 0xFF  # inside the payload: the payload CRC catches it
    with pytest.raises(FormatError):
        decode_image(bytes(bad), codec=flow_codec)


def test_flow_refuses_the_ans_coder(flow_codec):
    with pytest.raises(InputError, match="range coder only"):
        encode_image(gradient_image(8, 8), flow_codec, coder="ans", fallback=False)


def test_shipped_idf_codec_through_the_cli(tmp_path):
    """`nlc compress --model idf` with the committed weights (hash checked) and `nlc decompress` are exact."""
    from click.testing import CliRunner

    from nlc.api import read_header
    from nlc.cli import main

    src = tmp_path / "photo.png"
    gradient_image(40, 52).save(src)
    r = CliRunner().invoke(main, ["compress", "--model", "idf", str(src)])
    assert r.exit_code == 0, r.output
    packed = tmp_path / "photo.png.nlc"
    assert read_header(packed.read_bytes()).codec == "idf"
    out = tmp_path / "back.png"
    r = CliRunner().invoke(main, ["decompress", str(packed), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert same_pixels(Image.open(out), Image.open(src))


def test_train_idf_through_the_cli(tmp_path, monkeypatch):
    """`nlc train` trains a flow codec (tiny, 2 steps) and its weights load back into the flow."""
    import json

    from click.testing import CliRunner
    from safetensors.torch import load_file

    from nlc.cli import main

    home = tmp_path / "home"
    (home / "codecs").mkdir(parents=True)
    hp = "\n".join(f"{k} = {v}" for k, v in TINY_FLOW.items())
    (home / "codecs" / "tiny-idf.toml").write_text(
        f'name = "tiny-idf"\narchitecture = "idf"\nweights = "tiny-idf.safetensors"\ntile = 16\n\n[hyperparameters]\n{hp}\n')
    monkeypatch.setenv("NLC_HOME", str(home))
    photos = photo_folder(tmp_path)
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", "--model", "tiny-idf", "--data", str(photos), "--val", str(photos),
                                  "--batch", "2", "--crop", "8", "--steps", "2", "--val-crop", "16", "--out", str(out)])
    assert r.exit_code == 0, r.output
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["val_set"].startswith("16 fixed 16x16 crops of ")
    assert meta["architecture"] == "idf" and meta["steps"] == 2 and 0 < meta["val_bits_per_dim"] < 16
    IDF(IDFConfig(**TINY_FLOW)).load_state_dict(load_file(str(out.with_suffix(".safetensors"))))


def test_level_groups_set_each_priors_stages():
    """``level_groups`` gives each level's prior its own channel groups; coding stays exact at -log2 p."""
    m = tiny_flow(seed=3, level_groups=(6, 8))
    assert [lvl.prior.stages for lvl in m.levels] == [12, 16]
    px = np.asarray(gradient_image(12, 20, seed=3))
    x = torch.from_numpy(px.copy()).permute(2, 0, 1).unsqueeze(0).float() - 128
    payload, bits = encode_flow(m, px, 64)
    assert bits == pytest.approx(-m.log_prob(x).item() / math.log(2), rel=1e-4)
    assert np.array_equal(decode_flow(m, payload, 12, 20, 64), px)
    with pytest.raises(ValueError, match="level_groups has 1 entries for 2 levels"):
        tiny_flow(level_groups=(6,))


def test_fine_tune_with_a_frozen_flow(tmp_path):
    """``init`` starts from saved weights and ``freeze`` keeps the matching parameters bit for bit."""
    from safetensors.torch import load_file, save_file

    from nlc.train import TrainConfig, train

    photos = photo_folder(tmp_path)
    start = tiny_flow(seed=4)
    weights_file(start, tmp_path / "start.safetensors")
    cfg = dict(data=str(photos), val=str(photos), out=str(tmp_path / "run"), steps=3, batch=2, crop=16,
               warmup=1, architecture="idf", model=dict(TINY_FLOW, level_groups=[3, 2]),
               init=str(tmp_path / "start.safetensors"), val_crop=32)
    meta = train(TrainConfig(**cfg, freeze=r"levels\.\d+\.steps\."), progress=False)
    assert meta["init"].endswith("start.safetensors") and len(meta["init_sha256"]) == 64
    assert meta["val_set"].startswith("16 fixed 32x32 crops of ") and "init_fresh" not in meta
    before, after = start.state_dict(), load_file(str(tmp_path / "run.safetensors"))
    flow = [k for k in before if ".steps." in k and before[k].is_floating_point()]
    prior = [k for k in before if ".prior." in k]
    assert flow and all(torch.equal(before[k], after[k]) for k in flow)
    assert any(not torch.equal(before[k], after[k]) for k in prior)
    with pytest.raises(ValueError, match="matches no parameter"):
        train(TrainConfig(**cfg, freeze="no-such-parameter"), progress=False)
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not weights of this idf model"):
        train(TrainConfig(**dict(cfg, init=str(tmp_path / "other.safetensors"))), progress=False)


def test_a_prior_grown_from_saved_weights_starts_as_that_prior(tmp_path):
    """``prior_head_blocks`` adds zero-initialised residual blocks: a model grown from saved weights
    (``init``, new modules start fresh and are listed) has exactly the old log-likelihood, and codes exactly."""
    from nlc.train import start_fine_tune

    old = tiny_flow(seed=5)
    weights_file(old, tmp_path / "old.safetensors")
    grown = IDF(IDFConfig(**dict(TINY_FLOW, prior_head_blocks=2)))
    sha, fresh = start_fine_tune(grown, str(tmp_path / "old.safetensors"), None, "idf")
    assert len(sha) == 64 and fresh == [f"levels.{i}.prior.head_blocks.{j}.{c}"
                                        for i in range(2) for j in range(2) for c in ("c1", "c2")]
    px = np.asarray(gradient_image(12, 20, seed=5))
    x = torch.from_numpy(px.copy()).permute(2, 0, 1).unsqueeze(0).float() - 128
    assert torch.equal(grown.log_prob(x), old.log_prob(x))
    with torch.no_grad():  # a trained head block: coding stays exact at -log2 p
        for p in grown.parameters():
            p.add_(0.01 * torch.randn_like(p))
    payload, bits = encode_flow(grown, px, 64)
    assert bits == pytest.approx(-grown.log_prob(x).item() / math.log(2), rel=1e-4)
    assert np.array_equal(decode_flow(grown, payload, 12, 20, 64), px)
    weights_file(grown, tmp_path / "grown.safetensors")
    with pytest.raises(ValueError, match=r"grown.safetensors: not weights of this idf model \(levels.0.prior.head_blocks"):
        start_fine_tune(tiny_flow(), str(tmp_path / "grown.safetensors"), None, "idf")  # names it lacks


def test_affine_flow_grown_from_additive_weights_is_the_same_flow():
    """``affine_from_additive``: zero log-scales make every affine coupling the additive one, so the grown
    flow has the same latents and log-likelihood; once its scales move, it stays exactly invertible."""
    from nlc.models.flows.idf import affine_from_additive

    additive = tiny_flow(seed=7)
    affine = IDF(IDFConfig(**dict(TINY_FLOW, coupling="affine")))
    affine.load_state_dict(affine_from_additive(additive.state_dict()))
    affine.eval()
    x = extreme_integers((2, 3, 16, 12), seed=7).clamp(-128, 127)
    for (ka, za), (kb, zb) in zip(additive.latents(x), affine.latents(x)):
        assert torch.equal(za, zb) and (ka is None or torch.equal(ka, kb))
    assert torch.equal(additive.log_prob(x), affine.log_prob(x))
    with torch.no_grad():
        for p in affine.parameters():
            p.add_(0.1 * torch.randn_like(p))
    check_invertible(affine.levels[0], x)
    assert not torch.equal(affine.levels[0](x), additive.levels[0](x))
