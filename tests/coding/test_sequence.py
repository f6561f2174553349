"""Sequence codecs (MADE): masks that never look ahead, steps equal to the parallel pass, exact round trips of
sets of every size, the file within a hair of the model's -log2 p, and a truncated file refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from nlc import container
from nlc.codec import Codec
from nlc.errors import FormatError
from nlc.models.made import MADE, MADEConfig
from nlc.registry import CodecSpec
from nlc.sets import decode_set, encode_set

TINY = dict(bits=1, hidden=40, height=6, width=5, seed=3)


def tiny_made(seed: int = 0) -> MADE:
    """A small MADE with every weight random (the direct path too), so every mask matters."""
    torch.manual_seed(seed)
    m = MADE(MADEConfig(**TINY))
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.5)
    return m.eval()


@pytest.fixture(scope="module")
def made_codec() -> Codec:
    return Codec(CodecSpec("tiny-made", "made", sha256="0" * 64, coder="range", hyperparameters=TINY), tiny_made())


def test_an_output_never_depends_on_its_own_or_later_inputs():
    m = tiny_made(1)
    x = (torch.rand(1, 30) > 0.5).float().requires_grad_(True)
    logits = m.logits(x)
    for d in range(30):
        (grad,) = torch.autograd.grad(logits[0, d], x, retain_graph=True)
        assert (grad[0, d:] == 0).all(), d  # the pixel itself and every later one: no influence
    assert logits.shape == (1, 30)


def test_the_exact_steps_equal_the_exact_parallel_pass_bit_for_bit():
    e = tiny_made(2).exact()
    x = (torch.rand(9, 30) > 0.4).long()
    whole = e.logits(x.double())
    step = e.stepper(9)
    for d in range(30):
        assert torch.equal(step.logits(d), whole[:, d]), d
        step.put(d, x[:, d])


def test_exact_weights_are_on_the_grid_and_close_to_the_float_model():
    m = tiny_made(4)
    e = m.exact()
    for p in e.parameters():
        assert torch.equal(p * 2**14, torch.round(p * 2**14))
    x = (torch.rand(5, 30) > 0.5).float()
    assert torch.allclose(e.logits(x.double()).float(), m.logits(x), atol=1e-2)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(0, 6), scale=st.sampled_from([1, 255]), coder=st.sampled_from(["range", "ans"]),
       seed=st.integers(0, 2**32 - 1))
def test_sets_round_trip_exactly(made_codec, n, scale, coder, seed):
    items = (np.random.default_rng(seed).random((n, 6, 5)) > 0.6).astype(np.uint8) * scale
    data, stats = encode_set(items, made_codec, coder=coder)
    out, header = decode_set(data, made_codec)
    assert header.coding == "sequence" and header.coder == coder and data[4] == container.SET_VERSION_COMPACT
    assert out.dtype == np.uint8 and np.array_equal(out, items)


def test_the_file_is_a_hair_above_the_models_log_loss(made_codec):
    items = (np.random.default_rng(5).random((200, 6, 5)) > 0.5).astype(np.uint8)
    data, stats = encode_set(items, made_codec)
    payload = len(container.unpack_set(data)[1]) * 8
    assert stats["model_bits"] <= payload <= stats["model_bits"] * 1.001 + 64
    exact = made_codec.model.exact()
    v = torch.from_numpy(items.reshape(200, 30).astype(np.float64))
    p1 = torch.sigmoid(exact.logits(v))
    float_bits = -torch.log2(torch.where(v > 0, p1, 1 - p1)).sum().item()
    assert abs(stats["model_bits"] - float_bits) < 1e-3 * float_bits  # the tables are the model, to 0.1%


def test_a_truncated_or_mislabelled_sequence_set_is_refused(made_codec):
    items = (np.random.default_rng(6).random((4, 6, 5)) > 0.5).astype(np.uint8)
    data, _ = encode_set(items, made_codec)
    with pytest.raises(FormatError, match="truncated"):
        decode_set(data[:-9], made_codec)
    header, payload = container.unpack_set(data)
    header.height = 5
    with pytest.raises(FormatError, match="corrupted header"):
        decode_set(container.pack_set(header, payload), made_codec)


GRAY = dict(bits=8, hidden=40, height=6, width=5, seed=2, mixtures=3)


@pytest.fixture(scope="module")
def gray_codec() -> Codec:
    torch.manual_seed(9)
    m = MADE(MADEConfig(**GRAY))
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.2)
    return Codec(CodecSpec("tiny-made8", "made", sha256="0" * 64, hyperparameters=GRAY), m.eval())


def test_a_gray_made_steps_equal_its_parallel_pass_and_never_look_ahead(gray_codec):
    e = gray_codec.model.exact()
    x = torch.randint(0, 256, (6, 30))
    whole = e.outputs(x)
    step = e.stepper(6)
    for d in range(30):
        assert torch.equal(step.outputs(d), whole[:, d]), d
        step.put(d, x[:, d])
    xf = x.double().requires_grad_(True)
    out = e.outputs(xf)
    for d in (0, 7, 29):
        (grad,) = torch.autograd.grad(out[0, d].sum(), xf, retain_graph=True)
        assert (grad[0, d:] == 0).all()


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(0, 5), coder=st.sampled_from(["range", "ans"]), seed=st.integers(0, 2**32 - 1))
@example(n=1, coder="range", seed=475)
def test_gray_sets_round_trip_exactly_near_the_models_log_loss(gray_codec, n, coder, seed):
    items = np.random.default_rng(seed).integers(0, 256, (n, 6, 5)).astype(np.uint8)
    data, stats = encode_set(items, gray_codec, coder=coder)
    out, _ = decode_set(data, gray_codec)
    assert np.array_equal(out, items)
    if n:
        exact = gray_codec.model.exact()
        with torch.no_grad():
            nats = float(exact.loss_terms(torch.from_numpy(items))["nll"].sum())
        # the tables give the model's bits to 0.2%, plus up to 0.03 bit a value: this random model gives uniform
        # random pixels tail probabilities, where the CDF table's steps count (one item of 30: 0.59 bit over 277.6)
        assert abs(stats["model_bits"] - nats / np.log(2)) < 2e-3 * stats["model_bits"] + 0.03 * items.size


def test_gray_items_are_refused_by_a_binary_made(made_codec):
    from nlc.errors import InputError

    with pytest.raises(InputError, match="a binary codec needs pixels that are all 0/1 or all 0/255"):
        encode_set(np.full((2, 6, 5), 7, np.uint8), made_codec)


def test_the_cli_codes_a_folder_with_a_sequence_codec_and_info_verify_see_it(tmp_path, monkeypatch):
    from PIL import Image
    from safetensors.torch import save_file

    from nlc.registry import sha256_file
    from tests.test_cli import run

    home = tmp_path / "home"
    (home / "codecs").mkdir(parents=True)
    (home / "trained").mkdir()
    save_file(tiny_made().state_dict(), str(home / "trained" / "made.safetensors"))
    hp = "\n".join(f"{k} = {v}" for k, v in TINY.items())
    (home / "codecs" / "tiny-made.toml").write_text(
        f'name = "tiny-made"\narchitecture = "made"\nweights = "made.safetensors"\n'
        f'sha256 = "{sha256_file(home / "trained" / "made.safetensors")}"\ncoder = "range"\narithmetic = "exact"\n\n'
        f"[hyperparameters]\n{hp}\n")
    monkeypatch.setenv("NLC_HOME", str(home))
    shapes = tmp_path / "shapes"
    shapes.mkdir()
    rng = np.random.default_rng(8)
    for i in range(4):
        Image.fromarray(((rng.random((6, 5)) > 0.5) * 255).astype(np.uint8), "L").convert("1").save(shapes / f"{i}.png")
    r = run("compress", "--model", "tiny-made", shapes, "-o", tmp_path / "s.nlc")
    assert r.exit_code == 0, r.output
    info = run("info", tmp_path / "s.nlc", "--json")
    assert '"coding": "sequence"' in info.stdout and '"decodes_on": "any machine (exact arithmetic)"' in info.stdout
    assert run("verify", tmp_path / "s.nlc").exit_code == 0
    assert run("decompress", tmp_path / "s.nlc", "-o", tmp_path / "back").exit_code == 0
    for p in shapes.iterdir():
        a, b = Image.open(p), Image.open(tmp_path / "back" / p.name)
        assert b.mode == "1" and a.tobytes() == b.tobytes()
