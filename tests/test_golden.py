"""Files written by earlier versions still decode: the golden files of every shipped codec.

``tests/golden`` holds small ``.nlc`` files made by ``scripts/make_golden.py``
and never rewritten, so a change to a model, the probability tables, a coder
or the container that would strand existing files fails here. Weights that
were replaced since stay decodable through ``trained/archive``.

Decoding needs the encoder's floats, which the same torch on the same kind of
CPU gives (docs/limits.md); a file made elsewhere is skipped, unless its codec
computes with exact arithmetic (``portable``): those files must decode
everywhere, so they are never skipped. torch's name for the kind of CPU
(``AVX512``) is not the whole story: a float file's manifest entry lists under
``differs_on`` the CPU models (``vendor family F model M``) where it was found
not to decode, and is skipped there too.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import nlc
from tests.conftest import ROOT

GOLDEN = ROOT / "tests" / "golden"
MANIFEST = json.loads((GOLDEN / "manifest.json").read_text())


def image_digest(im: Image.Image) -> str:
    palette = bytes(im.getpalette() or []) if im.mode == "P" else b""
    return hashlib.sha256(f"{im.mode}{im.size}".encode() + im.tobytes() + palette).hexdigest()


def array_digest(a: np.ndarray) -> str:
    return hashlib.sha256(str(a.shape).encode() + np.ascontiguousarray(a).tobytes()).hexdigest()


def test_every_shipped_codec_has_a_golden_file():
    from nlc.registry import codec_names

    assert set(codec_names()) <= {entry["codec"] for entry in MANIFEST.values()}


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_golden_file_decodes(name):
    entry = MANIFEST[name]
    here = (torch.__version__, torch.backends.cpu.get_cpu_capability())
    if not entry.get("portable") and (entry["torch"], entry["cpu_capability"]) != here:
        pytest.skip(f"made with torch {entry['torch']} on {entry['cpu_capability']}; this is {here}")
    if not entry.get("portable") and cpu_model() in entry.get("differs_on", []):
        pytest.skip(f"a float file whose floats differ on {cpu_model()} (manifest: differs_on)")
    check_decodes(name)


@functools.cache
def cpu_model() -> str:
    """This machine's CPU as ``/proc/cpuinfo`` names it (``AuthenticAMD family 25 model 17``; ``""`` where
    there is no such file)."""
    try:
        lines = open("/proc/cpuinfo").read().split("\n\n")[0].splitlines()
    except OSError:
        return ""
    info = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return f"{info.get('vendor_id', '?')} family {info.get('cpu family', '?')} model {info.get('model', '?')}"


PORTABLE = sorted(name for name, entry in MANIFEST.items() if entry.get("portable"))


def test_portable_golden_files_decode_with_other_cpu_kernels():
    """Torch's scalar kernels (vector units off) compute other floats; exact files do not care."""
    script = ("import sys, torch; from tests.test_golden import check_decodes; "
              "print(torch.backends.cpu.get_cpu_capability()); [check_decodes(n) for n in sys.argv[1:]]")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default"}
    run = subprocess.run([sys.executable, "-c", script, *PORTABLE], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split()[0] == "DEFAULT"  # the child really ran torch's scalar kernels
    assert len(PORTABLE) >= 3


def check_decodes(name: str) -> None:
    """Decode golden file ``name`` and compare it with its manifest entry."""
    entry = MANIFEST[name]
    data = (GOLDEN / name).read_bytes()
    if entry["kind"] == "image":
        im, _ = nlc.decode_image(data, device="cpu")
        assert im.mode == entry["mode"]
        assert image_digest(im) == entry["pixels_sha256"]
    else:
        items, header = nlc.decode_set(data, device="cpu")
        assert header.codec == entry["codec"]
        assert array_digest(items) == entry["pixels_sha256"]
