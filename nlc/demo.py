"""``python -m nlc.demo`` (``make demo``): compress and decompress a real photo with the default codec,
next to the classical lossless codecs on the same pixels.

The photo ships with nlc (``nlc/data/coffee.png``: a 600x400 PNG of a coffee cup by Rachel Michetti,
CC0, from scikit-image's sample data). It is compressed with nlc, decompressed, compared pixel for
pixel, and the sizes and times are printed next to the PNG it came as, PNG level 9, lossless WebP and
lossless JPEG-XL (effort 9; needs imagecodecs, ``pip install 'nlc[bench]'``), with a last line that
says which is smallest and what it costs in time. Every figure is measured when the demo runs.
"""

from __future__ import annotations

import sys
import tempfile
import time
from importlib.resources import files
from pathlib import Path

import numpy as np
from PIL import Image

from . import api


def sample_photo() -> Path:
    """Path of the bundled sample photo (a lossless PNG)."""
    return Path(str(files("nlc") / "data" / "coffee.png"))


def classical(pixels: np.ndarray) -> dict[str, tuple[int, float, float]]:
    """``name: (bytes, encode s, decode s)`` of the classical lossless codecs on ``pixels`` (those available)."""
    out: dict[str, tuple[int, float, float]] = {}
    try:
        import imagecodecs
    except ImportError:
        return out
    codecs = [("PNG (level 9)", "png", {"level": 9}), ("WebP lossless", "webp", {"lossless": True, "method": 6}),
              ("JPEG-XL lossless e9", "jpegxl", {"lossless": True, "effort": 9})]
    for label, name, kw in codecs:
        try:
            t0 = time.perf_counter()
            blob = getattr(imagecodecs, f"{name}_encode")(pixels, **kw)
            t1 = time.perf_counter()
            getattr(imagecodecs, f"{name}_decode")(blob)
            out[label] = (len(blob), t1 - t0, time.perf_counter() - t1)
        except Exception:  # a codec missing from this imagecodecs build
            continue
    return out


def verdict(sizes: dict[str, tuple[int, float | None, float | None]], ours: str) -> str:
    """Where each wins, from the measured sizes and times: the smallest file, and what its time costs."""
    ranked = sorted((n, label) for label, (n, _, _) in sizes.items())
    (best, best_label), (second, second_label) = ranked[0], ranked[1]
    timed = {label: dec for label, (_, _, dec) in sizes.items() if dec is not None and label != ours}
    if best_label == ours and second_label in timed:
        return (f"smallest: nlc, {100 * (second / best - 1):.1f}% below {second_label}, which decodes "
                f"{(sizes[ours][2] or 0.0) / max(timed[second_label] or 0.0, 1e-6):.0f}x faster: nlc is for the smallest files, "
                "the classical codecs for speed")
    return f"smallest: {best_label}, {100 * (sizes[ours][0] / best - 1):.1f}% below nlc on this photo"


def main() -> None:
    """Run the demo."""
    src = sample_photo()
    im = Image.open(src)
    im.load()
    subpixels = im.width * im.height * len(im.getbands())
    rate = lambda n: f"{n:>8} bytes  {n * 8 / subpixels:.3f} bits/subpixel"  # noqa: E731
    print(f"sample photo: {im.width}x{im.height} {im.mode}, {src.name} (CC0, nlc/data/SOURCES.txt)")
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        out, stats = api.compress(src, Path(d) / "coffee.png.nlc", progress=sys.stderr.isatty())
        t1 = time.perf_counter()
        back = api.decompress(out, Path(d) / "back.png", progress=sys.stderr.isatty())
        t2 = time.perf_counter()
        same = Image.open(back).tobytes() == im.tobytes()
    sizes = {"the PNG as shipped": (src.stat().st_size, None, None), **classical(np.asarray(im))}
    sizes[f"nlc ({stats['codec']})"] = (stats["bytes"], t1 - t0, t2 - t1)
    for label, (n, enc, dec) in sizes.items():
        times = f"  encode {enc:6.2f} s  decode {dec:6.2f} s" if enc is not None else ""
        print(f"{label:<28}{rate(n)}{times}")
    print(f"nlc round trip: {'exact' if same else 'FAILED'} (model: {stats['model_bits'] / stats['subpixels']:.3f} "
          "bits/subpixel)")
    print(verdict(sizes, f"nlc ({stats['codec']})"))
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
