"""char-RNN (LSTM) sequence codecs: no output looks at its own or a later pixel, the stepper carries the same
state as PyTorch's fused LSTM, the exact twin's steps equal its parallel pass bit for bit, sets of every size
round-trip, the file is a hair above the model's -log2 p, and a damaged file is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlc.codec import Codec
from nlc.models.lstm import CharRNN, CharRNNConfig
from nlc.registry import CodecSpec
from tests.models.sequence_checks import check_rate, check_round_trip, check_truncated_refused

BINARY = dict(bits=1, hidden=8, head=8, height=6, width=5)
GRAY = dict(BINARY, bits=8, mixtures=3)
PLAIN = dict(BINARY, location=False)


def tiny_lstm(hp: dict, seed: int = 0) -> CharRNN:
    """A small char-RNN with every weight random, so every input matters."""
    torch.manual_seed(seed)
    m = CharRNN(CharRNNConfig(**hp))
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.5)
    return m.eval()


@pytest.fixture(scope="module", params=["binary", "gray", "plain"])
def codec(request) -> Codec:
    hp = {"binary": BINARY, "gray": GRAY, "plain": PLAIN}[request.param]
    return Codec(CodecSpec(f"tiny-lstm-{request.param}", "lstm", sha256="0" * 64, hyperparameters=hp),
                 tiny_lstm(hp, 1))


def _items(codec: Codec, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if codec.model.config.bits == 1:
        return (rng.random((n, 6, 5)) > 0.5).astype(np.uint8)
    return rng.integers(0, 256, (n, 6, 5)).astype(np.uint8)


def _levels(hp: dict) -> int:
    return 2 if hp["bits"] == 1 else 256


@pytest.mark.parametrize("hp", [BINARY, GRAY, PLAIN], ids=["binary", "gray", "plain"])
def test_an_output_never_depends_on_its_own_or_later_pixels(hp):
    m = tiny_lstm(hp, 2)
    x = torch.randint(0, _levels(hp), (2, 30))
    with torch.no_grad():
        base = m.outputs(x)
        for d in range(30):
            changed = x.clone()
            changed[:, d:] = (changed[:, d:] + 1) % _levels(hp)
            out = m.outputs(changed)
            assert torch.equal(out[:, : d + 1], base[:, : d + 1]), d
            if d < 29:
                assert not torch.equal(out[:, d + 1 :], base[:, d + 1 :])  # and later ones do look


@pytest.mark.parametrize("hp", [BINARY, GRAY], ids=["binary", "gray"])
def test_the_stepper_carries_the_fused_lstms_state(hp):
    m = tiny_lstm(hp, 4)
    x = torch.randint(0, _levels(hp), (5, 30))
    with torch.no_grad():
        whole = m.outputs(x)  # torch.lstm
        step = m.stepper(5)
        for d in range(30):
            assert torch.allclose(step.outputs(d), whole[:, d], atol=1e-5), d
            step.put(d, x[:, d])


@pytest.mark.parametrize("hp", [BINARY, GRAY, PLAIN], ids=["binary", "gray", "plain"])
def test_the_exact_steps_equal_the_exact_parallel_pass_bit_for_bit(hp):
    m = tiny_lstm(hp, 3)
    e = m.exact()
    x = torch.randint(0, _levels(hp), (7, 30))
    whole = e.outputs(x)
    step = e.stepper(7)
    for d in range(30):
        assert torch.equal(step.outputs(d), whole[:, d]), d
        step.put(d, x[:, d])
    with torch.no_grad():
        assert float((whole.float() - m.outputs(x)).abs().max()) < 2e-2  # the same function, rounded


def test_the_location_encoding_is_one_hot_row_and_column():
    m = CharRNN(CharRNNConfig(height=2, width=3))
    assert m.location_codes().tolist() == [[1, 0, 1, 0, 0], [1, 0, 0, 1, 0], [1, 0, 0, 0, 1],
                                           [0, 1, 1, 0, 0], [0, 1, 0, 1, 0], [0, 1, 0, 0, 1]]
    assert m.ih.in_features == 6 and CharRNN(CharRNNConfig(location=False)).ih.in_features == 1


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(0, 5), coder=st.sampled_from(["range", "ans"]), seed=st.integers(0, 2**32 - 1))
def test_sets_round_trip_exactly(codec, n, coder, seed):
    check_round_trip(codec, _items(codec, n, seed), coder)


def test_the_file_is_a_hair_above_the_models_log_loss(codec):
    check_rate(codec, _items(codec, 120, 4))


def test_a_truncated_lstm_set_is_refused(codec):
    check_truncated_refused(codec, _items(codec, 4, 5))


def test_a_char_rnn_refuses_other_bit_depths():
    with pytest.raises(ValueError, match="binarized"):
        CharRNN(CharRNNConfig(bits=4))
