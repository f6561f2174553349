"""Exact arithmetic: tables every machine builds alike, a network whose parallel pass equals its steps,
integer probability tables, and the ``pixelcnnpp-exact`` codec's round trips."""

from __future__ import annotations

import decimal

import numpy as np
import pytest
import torch
from PIL import Image

import nlc
from nlc import fixed
from nlc.coding.autoregressive import decode_tiles, encode_tiles
from nlc.coding.exact_tables import (
    BUCKET,
    ExactMixture,
    code_pixels_exact,
    stage_symbols,
)
from nlc.errors import CodecError
from nlc.models.exact import make_exact
from nlc.models.gated_pixelcnn import GatedPixelCNN, GatedPixelCNNConfig
from nlc.models.pixelsnail import PixelSNAIL, PixelSNAILConfig
from nlc.registry import CodecSpec, build_model, load_model
from tests.conftest import tiny_model


def _exact_value(lut_fn, decimal_fn, x: float, out_bits: int | None, significant: int | None) -> float:
    with decimal.localcontext() as ctx:
        ctx.prec = 60
        v = decimal_fn(decimal.Decimal(x))
        if significant is not None:
            shift = significant - int(np.frexp(float(v))[1])
        else:
            shift = out_bits
        return float(int((v * decimal.Decimal(2) ** shift).to_integral_value(decimal.ROUND_HALF_EVEN))) * 2.0**-shift


@pytest.mark.parametrize("name, exact, out_bits, significant", [
    ("elu_lut", lambda x: x.exp() - 1, fixed.GRID_BITS, None),
    ("sigmoid_lut", lambda x: 1 / (1 + (-x).exp()), fixed.GRID_BITS, None),
    ("tanh_lut", lambda x: ((2 * x).exp() - 1) / ((2 * x).exp() + 1), fixed.GRID_BITS, None),
    ("weight_lut", lambda x: x.exp() * fixed.WEIGHT_ONE, 0, None),
    ("cdf_lut", lambda x: 2**fixed.CDF_BITS / (1 + (-x).exp()), 0, None),
    ("inverse_scale_lut", lambda x: (-x).exp() / decimal.Decimal("127.5"), None, fixed.SCALE_BITS),
])
def test_every_table_entry_checked_is_the_correctly_rounded_value(name, exact, out_bits, significant):
    lut = getattr(fixed, name)()
    rng = np.random.default_rng(0)
    n = len(lut.values)
    for i in list(rng.integers(0, n, 300)) + [0, n // 2, n - 1]:
        x = lut.lo + int(i) * 2.0**-lut.in_bits
        assert float(lut.values[i]) == _exact_value(lut, exact, x, out_bits, significant), (name, x)


def test_values_next_to_a_rounding_boundary_are_rounded_from_exact_arithmetic():
    # x / 2 on integers lands exactly on the half-way points: each is decided by the 50-digit
    # decimal value, half to even, whatever the float said.
    lut = fixed.build_lut(lambda x: x / 2 + 1e-13, lambda x: x / 2, 0.0, 7.0, 0, out_bits=0)
    assert lut.values.tolist() == [0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 3.0, 4.0]


def test_lookups_round_half_up_and_clamp_to_the_range():
    lut = fixed.sigmoid_lut()
    x = torch.tensor([-100.0, -12.0, 0.0, 2.0**-13, 12.0, 100.0], dtype=torch.float64)
    assert lut.index(x).tolist() == [0, 0, 12 * 4096, 12 * 4096 + 1, 24 * 4096, 24 * 4096]


def test_snap_rounds_to_the_grid_and_clamps():
    x = torch.tensor([2.0**-17, 3 * 2.0**-17, 1e9, -1e9, 0.1], dtype=torch.float64)
    out = fixed.snap(x)
    assert out.tolist()[:4] == [0.0, 2 * 2.0**-16, fixed.LIMIT, -fixed.LIMIT]
    assert float(out[4]) * 2**16 == round(0.1 * 2**16)


def test_pixel_levels_are_the_grid_values_of_k_over_127_5_minus_1():
    levels = fixed.pixel_levels()
    assert levels[0] == -1.0 and levels[255] == 1.0
    assert torch.all((levels * 2**16).round() == levels * 2**16)
    assert float((levels - (torch.arange(256, dtype=torch.float64) / 127.5 - 1)).abs().max()) <= 2.0**-17


def _tiles(seed: int = 0, b: int = 3, h: int = 9, w: int = 11) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (b, 3, h, w), generator=g).float() / 127.5 - 1
    mask = torch.ones(b, 1, h, w)
    mask[1, :, 6:] = 0  # a tile cut short at the bottom
    mask[2, :, :, 7:] = 0  # and one at the right
    return torch.cat([x * mask, mask], 1)


