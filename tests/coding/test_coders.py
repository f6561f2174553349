"""Coding layer: exact symbol round trips and rates against the ideal -log2 p."""

import numpy as np
import pytest

from nlc.coding.coders import AnsStack, CoderError, RangeQueue, make_coder


def random_tables(rng, n, k, sharp):
    p = rng.random((n, k)) ** sharp
    return p / p.sum(1, keepdims=True)


@pytest.mark.parametrize("name", ["range", "ans"])
@pytest.mark.parametrize("sharp", [1.0, 8.0, 40.0])
def test_round_trip_and_rate(name, sharp):
    rng = np.random.default_rng(int(sharp))
    batches = [random_tables(rng, 64, 256, sharp) for _ in range(50)]
    symbols = [np.array([rng.choice(256, p=row) for row in t]) for t in batches]
    enc = make_coder(name)
    for s, t in zip(symbols, batches):
        enc.encode(s, t)
    data = enc.to_bytes()
    dec = make_coder(name, data)
    order = list(range(len(batches)))
    if enc.lifo:
        order.reverse()
    for i in order:
        assert np.array_equal(dec.decode(batches[i]), symbols[i])
    ideal = sum(-np.log2(t[np.arange(len(s)), s]).sum() for s, t in zip(symbols, batches))
    assert len(data) * 8 <= ideal * 1.001 + 64


def test_unnormalised_rows_and_zero_probabilities_still_code():
    t = np.zeros((3, 5))
    t[:, 0] = 2.0  # every other symbol has probability zero
    s = np.array([0, 4, 2])  # improbable symbols still get the smallest probability
    enc = RangeQueue()
    enc.encode(s, t)
    assert np.array_equal(RangeQueue(enc.to_bytes()).decode(t), s)


def test_ans_pops_in_push_order_within_a_batch():
    t = np.full((4, 3), 1 / 3)
    s = np.array([2, 0, 1, 1])
    enc = AnsStack()
    enc.encode(s, t)
    assert np.array_equal(AnsStack(enc.to_bytes()).decode(t), s)


def test_payload_not_whole_words_is_an_error():
    with pytest.raises(CoderError):
        RangeQueue(b"abc")


def test_unknown_coder():
    with pytest.raises(ValueError, match="unknown coder"):
        make_coder("huffman")
