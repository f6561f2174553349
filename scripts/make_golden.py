"""Write the golden files: small .nlc files of every shipped codec, which later versions must still decode.

Usage: python scripts/make_golden.py [--out tests/golden]

Each file codes a small deterministic image (or set) with one shipped codec;
``manifest.json`` records, per file, the sha256 of the decoded pixels and what
the file was made with (torch version and CPU capability; ``portable`` for a
codec with exact arithmetic, whose files decode on any machine). ``tests/test_golden.py``
decodes them all. Run this once for a new codec or container version: files
already there are kept, never rewritten, so the old ones keep testing that
files from earlier versions and earlier weights (``trained/archive``) decode.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import nlc
import nlc.registry
from nlc.images import Image16


def pattern(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth RGB gradient with a little noise, ``(h, w, 3)`` uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = (x * 9 + y * 5 + 40 * seed) % 256
    rgb = np.stack([base, (base + 80) % 256, 255 - base], -1) + rng.integers(-6, 7, (h, w, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8)


def image_of(mode: str, h: int, w: int, seed: int) -> Image.Image | Image16:
    """A test image in ``mode``: RGB, L, RGBA (alpha ramp), P (16 colours), or 16-bit ``RGBA;16`` / ``I;16``
    (the pattern as high bytes, low bytes from another pattern, alpha a 16-bit ramp)."""
    if mode in ("RGBA;16", "I;16"):
        high = pattern(h, w, seed).astype(np.uint16)
        low = pattern(h, w, seed + 1).astype(np.uint16)
        samples = (high << 8) | ((high * 37 + low) & 255)
        if mode == "I;16":
            return Image16(samples[:, :, :1], mode)
        ramp = (np.arange(w)[None].repeat(h, 0) * 65535 // max(1, w - 1)).astype(np.uint16)
        return Image16(np.dstack([samples, ramp]), mode)
    im = Image.fromarray(pattern(h, w, seed), "RGB")
    if mode == "L":
        return im.convert("L")
    if mode == "RGBA":
        im.putalpha(Image.fromarray((np.arange(w)[None].repeat(h, 0) * 255 // max(1, w - 1)).astype(np.uint8)))
        return im
    if mode == "P":
        return im.quantize(16)
    return im


def digest(a: np.ndarray) -> str:
    """sha256 of an array's shape and bytes."""
    return hashlib.sha256(str(a.shape).encode() + np.ascontiguousarray(a).tobytes()).hexdigest()


def image_digest(im: Image.Image | Image16) -> str:
    """sha256 of a Pillow image's mode, size, pixels and palette."""
    palette = bytes(im.getpalette() or []) if im.mode == "P" else b""
    return hashlib.sha256(f"{im.mode}{im.size}".encode() + im.tobytes() + palette).hexdigest()