def _stepped(model, x4: torch.Tensor) -> torch.Tensor:
    b, _, h, w = x4.shape
    st = model.stepper(b, h, w)
    st.fill(x4)
    out = torch.zeros(b, 10 * model.config.mixtures, h, w, dtype=torch.float64)
    for r in range(h):
        st.start_row(r)
        for c in range(w):
            out[:, :, r, c] = torch.as_tensor(st.params(c))  # numpy from an exact model's steps on a CPU
    st.release()
    return out


def _tiny_snail(seed: int) -> PixelSNAIL:
    torch.manual_seed(seed)
    model = PixelSNAIL(PixelSNAILConfig(channels=8, blocks=2, res_layers=1, first_kernel=3, key_channels=4,
                                        heads=2, mixtures=3)).eval()
    with torch.no_grad():  # the zero-initialised gates, attention outputs and head would hide the layers
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model


def _tiny_gated(seed: int) -> GatedPixelCNN:
    torch.manual_seed(seed)
    model = GatedPixelCNN(GatedPixelCNNConfig(channels=8, layers=3, skip_channels=8, mixtures=3)).eval()
    with torch.no_grad():  # the zero-initialised residuals and head would hide the layers
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model


@pytest.mark.parametrize("make", [tiny_model, _tiny_snail, _tiny_gated], ids=["pixelcnnpp", "pixelsnail", "gated"])
@pytest.mark.parametrize("seed", [0, 1])
def test_exact_twin_gives_the_same_parameters_in_one_pass_as_in_steps(make, seed):
    model = make_exact(make(seed))
    x4 = _tiles(seed)
    full = model.forward_x4(x4)
    assert full.dtype == torch.float64
    assert torch.equal(full, _stepped(model, x4))  # bit for bit (PixelSNAIL: its key/value caches too)
    assert torch.equal(full * 2**16, (full * 2**16).round())  # on the grid
    with torch.no_grad():
        float_params = make(seed).forward_x4(x4).double()
    assert float((float_params - full).abs().max()) < 0.05  # the same function, rounded


