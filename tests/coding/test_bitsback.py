"""Bits-back codecs: exact round trips of chains, rate against the −ELBO, set files and their errors."""

from __future__ import annotations

import gzip
import io
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nlc import container
from nlc.codec import Codec
from nlc.coding.bitsback import (
    START_STEPS,
    LatentGrid,
    borrowed_bits,
    decode_chain,
    encode_chain,
    make_item_codec,
    start_grid,
)
from nlc.coding.coders import AnsStack
from nlc.datasets import array_bytes, read_array
from nlc.errors import FormatError, InputError
from nlc.registry import CodecSpec
from nlc.sets import decode_set, encode_set
from nlc.train.latent import build_latent_model

TINY_LATENT = {
    "vae": ("vae", dict(bits=8, latent=2, hidden=8, mixtures=2, stages=4)),
    "vae-flat": ("vae", dict(bits=8, latent=2, hidden=8, mixtures=2, stages=1)),
    "vae-binary": ("vae", dict(bits=1, latent=2, hidden=8, mixtures=1, stages=4)),
    "bitswap": ("bitswap", dict(bits=8, latent1=1, latent2=2, hidden=8, mixtures=2, stages=4)),
    "vrnn": ("vrnn", dict(bits=8, latent=4, hidden=16, mixtures=2)),
    "vrnn-binary": ("vrnn", dict(bits=1, latent=4, hidden=16, mixtures=1)),
    "vae-iaf": ("vae-iaf", dict(bits=8, latent=2, hidden=8, mixtures=2, stages=4, steps=2, flow_hidden=16,
                                context=2)),
}


def tiny_latent(name: str, seed: int = 0) -> torch.nn.Module:
    arch, hp = TINY_LATENT[name]
    torch.manual_seed(seed)
    return build_latent_model(arch, hp).eval()


def shapes_data(n: int, binary: bool = False, seed: int = 0) -> np.ndarray:
    """Synthetic 28x28 items: a bright noisy rectangle on a black background."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        y0, x0 = rng.integers(2, 12, 2)
        h, w = rng.integers(8, 15, 2)
        x[i, y0 : y0 + h, x0 : x0 + w] = np.clip(rng.normal(150, 30, (h, w)), 0, 255).astype(np.uint8)
    return (x > 127).astype(np.uint8) if binary else x


@pytest.mark.parametrize("name", list(TINY_LATENT))
def test_chain_round_trip(name):
    model = tiny_latent(name)
    binary = model.config.bits == 1
    items = shapes_data(23, binary)
    codec = make_item_codec(model)
    data, stats = encode_chain(codec, items, max_batch=8)
    assert sum(stats.schedule) == 23 and stats.schedule[: stats.start_items] == [1] * stats.start_items >= [1]
    assert np.array_equal(decode_chain(codec, data, stats.schedule, stats.start_items), items)


@settings(max_examples=8, deadline=None)
@given(n=st.integers(0, 6), seed=st.integers(0, 2**16), name=st.sampled_from(["vae", "bitswap", "vrnn-binary", "vae-iaf"]))
def test_random_batches_round_trip(n, seed, name):
    model = tiny_latent(name)
    rng = np.random.default_rng(seed)
    high = 2 if model.config.bits == 1 else 256
    items = rng.integers(0, high, (n, 28, 28)).astype(np.uint8)
    codec = make_item_codec(model)
    data, stats = encode_chain(codec, items, max_batch=4)
    assert np.array_equal(decode_chain(codec, data, stats.schedule, stats.start_items), items)
    if n == 0:
        assert data == b"" and stats.schedule == []


def _train(model: torch.nn.Module, items: np.ndarray, steps: int) -> torch.nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    model.train()
    for _ in range(steps):
        xb = torch.from_numpy(items[rng.integers(len(items), size=32)].astype(np.int64))
        loss = sum(model.loss_terms(xb).values()).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.mark.parametrize("name", ["vae", "bitswap", "vrnn", "vae-iaf"])
def test_rate_matches_neg_elbo_on_a_trained_model(name):
    """After training, the chained file costs the items' −ELBO within 2% (the first item has no bits back)."""
    from nlc.bench.sets import neg_elbo_bits

    items = shapes_data(600, seed=1)
    model = _train(tiny_latent(name), items[:400], 80)
    test = items[400:]
    elbo = neg_elbo_bits(model, test)
    data, stats = encode_chain(make_item_codec(model), test)
    bits = len(data) * 8
    assert np.array_equal(decode_chain(make_item_codec(model), data, stats.schedule, stats.start_items), test)
    rest = bits - stats.start_bits
    k = stats.start_items
    assert abs(rest / elbo[k:].sum() - 1) < 0.02, (rest, elbo[k:].sum())
    assert stats.start_bits > elbo[:k].sum() * 0.9  # the start of the chain pays for its latents in full