IMAGES = [  # file, codec, mode, height, width, coder
    ("default-rgb.nlc", "default", "RGB", 12, 10, None),
    ("pixelcnnpp-gray-ans.nlc", "pixelcnnpp", "L", 9, 14, "ans"),
    ("pixelcnnpp-rgba.nlc", "pixelcnnpp", "RGBA", 8, 8, None),
    ("pixelcnnpp-palette.nlc", "pixelcnnpp", "P", 8, 9, None),
    ("pixelcnn-rgb.nlc", "pixelcnn", "RGB", 10, 10, None),
    ("gated-pixelcnn-rgb.nlc", "gated-pixelcnn", "RGB", 10, 10, None),
    ("pixelsnail-rgb.nlc", "pixelsnail", "RGB", 10, 10, None),
    ("idf-rgb.nlc", "idf", "RGB", 13, 11, None),
    ("pixelcnnpp-wide-rgb.nlc", "pixelcnnpp-wide", "RGB", 11, 9, None),
    ("pixelcnnpp-exact-rgb.nlc", "pixelcnnpp-exact", "RGB", 13, 17, None),
    ("pixelcnnpp-exact-gray-ans.nlc", "pixelcnnpp-exact", "L", 10, 7, "ans"),
    ("pixelcnnpp-wide-exact-rgb.nlc", "pixelcnnpp-wide-exact", "RGB", 9, 12, None),
    ("pixelsnail-exact-rgb.nlc", "pixelsnail-exact", "RGB", 10, 12, None),
    ("gated-pixelcnn-exact-rgb.nlc", "gated-pixelcnn-exact", "RGB", 11, 10, None),
    ("pixelcnnpp-adaptive-rgb.nlc", "pixelcnnpp-adaptive", "RGB", 40, 36, None),
    ("pixelcnnpp-adaptive-gray-ans.nlc", "pixelcnnpp-adaptive", "L", 24, 30, "ans"),
    ("pixelcnnpp-adaptive-v2-rgb.nlc", "pixelcnnpp-adaptive-v2", "RGB", 40, 36, None),
    ("pixelcnnpp-adaptive-v2-gray-ans.nlc", "pixelcnnpp-adaptive-v2", "L", 24, 30, "ans"),
    ("pixelcnnpp-adaptive-v3-rgb.nlc", "pixelcnnpp-adaptive-v3", "RGB", 150, 140, None),  # 3x3 tiles of 64: context
    ("pixelcnnpp-adaptive-v3-gray.nlc", "pixelcnnpp-adaptive-v3", "L", 70, 130, None),
    ("pixelcnnpp-adaptive-v3-rgba16.nlc", "pixelcnnpp-adaptive-v3", "RGBA;16", 40, 36, None),  # 16-bit samples
    ("pixelcnnpp-adaptive-v3-gray16.nlc", "pixelcnnpp-adaptive-v3", "I;16", 24, 30, None),
    ("pixelcnnpp-adaptive-v4-rgb.nlc", "pixelcnnpp-adaptive-v4", "RGB", 150, 140, None),  # as v3 below 97 tiles
]
SETS = [  # file, codec, items
    ("pixelcnnpp-set.nlc", "pixelcnnpp", np.stack([pattern(8, 8, s) for s in range(3)])),
    ("pixelcnnpp-exact-set.nlc", "pixelcnnpp-exact", np.stack([pattern(9, 7, s) for s in range(2)])),
    ("pixelcnnpp-adaptive-set.nlc", "pixelcnnpp-adaptive", np.stack([pattern(12, 10, s) for s in range(2)])),
    ("pixelcnnpp-adaptive-v2-set.nlc", "pixelcnnpp-adaptive-v2", np.stack([pattern(12, 10, s) for s in range(2)])),
    ("vae-fmnist-set.nlc", "vae-fmnist", np.stack([pattern(28, 28, s)[..., 0] for s in range(2)])),
    ("bitswap-fmnist-set.nlc", "bitswap-fmnist", np.stack([pattern(28, 28, s)[..., 1] for s in range(2)])),
    ("vrnn-fmnist-set.nlc", "vrnn-fmnist", np.stack([pattern(28, 28, s)[..., 2] for s in range(2)])),
    ("vae-fmnist-binary-set.nlc", "vae-fmnist-binary", (np.stack([pattern(28, 28, s)[..., 0] for s in range(2)]) > 127)
     .astype(np.uint8)),
    ("made-fmnist-binary-set.nlc", "made-fmnist-binary",
     (np.stack([pattern(28, 28, s)[..., 1] for s in range(3)]) > 127).astype(np.uint8) * 255),
    ("made-fmnist-set.nlc", "made-fmnist", np.stack([pattern(28, 28, s)[..., 2] for s in range(3)])),
    ("wavenet-fmnist-binary-set.nlc", "wavenet-fmnist-binary",
     (np.stack([pattern(28, 28, s)[..., 0] for s in range(3)]) > 127).astype(np.uint8)),
    ("wavenet-fmnist-set.nlc", "wavenet-fmnist", np.stack([pattern(28, 28, s)[..., 1] for s in range(3)])),
    ("lstm-fmnist-binary-set.nlc", "lstm-fmnist-binary",
     (np.stack([pattern(28, 28, s)[..., 2] for s in range(3)]) > 127).astype(np.uint8)),
    ("lstm-fmnist-set.nlc", "lstm-fmnist", np.stack([pattern(28, 28, s)[..., 0] for s in range(3)])),
    ("maf-fmnist-set.nlc", "maf-fmnist", np.stack([pattern(28, 28, s)[..., 1] for s in range(3)])),
    ("vae-iaf-fmnist-set.nlc", "vae-iaf-fmnist", np.stack([pattern(28, 28, s)[..., 2] for s in range(2)])),
    # set format version 5 (the compact header), with the ANS default of the binarized sequence codecs
    ("made-fmnist-binary-compact-set.nlc", "made-fmnist-binary",
     (np.stack([pattern(28, 28, s)[..., 2] for s in range(3)]) > 127).astype(np.uint8) * 255),
    ("maf-fmnist-compact-set.nlc", "maf-fmnist", np.stack([pattern(28, 28, s)[..., 0] for s in range(2)])),
    # maf-fmnist's second weights: the integer MAF over a MADE base (sequence coding)
    ("maf-fmnist-made-base-set.nlc", "maf-fmnist", np.stack([pattern(28, 28, s)[..., 2] for s in range(3)])),
]


def portable(codec: str) -> dict:
    """``{"portable": True}`` for a codec with exact arithmetic (its files decode on any machine), else ``{}``."""
    return {"portable": True} if nlc.registry.get_spec(codec).arithmetic == "exact" else {}


def main() -> None:
    """Write the missing golden files and their manifest entries."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="tests/golden")
    out = Path(ap.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    made = {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "nlc": nlc.__version__,
            "git": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()}
    for name, codec, mode, h, w, coder in IMAGES:
        if name in manifest:
            continue
        im = image_of(mode, h, w, len(manifest))
        data, _ = nlc.encode_image(im, codec, coder=coder, device="cpu", fallback=False)
        (out / name).write_bytes(data)
        manifest[name] = dict(made, kind="image", codec=codec, mode=mode, pixels_sha256=image_digest(im),
                              **portable(codec))
        print(name, len(data), "bytes")
    for name, codec, items in SETS:
        if name in manifest:
            continue
        data, _ = nlc.encode_set(items, codec, device="cpu")
        (out / name).write_bytes(data)
        manifest[name] = dict(made, kind="set", codec=codec, pixels_sha256=digest(items), **portable(codec))
        print(name, len(data), "bytes")
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