def test_numpy_steps_compute_the_torch_exact_arithmetics_numbers():
    from nlc.models.exact import NUMPY_EXACT, ExactArithmetic

    torch_a, rng = ExactArithmetic(), np.random.default_rng(0)
    # grid values over the clamp and the tables' ranges, with the tables' end points and half steps
    x = np.concatenate([np.round(rng.normal(0, s, 4000) * 2**16) / 2**16 for s in (0.5, 4, 40, 2000)]
                       + [np.array([-1024, -12, -12 - 2**-16, -2**-15, 0, 2**-15, 12, 12 + 2**-16, 1024.0])])
    y = np.round(rng.normal(0, 3, x.shape) * 2**16) / 2**16
    xt, yt = torch.from_numpy(x.copy()), torch.from_numpy(y.copy())
    assert np.array_equal(NUMPY_EXACT.elu(x), torch_a.elu(xt).numpy())
    assert np.array_equal(NUMPY_EXACT.gate(y.copy(), x, y), torch_a.gate(yt.clone(), xt, yt).numpy())
    assert np.array_equal(NUMPY_EXACT.add(x * 3, y), torch_a.add(xt * 3, yt).numpy())
    pairs = np.stack([x, y], 1)  # (n, 2): the halves of axis 1 are x and y
    assert np.array_equal(NUMPY_EXACT.tanh_gate(pairs), torch_a.tanh_gate(torch.from_numpy(pairs)).numpy())
    acc = x * 2.0**-7 + y * 2.0**-20  # an accumulator between grid points, with ties
    assert np.array_equal(NUMPY_EXACT.lin(acc), torch_a.lin(torch.from_numpy(acc)).numpy())
    pixels = (np.arange(256, dtype=np.float32) / np.float32(127.5) - 1).astype(np.float32)
    assert np.array_equal(NUMPY_EXACT.input(pixels), torch_a.input(torch.from_numpy(pixels)).numpy())
    assert NUMPY_EXACT.steps(torch.device("cpu")) is NUMPY_EXACT
    assert torch_a.steps(torch.device("cpu")) is NUMPY_EXACT and torch_a.steps(torch.device("meta")) is torch_a


def test_shipped_exact_model_is_the_same_in_one_pass_in_steps_and_with_any_thread_count():
    model = nlc.Codec.load("pixelcnnpp-exact").model
    x4 = _tiles(2, b=3, h=8, w=9)
    full = model.forward_x4(x4)
    assert torch.equal(full, _stepped(model, x4))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert torch.equal(model.forward_x4(x4), full)
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        float_params = nlc.Codec.load("pixelcnnpp").model.forward_x4(x4).double()
    assert float((float_params - full).abs().max()) < 0.05  # the same function, rounded