def _plain_bits(model: torch.nn.Module, item: np.ndarray, grid: LatentGrid) -> int:
    stack = AnsStack()
    make_item_codec(model, grid).push(stack, torch.from_numpy(item[None].astype(np.int64)), bits_back=False)
    return stack.num_valid_bits()


@pytest.mark.parametrize("name", ["vae", "bitswap", "vrnn"])
def test_start_grid_is_the_cheapest_and_the_chain_round_trips(name):
    """Start items go on the grid that codes them in the fewest bits, until the stack can lend bits."""
    model = tiny_latent(name)
    items = shapes_data(30, seed=3)
    grid = start_grid(model, items[0])
    costs = {s: _plain_bits(model, items[0], LatentGrid(s)) for s in START_STEPS}
    assert grid.step in START_STEPS and costs[grid.step] == min(costs.values())
    assert costs[grid.step] <= costs[LatentGrid().step]
    codec, start = make_item_codec(model), make_item_codec(model, grid)
    data, stats = encode_chain(codec, items, max_batch=4, start_codec=start)
    assert stats.schedule[: stats.start_items] == [1] * stats.start_items
    assert stats.start_bits >= borrowed_bits(codec, items[0]) > 0  # enough to borrow from
    assert np.array_equal(decode_chain(codec, data, stats.schedule, stats.start_items, start_codec=start), items)


def test_chain_costs_the_elbo_with_a_coarse_start():
    """A cheap start must not leave the stack short: the chain still costs about the items' −ELBO."""
    from nlc.bench.sets import neg_elbo_bits

    items = shapes_data(600, seed=1)
    model = _train(tiny_latent("vae"), items[:400], 80)
    test = items[400:]
    codec, start = make_item_codec(model), make_item_codec(model, start_grid(model, test[0]))
    data, stats = encode_chain(codec, test, start_codec=start)
    elbo = neg_elbo_bits(model, test)
    assert abs(len(data) * 8 / elbo.sum() - 1) < 0.02, (len(data) * 8, elbo.sum(), stats.start_items)


def test_bad_start_step_is_a_format_error():
    data, _ = encode_set(shapes_data(3), _set_codec("vae"))
    header, payload = container.unpack_set(data)
    header.start_step = 0.3
    with pytest.raises(FormatError, match="start items 1 on latent step 0.3"):
        decode_set(container.pack_set(header, payload), _set_codec("vae"))


def _with_header_fields(data: bytes, drop: tuple[str, ...], **extra) -> bytes:
    """A set file whose header JSON lacks ``drop`` and has ``extra`` (as older nlc versions wrote them)."""
    import json
    import struct
    import zlib

    header, payload = container.unpack_set(data)
    fields = {k: v for k, v in vars(header).items() if k not in drop} | extra
    blob = zlib.compress(json.dumps(fields).encode(), 9)
    head = container.SET_MAGIC + struct.pack("<BI", container.SET_VERSION, len(blob)) + blob
    return head + struct.pack("<I", zlib.crc32(head)) + payload + struct.pack("<I", zlib.crc32(payload))


def test_files_of_older_versions_still_decode():
    """Before start items and the narrower grid: one fine-grid start item, latents in [-16, 16]."""
    model, items = tiny_latent("vae"), shapes_data(12)
    codec = make_item_codec(model, LatentGrid(2.0**-6, 16.0))
    payload, stats = encode_chain(codec, items)
    assert stats.start_items == 1
    new, _ = encode_set(items, _set_codec("vae"))
    header, _ = container.unpack_set(new)
    header.schedule = container.schedule_runs(stats.schedule)
    old = _with_header_fields(container.pack_set(header, payload),
                              ("start_items", "start_step", "start_bits", "latent_bound"), first_item_bits=stats.start_bits)
    out, h = decode_set(old, _set_codec("vae"))
    assert np.array_equal(out, items) and (h.latent_bound, h.start_items, h.start_step) == (16.0, 1, 2.0**-6)


def test_set_header_records_the_models_latent_range():
    """Bit-Swap's learned latents need [-16, 16]; the others use the narrower default."""
    for name, bound in (("vae", 8.0), ("bitswap", 16.0)):
        data, _ = encode_set(shapes_data(3), _set_codec(name))
        assert container.unpack_set(data)[0].latent_bound == bound
        assert np.array_equal(decode_set(data, _set_codec(name))[0], shapes_data(3))


