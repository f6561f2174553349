"""Hostile inputs get one line and a documented exit status, never a traceback, a hang or a lost file:
damaged PNGs, decompression bombs, FIFOs, symlink loops, the input as its own output, dangling symlinks,
Ctrl-C."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
import zlib

import pytest

from tests.conftest import ROOT, gradient_image
from tests.test_cli import assert_clean_error, run

PNGSUITE = ROOT.parent / "shared" / "data" / "pngsuite"


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_a_png_with_a_damaged_chunk_is_refused(photo, tmp_path):
    data = bytearray(photo.read_bytes())
    idat = data.index(b"IDAT")
    data[idat + 10] ^= 0x01  # one bit of the compressed pixels: the chunk's CRC no longer matches
    bad = tmp_path / "bad.png"
    bad.write_bytes(bytes(data))
    assert_clean_error(run("compress", bad), "damaged PNG (CRC mismatch in the 'IDAT' chunk")
    assert not (tmp_path / "bad.png.nlc").exists()


def test_a_png_cut_short_is_refused(photo, tmp_path):
    bad = tmp_path / "short.png"
    bad.write_bytes(photo.read_bytes()[:-20])
    assert_clean_error(run("compress", bad), "short.png: damaged PNG")


@pytest.mark.skipif(not PNGSUITE.is_dir(), reason="PngSuite is in ../shared/data")
def test_pngsuite_bad_crc_file_is_refused(tiny_home, tmp_path):
    assert_clean_error(run("compress", PNGSUITE / "xcsn0g01.png", "-o", tmp_path / "x.nlc"), "CRC mismatch")


def test_a_decompression_bomb_header_gets_one_line(tiny_home, tmp_path):
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    assert_clean_error(run("compress", bomb), "bomb.png: image too large")


def test_a_fifo_is_refused_without_waiting(tiny_home, tmp_path):
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    assert_clean_error(run("compress", fifo), "fifo.png: not a regular file")


def test_a_symlink_loop_gets_one_line(tiny_home, tmp_path):
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    assert_clean_error(run("compress", loop, "-o", tmp_path / "out.nlc"), "loop.png")


def test_the_input_is_never_its_own_output(photo):
    before = photo.read_bytes()
    assert_clean_error(run("compress", photo, "-o", photo, "--force"), "is the input file")
    assert photo.read_bytes() == before


def test_a_dangling_symlink_at_the_output_is_not_replaced_without_force(photo, tmp_path):
    link = tmp_path / "out.nlc"
    link.symlink_to(tmp_path / "nowhere")
    assert_clean_error(run("compress", photo, "-o", link), "already exists")
    assert link.is_symlink()


def test_ctrl_c_exits_130_with_one_line_and_no_file(tmp_path):
    big = tmp_path / "big.png"
    gradient_image(1024, 1024).save(big)  # far more than the 6 s before the signal
    out = tmp_path / "big.nlc"
    proc = subprocess.Popen([sys.executable, "-m", "nlc", "compress", str(big), "-o", str(out), "--no-fallback"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONFAULTHANDLER="1"),
                            # a foreground command's Ctrl-C: an inherited "ignore SIGINT" (from this test
                            # process, as some earlier test left it in a full run) would make the child ignore it too
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(6)  # imports, the model, into the coding
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # show where every thread of the process is (faulthandler on SIGABRT)
        proc.send_signal(signal.SIGABRT)
        _, err = proc.communicate(timeout=30)
        pytest.fail(f"no exit 120 s after Ctrl-C (this process's SIGINT: {signal.getsignal(signal.SIGINT)}); "
                    f"the process's threads:\n{err[-6000:]}")
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "nlc: interrupted" and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))


def test_ctrl_c_in_a_pass_drops_the_chunks_not_begun():
    from nlc.threads import pass_workers

    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        with pass_workers(2) as pool:
            futures = [pool.submit(time.sleep, 0.2) for _ in range(50)]  # 5 s of work on two workers
            raise KeyboardInterrupt
    assert time.perf_counter() - started < 1.0 and sum(f.cancelled() for f in futures) >= 40


def test_ctrl_c_inside_a_compiled_call_is_an_interrupt_too(monkeypatch, capsys):
    import nlc.cli

    def compiled_call_interrupted(**_):  # what numba's dispatcher raises when Ctrl-C lands in its call
        raise SystemError("CPUDispatcher(encode_row) returned a result with an exception set") \
            from KeyboardInterrupt()

    monkeypatch.setattr(nlc.cli, "main", compiled_call_interrupted)
    with pytest.raises(SystemExit) as stop:
        nlc.cli.run()
    assert stop.value.code == 130 and capsys.readouterr().err == "nlc: interrupted\n"


def test_a_plane_that_inflates_past_its_declared_size_is_refused_without_allocating_it():
    import lzma
    import tracemalloc

    from nlc.coding.planes import decode_bits, decode_plane
    from nlc.errors import FormatError

    bomb = lzma.compress(b"\0" * (64 << 20), preset=0)  # 64 MiB of zeros in a few KiB
    tracemalloc.start()
    for decode in (decode_plane, decode_bits):
        with pytest.raises(FormatError, match="corrupted plane data"):
            decode(bomb, 16, 16)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 << 20


def test_metadata_that_inflates_past_the_limit_is_refused():
    from nlc import metadata
    from nlc.errors import FormatError

    bomb = zlib.compress(b"\0" * (metadata.MAX_METADATA + 1024), 9)
    with pytest.raises(FormatError, match="corrupted metadata"):
        metadata.unpack(bomb)
    with pytest.raises(zlib.error):
        metadata.inflate_bounded(zlib.compress(b"x" * 100)[:-3], 1000)  # cut short
    assert metadata.inflate_bounded(zlib.compress(b"x" * 100), 100) == b"x" * 100


@pytest.mark.parametrize("record", [{"gamma": "x"}, {"dpi": "x"}, {"dpi": [1e308, -1]}, {"text": 5},
                                    {"chromaticity": [1]}, {"srgb": 999}])
def test_crafted_metadata_is_one_error_in_decompress_and_verify(tiny_home, tmp_path, record):
    """Metadata of the wrong types or values, CRCs recomputed: decompress and verify both refuse it with one
    line (verify renders what decompress would write), and nothing is written."""
    from nlc import api, container, metadata

    im = gradient_image(6, 5)
    data, _ = api.encode_image(im, fallback=False)
    header, model_payload, plane_payload = container.unpack(data)
    header.metadata = metadata.pack(record)
    crafted = tmp_path / "crafted.png.nlc"
    crafted.write_bytes(container.pack(header, model_payload, plane_payload))
    r = run("decompress", crafted, "-o", tmp_path / "out.png")
    assert_clean_error(r, "corrupted metadata")
    assert not (tmp_path / "out.png").exists() and not list(tmp_path.glob(".out.png.*"))
    assert_clean_error(run("verify", crafted), "corrupted metadata")


@pytest.mark.skipif(not PNGSUITE.is_dir(), reason="PngSuite is in ../shared/data")
def test_every_corrupt_pngsuite_file_is_refused_with_one_line():
    from nlc import images
    from nlc.errors import InputError

    corrupt = sorted(PNGSUITE.glob("x*.png"))
    assert len(corrupt) == 14
    for path in corrupt:
        with pytest.raises(InputError) as e:
            images.read_image(path)
        assert str(e.value).startswith(f"{path}: ") and "\n" not in str(e.value)


@pytest.mark.skipif(not PNGSUITE.is_dir(), reason="PngSuite is in ../shared/data")
def test_every_valid_pngsuite_file_round_trips(tiny_codec):
    """All of PngSuite's 161 valid files, the 33 of 16 bits included, come back with the same mode, size,
    samples, palette, transparency and aspect ratio (through the PNG nlc decompress writes)."""
    from nlc.api import decode_image, encode_image, png_bytes
    from nlc.images import Image16, image_from_bytes, read_image
    from nlc.verification import same_image

    valid = sorted(p for p in PNGSUITE.glob("*.png") if not p.name.startswith("x"))
    assert len(valid) == 161
    sixteen = 0
    for path in valid:
        im = read_image(path)
        sixteen += isinstance(im, Image16)
        data, _ = encode_image(im, tiny_codec)
        out, transparency = decode_image(data, codec=tiny_codec)
        back = image_from_bytes(png_bytes(out, transparency), "back.png")
        assert same_image(back, im), path.name
        assert back.info.get("transparency") == im.info.get("transparency"), path.name
        assert back.info.get("aspect") == im.info.get("aspect"), path.name  # unit-less pHYs (cd?n2c08)
    assert sixteen == 33


def test_an_unreadable_input_gets_one_line():
    from tests.test_cli import assert_clean_error, run

    assert_clean_error(run("compress", "/proc/self/mem", "-o", "/tmp/never.nlc"), "/proc/self/mem: Input/output error")


@pytest.mark.parametrize("error, message", [(PermissionError(13, "Permission denied"), "permission denied"),
                                            (OSError(28, "No space left on device"), "No space left on device")])
def test_a_folder_that_cannot_be_written_or_a_full_disk_gets_one_line_and_no_file(photo, tmp_path, monkeypatch,
                                                                                   error, message):
    """Tests run as root here, which any folder lets write: the refusal is simulated where the file is made."""
    import nlc.api
    from tests.test_cli import assert_clean_error, run

    assert run("compress", photo).exit_code == 0
    coded = tmp_path / "photo.png.nlc"
    real = nlc.api._atomic_write

    def refused(dst, write):
        def failing(tmp):
            write(tmp)
            raise error
        real(dst, failing)

    monkeypatch.setattr(nlc.api, "_atomic_write", refused)
    before = sorted(tmp_path.iterdir())
    assert_clean_error(run("compress", photo, "-o", tmp_path / "again.nlc"), message)
    assert_clean_error(run("decompress", coded, "-o", tmp_path / "back.png"), message)
    assert sorted(tmp_path.iterdir()) == before
