"""16-bit photos: make them from 8-bit ones, and measure the low-byte coder alone.

No 16-bit photo collection ships with the project, so this script makes one from a folder of 8-bit photos
(never Kodak's). ``--method average`` (the default): each 2x2 block of the 8-bit photo is summed (0..1020 per
channel) and scaled to 16 bits with a random dither of the rounding, ``floor(sum * 65535 / 1020 + u)``, ``u``
uniform in [0, 1) from a seeded generator: an image of half the size with two more bits of real precision, as
a downscaled camera image has. ``--method dither``: the photo at full size, ``round(v * 257 + t)`` with ``t``
triangular noise of +-256 (two uniform draws; clipped to 0..65535): 8-bit data widened with dither, whose low
bytes are noise that no codec can remove. The files are written as 16-bit PNGs (nlc's writer: per-row filters,
zlib level 9) into ``--out``; ``nlc bench --data OUT`` then codes them with every codec (PNG, JPEG-XL, JPEG-LS
and JPEG 2000 from imagecodecs take 16-bit samples; lossless WebP does not).

    python bench/sixteen_bit.py make --data ../shared/data/photos-val --out runs/photos-val-16
    nlc bench --data runs/photos-val-16 --json bench/results/photos-val-16bit-pixelcnnpp-adaptive-v3.json

``lows`` codes only the low bytes (and alpha) of a folder of 16-bit images, given their high bytes, and prints
bits per sub-pixel for each of the coder's predictions: what its settings were chosen with (on photos-train).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from nlc import png16
from nlc.coding import low_bytes
from nlc.images import list_images, read_image


def sixteen_bit(pixels: np.ndarray, method: str, rng: np.random.Generator) -> np.ndarray:
    """A 16-bit ``(H, W, C)`` image made from 8-bit ``pixels`` by ``method`` (see the module's text)."""
    if method == "average":
        h, w = pixels.shape[0] // 2 * 2, pixels.shape[1] // 2 * 2
        p = pixels[:h, :w].astype(np.int64)
        s = p[0::2, 0::2] + p[1::2, 0::2] + p[0::2, 1::2] + p[1::2, 1::2]
        return np.floor(s * (65535 / 1020) + rng.random(s.shape)).clip(0, 65535).astype(np.uint16)
    t = (rng.random(pixels.shape) + rng.random(pixels.shape) - 1) * 256
    return np.round(pixels.astype(np.float64) * 257 + t).clip(0, 65535).astype(np.uint16)


def make(data: str, out: str, method: str, limit: int | None) -> None:
    """Write the 16-bit PNGs of a folder's photos into ``out``."""
    from PIL import Image

    rng = np.random.default_rng(0)
    Path(out).mkdir(parents=True, exist_ok=True)
    for f in list_images(data)[:limit]:
        pixels = np.asarray(Image.open(f).convert("RGB"))
        samples = sixteen_bit(pixels, method, rng)
        path = Path(out) / (f.stem + ".png")
        path.write_bytes(png16.png_bytes(samples, "RGB;16", None, b""))
        print(f"{path}: {samples.shape[1]}x{samples.shape[0]}, {path.stat().st_size} bytes", flush=True)


def lows(data: str, limit: int | None) -> None:
    """Bits per sub-pixel of the low bytes of a folder's 16-bit images, per prediction and as coded."""
    totals = np.zeros(len(low_bytes.MODES) + 1)
    subpixels = 0
    for f in list_images(data)[:limit]:
        samples = read_image(f).samples  # type: ignore[union-attr]
        high, low = (samples >> 8).astype(np.uint8), (samples & 255).astype(np.uint8)
        costs = list(low_bytes.mode_costs(high, low).sum(axis=1))
        t0 = time.perf_counter()
        coded = len(low_bytes.encode_low_bytes(high, low)) * 8
        seconds = time.perf_counter() - t0
        totals += [*costs, coded]
        subpixels += samples.size
        print(f"{f.name}: " + "  ".join(f"{n} {c / samples.size:.4f}" for n, c in zip(low_bytes.MODES, costs))
              + f"  coded {coded / samples.size:.4f} bits/subpixel ({seconds:.2f} s)", flush=True)
    print("all: " + "  ".join(f"{n} {c / subpixels:.4f}" for n, c in zip(low_bytes.MODES, totals))
          + f"  coded {totals[-1] / subpixels:.4f}")


def main() -> None:
    """Command line."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    m = sub.add_parser("make", help="write 16-bit PNGs made from a folder of 8-bit photos")
    m.add_argument("--data", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--method", choices=("average", "dither"), default="average")
    m.add_argument("--limit", type=int)
    lo = sub.add_parser("lows", help="bits of the low bytes of a folder of 16-bit images")
    lo.add_argument("--data", required=True)
    lo.add_argument("--limit", type=int)
    a = ap.parse_args()
    if a.what == "make":
        make(a.data, a.out, a.method, a.limit)
    else:
        lows(a.data, a.limit)


if __name__ == "__main__":
    main()