def test_bad_latent_bound_is_a_format_error():
    header, payload = container.unpack_set(encode_set(shapes_data(3), _set_codec("vae"))[0])
    header.latent_bound = 3.0
    with pytest.raises(FormatError, match="corrupted header"):
        decode_set(container.pack_set(header, payload), _set_codec("vae"))


def _set_codec(name: str) -> Codec:
    return Codec(CodecSpec(f"tiny-{name}", TINY_LATENT[name][0], sha256="0" * 64), tiny_latent(name))


def test_set_file_round_trip_and_header():
    items = shapes_data(10)
    data, stats = encode_set(items, _set_codec("vae"), {"kind": "array-memory"})
    header, payload = container.unpack_set(data)
    assert header.count == 10 and header.bits == 8 and stats["bytes"] == len(data)
    out, _ = decode_set(data, _set_codec("vae"))
    assert np.array_equal(out, items)


def test_binary_codec_keeps_0_255_values():
    items = shapes_data(5, binary=True) * 255
    data, _ = encode_set(items, _set_codec("vae-binary"))
    out, header = decode_set(data, _set_codec("vae-binary"))
    assert header.scale == 255 and np.array_equal(out, items)


def test_binary_codec_refuses_gray_levels():
    with pytest.raises(InputError, match="binary codec needs pixels that are all 0/1 or all 0/255"):
        encode_set(shapes_data(3), _set_codec("vae-binary"))


def test_wrong_item_size_is_refused():
    with pytest.raises(InputError, match="codes 28x28 images, got items of shape"):
        encode_set(np.zeros((2, 32, 32), np.uint8), _set_codec("vae"))


@pytest.mark.parametrize("cut", [1, 5, 40, 200])
def test_truncated_set_file_is_a_format_error(cut):
    data, _ = encode_set(shapes_data(6), _set_codec("vae"))
    with pytest.raises(FormatError, match="truncated|corrupted"):
        decode_set(data[:-cut], _set_codec("vae"))


def test_flipped_payload_byte_is_a_format_error():
    data = bytearray(encode_set(shapes_data(6), _set_codec("vae"))[0])
    data[-10] ^= 0x40
    with pytest.raises(FormatError, match="corrupted payload"):
        decode_set(bytes(data), _set_codec("vae"))


def test_other_codec_is_refused():
    data, _ = encode_set(shapes_data(2), _set_codec("vae"))
    with pytest.raises(Exception, match="was coded with codec 'tiny-vae'"):
        decode_set(data, _set_codec("bitswap"))


def _idx_bytes(arr: np.ndarray) -> bytes:
    return b"\0\0\x08\x03" + np.array(arr.shape, ">u4").tobytes() + arr.tobytes()


@pytest.mark.parametrize("kind", ["idx", "idx.gz", "npy"])
def test_array_files_are_restored_byte_exact(tmp_path, kind):
    arr = shapes_data(4)
    if kind == "npy":
        buf = io.BytesIO()
        np.save(buf, arr)
        raw = buf.getvalue()
    else:
        raw = _idx_bytes(arr)
        if kind == "idx.gz":
            raw = gzip.compress(raw, 9, mtime=0)
    p = tmp_path / f"set.{kind}"
    p.write_bytes(raw)
    got, rec = read_array(p)
    assert np.array_equal(got, arr) and array_bytes(got, rec) == raw


def test_bad_idx_is_an_input_error(tmp_path):
    p = tmp_path / "bad.idx"
    p.write_bytes(b"\0\0\x0d\x03" + b"\0" * 12)
    with pytest.raises(InputError, match="expected unsigned-byte idx images"):
        read_array(p)


def test_neg_elbo_is_in_bits():
    model = tiny_latent("vae")
    from nlc.bench.sets import neg_elbo_bits

    x = shapes_data(4)
    t = model.loss_terms(torch.from_numpy(x.astype(np.int64)))
    assert neg_elbo_bits(model, x).shape == (4,)
    assert all(math.isfinite(v.sum().item()) for v in t.values())


def test_decoder_uses_the_encoders_thread_count():
    """Kernels split sums by thread: a file encoded with 2 threads decodes under 1 thread set by the caller."""
    from nlc.threads import torch_threads

    items = shapes_data(40)
    with torch_threads(2):
        data, _ = encode_set(items, _set_codec("vae"))
    assert container.unpack_set(data)[0].threads == 2
    with torch_threads(1):
        out, _ = decode_set(data, _set_codec("vae"))
    assert np.array_equal(out, items)
