"""WaveNet sequence codecs: no output looks at its own or a later pixel, the cached steps (Fast WaveNet queues)
equal the parallel pass bit for bit in exact arithmetic, sets of every size round-trip, the file is a hair above
the model's -log2 p, and a damaged file is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlc.codec import Codec
from nlc.models.wavenet import WaveNet, WaveNetConfig
from nlc.registry import CodecSpec
from tests.models.sequence_checks import check_rate, check_round_trip, check_truncated_refused

BINARY = dict(bits=1, channels=6, skip=8, dilations=[1, 2, 4], height=6, width=5)
GRAY = dict(BINARY, bits=8, mixtures=3)


def tiny_wavenet(hp: dict, seed: int = 0) -> WaveNet:
    """A small WaveNet with every weight random, so every tap matters."""
    torch.manual_seed(seed)
    m = WaveNet(WaveNetConfig(**hp))
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.4)
    return m.eval()


@pytest.fixture(scope="module", params=["binary", "gray"])
def codec(request) -> Codec:
    hp = BINARY if request.param == "binary" else GRAY
    return Codec(CodecSpec(f"tiny-wavenet-{request.param}", "wavenet", sha256="0" * 64, hyperparameters=hp),
                 tiny_wavenet(hp, 1))


def _items(codec: Codec, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if codec.model.config.bits == 1:
        return (rng.random((n, 6, 5)) > 0.5).astype(np.uint8)
    return rng.integers(0, 256, (n, 6, 5)).astype(np.uint8)


@pytest.mark.parametrize("hp", [BINARY, GRAY], ids=["binary", "gray"])
def test_an_output_never_depends_on_its_own_or_later_pixels(hp):
    m = tiny_wavenet(hp, 2)
    x = torch.randint(0, 2 if hp["bits"] == 1 else 256, (2, 30))
    base = m.outputs(x)
    for d in range(30):
        changed = x.clone()
        changed[:, d:] = (changed[:, d:] + 1) % (2 if hp["bits"] == 1 else 256)
        assert torch.equal(m.outputs(changed)[:, : d + 1], base[:, : d + 1]), d
        if d < 29:
            assert not torch.equal(m.outputs(changed)[:, d + 1 :], base[:, d + 1 :])  # and later ones do look


@pytest.mark.parametrize("hp", [BINARY, GRAY], ids=["binary", "gray"])
def test_the_cached_steps_equal_the_exact_parallel_pass_bit_for_bit(hp):
    m = tiny_wavenet(hp, 3)
    e = m.exact()
    x = torch.randint(0, 2 if hp["bits"] == 1 else 256, (7, 30))
    whole = e.outputs(x)
    step = e.stepper(7)
    for d in range(30):
        assert torch.equal(step.outputs(d), whole[:, d]), d
        step.put(d, x[:, d])
    with torch.no_grad():
        assert float((whole.float() - m.outputs(x)).abs().max()) < 1e-2  # the same function, rounded


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(0, 5), coder=st.sampled_from(["range", "ans"]), seed=st.integers(0, 2**32 - 1))
def test_sets_round_trip_exactly(codec, n, coder, seed):
    check_round_trip(codec, _items(codec, n, seed), coder)


def test_the_file_is_a_hair_above_the_models_log_loss(codec):
    check_rate(codec, _items(codec, 120, 4))


def test_a_truncated_wavenet_set_is_refused(codec):
    check_truncated_refused(codec, _items(codec, 4, 5))
