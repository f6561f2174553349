"""The integer MAF over a MADE base: each step's shift and the base's mixture look only at earlier pixels,
the flow is exactly invertible on integers (the flows' shared check), the stepper gives the parallel pass's
numbers, sets round-trip exactly, the file is a hair above the model's -log2 p, and what it does not code is
refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlc.codec import Codec
from nlc.errors import InputError
from nlc.models.flows.bijections import Bijection, check_invertible
from nlc.models.maf_made import MADEBaseMAF, MAFMadeConfig
from nlc.registry import CodecSpec
from tests.models.sequence_checks import check_rate, check_round_trip, check_truncated_refused
from tests.models.test_flows import extreme_integers

TINY = dict(layers=2, hidden=16, base_hidden=16, mixtures=3, height=6, width=5, shift_scale=8.0)


def tiny(seed: int = 0) -> MADEBaseMAF:
    """A small model whose steps shift by a few levels to tens of levels."""
    torch.manual_seed(seed)
    m = MADEBaseMAF(MAFMadeConfig(**TINY))
    with torch.no_grad():
        for made in m.steps:
            made.w_out.normal_(0, 0.5)
            made.w_direct.normal_(0, 0.05)
    return m.eval()


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec(CodecSpec("tiny-maf-made", "maf-made", sha256="0" * 64, hyperparameters=TINY), tiny(1))


def test_every_output_looks_only_at_earlier_pixels():
    m = tiny(2)
    x = torch.randint(0, 256, (2, 30)).float().requires_grad_(True)
    out = m.outputs(x)  # the base's mixture, its means moved by the total shift
    for d in range(30):
        (grad,) = torch.autograd.grad(out[:, d].sum(), x, retain_graph=True)
        assert not (grad.abs().sum(0) > 0)[d:].any(), d


class _Flow(Bijection):
    """The whole flow as a bijection of ``(B, D)`` integers, for the shared check."""

    def __init__(self, model: MADEBaseMAF) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.latents(x)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return self.model.invert(y)


def test_the_flow_is_exactly_invertible_on_extreme_integers():
    e = tiny(3).exact()
    x = extreme_integers((9, 30), seed=0).double()
    z = check_invertible(_Flow(e), x)
    assert not torch.equal(z, x) and (z - x).abs().max() <= 2 * 255


def test_the_stepper_gives_the_parallel_pass_bit_for_bit():
    e = tiny(4).exact()
    x = torch.randint(0, 256, (7, 30)).double()
    z, total = e.shifts(x)
    params = e.base.mixture_params(e.base.outputs(z.clamp(-256, 511)), grid=True)
    stepper = e.stepper(7)
    for d in range(30):
        assert torch.equal(stepper.params(d), params[:, d])
        assert np.array_equal(stepper.offsets(d), total[:, d].numpy())
        stepper.put(d, x[:, d])
    assert total.abs().max() > 4  # the steps do move the means


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(0, 5), seed=st.integers(0, 2**32 - 1), coder=st.sampled_from(["range", "ans"]))
def test_sets_round_trip_exactly(codec, n, seed, coder):
    rng = np.random.default_rng(seed)
    items = rng.integers(0, 256, (n, 6, 5)).astype(np.uint8)
    items[:, :2] = rng.choice([0, 255], (n, 2, 5))  # the edge values
    check_round_trip(codec, items, coder)


def test_the_file_is_a_hair_above_the_models_log_loss(codec):
    items = np.clip(np.random.default_rng(5).normal(120, 30, (300, 6, 5)), 0, 255).astype(np.uint8)
    check_rate(codec, items)


def test_what_it_does_not_code_is_refused_in_one_line(codec):
    with pytest.raises(InputError, match=r"^codec 'tiny-maf-made' codes 6x5 images, got items of shape"):
        from nlc.sets import encode_set

        encode_set(np.zeros((1, 5, 6), np.uint8), codec)
    with pytest.raises(ValueError, match="gray"):
        MADEBaseMAF(MAFMadeConfig(bits=1))
    with pytest.raises(ValueError, match="power of two"):
        MADEBaseMAF(MAFMadeConfig(shift_scale=3.0))
    check_truncated_refused(codec, np.zeros((2, 6, 5), np.uint8))
