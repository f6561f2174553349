"""The integer MAF: each step's shift looks only at earlier dimensions in its order, every step and the whole
flow are exactly invertible on integers (through the flows' shared check), sets round-trip exactly, the file
is a hair above the model's -log2 p, and what it does not code is refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlc import container
from nlc.codec import Codec
from nlc.errors import FormatError, InputError
from nlc.models.flows.bijections import check_invertible
from nlc.models.maf import SHIFT_LIMIT, IntegerMAF, MAFConfig
from nlc.registry import CodecSpec
from nlc.sets import decode_set, encode_set
from tests.models.test_flows import extreme_integers

TINY = dict(layers=2, hidden=16, mixtures=3, height=6, width=5)


def tiny_maf(seed: int = 0, hp: dict = TINY) -> IntegerMAF:
    """A small integer MAF whose MADEs shift by tens of levels."""
    torch.manual_seed(seed)
    m = IntegerMAF(MAFConfig(**hp))
    with torch.no_grad():
        for step in m.flow_steps():
            step.made.w_out.normal_(0, 0.5)
            step.made.w_direct.normal_(0, 0.1)
    return m.eval()


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec(CodecSpec("tiny-maf", "maf", sha256="0" * 64, hyperparameters=TINY), tiny_maf(1))


@pytest.mark.parametrize("k", [0, 1], ids=["raster", "reversed"])
def test_a_shift_looks_only_at_earlier_dimensions_in_its_order(k):
    step = tiny_maf(2).flow_steps()[k]
    z = torch.randint(0, 256, (2, 30)).float().requires_grad_(True)
    s = step.shifts(z)
    for d in range(30):
        (grad,) = torch.autograd.grad(s[:, d].sum(), z, retain_graph=True)
        seen = grad.abs().sum(0) > 0
        allowed = torch.arange(30) > d if k else torch.arange(30) < d
        assert not seen[~allowed].any(), d


@pytest.mark.parametrize("k", [0, 1], ids=["raster", "reversed"])
def test_every_step_is_exactly_invertible_on_extreme_integers(k):
    step = tiny_maf(3).exact().flow_steps()[k]
    x = extreme_integers((9, 30), seed=k).double()
    y = check_invertible(step, x)
    assert (y - x).abs().max() <= SHIFT_LIMIT and not torch.equal(y, x)


def test_the_whole_flow_is_exactly_invertible():
    e = tiny_maf(4).exact()
    x = torch.randint(0, 256, (11, 30)).double()
    z = e.latents(x)
    lo, count = e.latent_range
    assert torch.equal(z, torch.round(z)) and lo <= z.min() and z.max() < lo + count
    assert torch.equal(e.invert(z), x)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(0, 5), seed=st.integers(0, 2**32 - 1))
def test_sets_round_trip_exactly(codec, n, seed):
    items = np.random.default_rng(seed).integers(0, 256, (n, 6, 5)).astype(np.uint8)
    data, _ = encode_set(items, codec)
    out, header = decode_set(data, codec)
    assert header.coding == "flow" and np.array_equal(out, items)


def test_the_file_is_a_hair_above_the_models_log_loss(codec):
    items = np.clip(np.random.default_rng(5).normal(120, 30, (300, 6, 5)), 0, 255).astype(np.uint8)
    data, stats = encode_set(items, codec)
    payload = len(container.unpack_set(data)[1]) * 8
    assert abs(payload - stats["model_bits"]) <= stats["model_bits"] * 1e-3 + 64
    with torch.no_grad():
        nats = float(codec.model.loss_terms(torch.from_numpy(items))["nll"].sum())
    assert abs(stats["model_bits"] - nats / np.log(2)) < 2e-3 * stats["model_bits"]  # the twin is the model


def test_what_a_maf_does_not_code_is_refused_in_one_line(codec):
    with pytest.raises(InputError, match=r"^codec 'tiny-maf' codes with the range coder only, not 'ans'$"):
        encode_set(np.zeros((1, 6, 5), np.uint8), codec, coder="ans")
    with pytest.raises(InputError, match=r"^codec 'tiny-maf' codes 6x5 gray images, got items of shape"):
        encode_set(np.zeros((1, 5, 6), np.uint8), codec)
    with pytest.raises(ValueError, match="gray"):
        IntegerMAF(MAFConfig(bits=1))
    data, _ = encode_set(np.zeros((2, 6, 5), np.uint8), codec)
    with pytest.raises(FormatError, match="truncated"):
        decode_set(data[:-9], codec)
