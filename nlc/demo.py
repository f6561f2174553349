"""``python -m nlc.demo``: compress and decompress a bundled photo with the default codec.

The photo is Grace Hopper's portrait (US Navy, public domain) that ships with
matplotlib. Its decoded pixels are written as PNG, compressed with nlc,
decompressed, compared pixel for pixel, and the sizes printed next to PNG and
WebP-lossless of the same pixels.
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from . import api


def sample_photo() -> Path:
    """Path of the bundled sample photo."""
    try:
        import matplotlib.cbook as cbook
    except ImportError:
        sys.exit("nlc demo: the sample photo comes with matplotlib: pip install 'nlc[bench]'")
    return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def main() -> None:
    """Run the demo."""
    im = Image.open(sample_photo()).convert("RGB")
    subpixels = im.width * im.height * 3
    with tempfile.TemporaryDirectory() as d:
        png = Path(d) / "grace_hopper.png"
        im.save(png, optimize=True)
        webp = io.BytesIO()
        im.save(webp, format="WEBP", lossless=True, quality=100, method=6)
        print(f"sample photo: {im.width}x{im.height} RGB (matplotlib's grace_hopper.jpg, decoded)")
        t0 = time.perf_counter()
        out, stats = api.compress(png, progress=sys.stderr.isatty())
        t1 = time.perf_counter()
        back = api.decompress(out, Path(d) / "back.png", progress=sys.stderr.isatty())
        t2 = time.perf_counter()
        same = Image.open(back).tobytes() == im.tobytes()
        rate = lambda n: f"{n:>8} bytes  {n * 8 / subpixels:.3f} bits/subpixel"  # noqa: E731
        print(f"PNG (optimize)  {rate(png.stat().st_size)}")
        print(f"WebP lossless   {rate(len(webp.getvalue()))}")
        print(f"nlc             {rate(stats['bytes'])}  (model: {stats['model_bits'] / stats['subpixels']:.3f}; "
              f"codec {stats['codec']})")
        print(f"encode {t1 - t0:.1f} s, decode {t2 - t1:.1f} s, round trip {'exact' if same else 'FAILED'}")
        if not same:
            sys.exit(1)


if __name__ == "__main__":
    main()