def test_make_exact_leaves_the_float_model_alone_and_refuses_models_without_exact_arithmetic():
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    twin = make_exact(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert twin.arith.exact and not model.arith.exact
    with pytest.raises(ValueError, match="PixelCNN has no exact arithmetic"):
        make_exact(build_model("pixelcnn", dict(channels=8, layers=2, first_kernel=3, mixtures=3)))


def test_a_layer_whose_sums_could_leave_float64_exactness_is_refused():
    model = tiny_model()
    with torch.no_grad():
        model.u_in.weight[0, 0, 0, 0] = 1.0
        model.u_in.bias[0] = 2.0**40  # the bias alone is 2^40 * 2^29 grid units
    with pytest.raises(ValueError, match="layer u_in: its sums could reach"):
        make_exact(model)


def test_an_unknown_arithmetic_in_a_codec_file_is_refused(tmp_path):
    from safetensors.torch import save_file

    from nlc.registry import sha256_file

    path = tmp_path / "w.safetensors"
    save_file(tiny_model().state_dict(), str(path))
    spec = CodecSpec(name="odd", architecture="pixelcnnpp", weights=str(path), sha256=sha256_file(path),
                     arithmetic="decimal", hyperparameters=dict(channels=8, levels=2, nr_resnet=1, h_layers=1,
                                                                mixtures=3))
    with pytest.raises(CodecError, match="codec 'odd': unknown arithmetic 'decimal' \\(known: float, exact\\)"):
        load_model(spec)


def _params(n: int, mixtures: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(n, 10 * mixtures, generator=g, dtype=torch.float64)
    p[:, mixtures:] *= 0.6
    return fixed.snap(p)


def test_the_two_stage_tables_multiply_to_one_mixture_that_sums_to_one():
    n, m = 5, 3
    params = _params(n, m)
    values = np.random.default_rng(1).integers(0, 256, (n, 3))
    # probability of each value v of channel 0 under the two stages, for every v
    prob = np.zeros((n, 256))
    for v in range(256):
        tables = {}

        def fn(stage, table, v=v):
            tables[stage] = table
            known = np.full((n, 3), v)
            known[:, 1:] = values[:, 1:]
            return stage_symbols(known, stage)

        code_pixels_exact(params, m, 1, fn)
        outer, inner = tables[0], tables[1]
        b, j = v // BUCKET, v % BUCKET
        assert np.allclose(inner.sum(1), outer[:, b])  # the inner stage splits its bucket's mass exactly
        assert np.all(inner == np.round(inner)) and np.all(outer == np.round(outer))  # integers
        prob[:, v] = outer[:, b] / outer.sum(1) * inner[:, j] / inner.sum(1)
    assert np.allclose(prob.sum(1), 1.0, atol=1e-12)
    assert prob.min() >= 2.0**-24 / 1.01  # the floor keeps every value codable


def test_exact_tables_cost_what_the_float_mixture_says():
    from nlc.coding.logistic_mixture import code_pixels

    n, m = 400, 3
    params = _params(n, m, seed=3)
    values = np.random.default_rng(2).integers(0, 256, (n, 3)).astype(np.uint8)
    _, exact_bits = code_pixels_exact(params, m, 3, lambda s, t: stage_symbols(values, s))
    _, float_bits = code_pixels(params.float(), m, 3, lambda ch, t: values[:, ch])
    assert abs(exact_bits.sum() / float_bits.sum() - 1) < 2e-3


@pytest.mark.parametrize("mixtures, channels, scale, seed", [(3, 3, 0.6, 4), (10, 3, 2.0, 5), (10, 1, 0.3, 6),
                                                             (1, 3, 4.0, 7)])
def test_compiled_tables_equal_the_numpy_reference(mixtures, channels, scale, seed):
    """Every table, symbol, weight update and bit count of the kernels equals the plain numpy version,
    extreme parameters and values (0, 255, far tails) included."""
    from nlc.coding.exact_tables import code_pixels_exact_numpy

    n = 300
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(n, 10 * mixtures, generator=g, dtype=torch.float64)
    p[:, mixtures:] *= scale
    params = fixed.snap(p)
    values = np.random.default_rng(seed).integers(0, 256, (n, 3)).astype(np.uint8)
    values[:20] = 0
    values[20:40] = 255
    runs = []
    for fn in (code_pixels_exact, code_pixels_exact_numpy):
        tables = []

        def collect(stage, table, tables=tables):
            tables.append(np.array(table))
            return stage_symbols(values, stage)

        syms, bits = fn(params, mixtures, channels, collect)
        runs.append((syms, bits, tables))
    (s1, b1, t1), (s2, b2, t2) = runs
    assert np.array_equal(s1, s2) and np.array_equal(b1, b2)
    assert len(t1) == len(t2) == 2 * channels
    assert all(np.array_equal(a, b) for a, b in zip(t1, t2))


def test_mixture_weights_are_integers_from_the_logits():
    params = _params(4, 3)
    mx = ExactMixture(params, 3)
    assert np.array_equal(mx.weights, np.round(mx.weights))
    assert np.all(mx.weights.max(1) == fixed.WEIGHT_ONE)  # the largest logit weighs 2^16


@pytest.mark.parametrize("coder", ["range", "ans"])
def test_exact_tiles_round_trip_and_the_file_costs_the_model_bits(coder):
    model = make_exact(tiny_model(4))
    rng = np.random.default_rng(0)
    px = (np.add.outer(np.arange(21), np.arange(30))[..., None] * [3, 2, 1] % 256 + rng.integers(0, 9, (21, 30, 3)))
    px = px.astype(np.uint8)
    payload, bits = encode_tiles(model, 3, px, 16, coder)
    assert np.array_equal(decode_tiles(model, 3, 21, 30, 3, 16, coder, payload), px)
    assert 8 * len(payload) >= bits
    assert 8 * len(payload) - bits < 0.01 * bits + 3 * 32  # a hair above -log2 p plus the coders' final words


@pytest.mark.parametrize("mode, coder", [("RGB", None), ("L", "ans"), ("RGBA", None)])
def test_exact_codec_files_round_trip(mode, coder):
    rng = np.random.default_rng(5)
    arr = rng.integers(0, 256, (19, 23, 4 if mode == "RGBA" else 3)).astype(np.uint8)
    im = Image.fromarray(arr, "RGBA" if mode == "RGBA" else "RGB").convert(mode)
    data, stats = nlc.encode_image(im, "pixelcnnpp-exact", coder=coder, device="cpu", fallback=False)
    out, _ = nlc.decode_image(data, device="cpu")
    assert nlc.read_header(data).codec == "pixelcnnpp-exact"
    assert out.mode == mode and out.tobytes() == im.tobytes()


def test_exact_codec_codes_sets_in_one_batch():
    items = np.random.default_rng(6).integers(0, 256, (3, 9, 10, 3)).astype(np.uint8)
    data, _ = nlc.encode_set(items, "pixelcnnpp-exact", device="cpu")
    out, header = nlc.decode_set(data, device="cpu")
    assert np.array_equal(out, items)


def test_a_float_file_records_its_cpu_kind_and_a_crc_mismatch_says_what_to_do(monkeypatch):
    from nlc import api, images
    from nlc.errors import FormatError

    im = Image.fromarray(np.random.default_rng(7).integers(0, 256, (6, 5, 3)).astype(np.uint8), "RGB")
    data, _ = nlc.encode_image(im, "pixelcnnpp", device="cpu", fallback=False)
    exact_data, _ = nlc.encode_image(im, "pixelcnnpp-exact", device="cpu", fallback=False)
    assert nlc.read_header(data).extra["cpu"] == torch.backends.cpu.get_cpu_capability()
    assert "cpu" not in nlc.read_header(exact_data).extra  # exact files do not depend on it
    monkeypatch.setattr(images, "pixels_crc32", lambda im: 0)  # as if the floats had differed
    with pytest.raises(FormatError) as e:
        nlc.decode_image(data, device="cpu")
    kind = torch.backends.cpu.get_cpu_capability()
    assert str(e.value) == (
        f"decoded pixels do not match the original's CRC-32 (encoded with torch {torch.__version__} on cpu ({kind}); "
        f"this is torch {torch.__version__} on cpu ({kind})): a float codec's file decodes where its floats are "
        "reproduced, with the same torch on the same kind of machine; codecs with exact arithmetic "
        "(e.g. pixelcnnpp-exact) write files that decode anywhere")
    with pytest.raises(FormatError, match=r"^decoded pixels do not match the original's CRC-32 \(corrupted payload\)$"):
        nlc.decode_image(exact_data, device="cpu")
    assert api.cpu_kind() == kind


def test_exact_kernels_change_nothing_on_a_cpu():
    import contextlib

    from nlc.coding.autoregressive import exact_kernels

    assert isinstance(exact_kernels(make_exact(tiny_model())), contextlib.nullcontext)
    assert isinstance(exact_kernels(tiny_model()), contextlib.nullcontext)


def test_the_shipped_default_codec_is_exact_so_its_files_decode_on_any_machine():
    from nlc.registry import DEFAULT, get_spec

    spec = get_spec(DEFAULT)
    assert (spec.name, spec.arithmetic, spec.adaptive) == ("pixelcnnpp-adaptive-v4", "exact", "bias-v2")
    assert spec.sha256 == get_spec("pixelcnnpp").sha256  # the float default's weights, computed exactly


def test_info_says_where_a_file_decodes():
    from nlc.api import decodes_on

    assert decodes_on("pixelsnail-exact", "2.13.0+cpu", "cpu", None) == "any machine (exact arithmetic)"
    assert decodes_on("pixelcnnpp", "2.13.0+cpu", "cpu", "AVX2").startswith("torch 2.13.0+cpu on cpu (AVX2) (float")
    assert decodes_on("no-such-codec", "2.13.0+cpu", "cpu", None).startswith("unknown here")
