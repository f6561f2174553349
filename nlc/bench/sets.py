"""``nlc bench --model vae-fmnist --data DIR``: a bits-back codec on a whole test set.

Compresses the 10k Fashion-MNIST test images (binarized at > 127 for binary
codecs) into one set file in memory, decompresses and compares them, and
reports the model's average −ELBO, the real file's bits per pixel, their gap,
the start-up cost of the chain, throughput, and classical baselines on the same
data: gzip and xz on the raw pixel bytes, and the test set as one mosaic image
(100 images per row) through PNG, WebP-lossless and JPEG-XL (effort 9).

JSON schema (``--json FILE``)::

    {"model", "data", "items", "pixels", "device", "versions",
     "neg_elbo_bpd", "file_bpd", "gap_pct", "bytes", "header_bytes",
     "start": {"items", "step", "bits", "neg_elbo_bits", "extra_bits"},  # items coded without bits-back
     "enc_s", "dec_s", "enc_img_per_s", "dec_img_per_s", "lossless",
     "baselines": {name: {"bpd"}}}
"""

from __future__ import annotations

import gzip
import lzma
import platform
import time

import numpy as np
import torch

from .. import __version__
from ..codec import Codec
from ..datasets import binarize, load_fashion_mnist
from ..sets import decode_set, encode_set
from ..train.latent import neg_elbo_bits
from . import BASELINES, baseline_bytes, write_json


def mosaic(items: np.ndarray, per_row: int = 100) -> np.ndarray:
    """Tile ``(N, h, w[, C])`` items into one image, ``per_row`` to a row (the last row padded with zeros)."""
    n, h, w = items.shape[:3]
    rest = items.shape[3:]
    rows = -(-n // per_row)
    pad = np.zeros((rows * per_row - n, h, w, *rest), items.dtype)
    grid = np.concatenate([items, pad]).reshape(rows, per_row, h, w, *rest)
    return grid.swapaxes(1, 2).reshape(rows * h, per_row * w, *rest)


def classical(items: np.ndarray, binary: bool) -> dict[str, int]:
    """Byte sizes of classical codecs on the same data."""
    raw = np.ascontiguousarray(items).tobytes()
    out = {"gzip": len(gzip.compress(raw, 9, mtime=0)), "xz": len(lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME))}
    if binary:
        out["xz_packbits"] = len(lzma.compress(np.packbits(items).tobytes(), preset=9 | lzma.PRESET_EXTREME))
    img = mosaic(items * 255 if binary else items)
    sizes = baseline_bytes(img)
    if "webp" not in sizes:  # libwebp takes colour only: the gray mosaic as R = G = B
        sizes["webp"] = baseline_bytes(np.repeat(img[:, :, None], 3, axis=2)).get("webp", 0)
    out.update({f"{k}_mosaic": v for k, v in sizes.items() if v})
    return out


def run_set_bench(model: str, data: str, *, limit: int | None = None, json_path: str | None = None,
                  baselines: bool = True, progress: bool = False) -> dict:
    """Benchmark a set codec on the Fashion-MNIST test set in ``data``; prints a summary and returns the JSON dict."""
    codec = Codec.load(model)
    items = load_fashion_mnist(data, "test")[:limit]
    if codec.bits == 1:
        items = binarize(items)
    pixels = int(items.size)
    latent = codec.family.name == "bitsback"
    elbo = neg_elbo_bits(codec.model, items)  # a sequence model's loss is its exact -log2 p (float weights)
    t0 = time.perf_counter()
    blob, stats = encode_set(items, codec, progress=progress)
    t1 = time.perf_counter()
    out, _ = decode_set(blob, codec, progress=progress)
    t2 = time.perf_counter()
    lossless = bool(np.array_equal(out, items))
    res = {
        "model": codec.spec.name, "data": f"{data} (test set{', binarized > 127' if codec.bits == 1 else ''})",
        "items": len(items), "pixels": pixels,
        "device": f"cpu ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})",
        "versions": {"nlc": __version__, "torch": torch.__version__, "python": platform.python_version()},
        "file_bpd": len(blob) * 8 / pixels, "bytes": len(blob), "header_bytes": stats["header_bytes"],
        "enc_s": round(t1 - t0, 2), "dec_s": round(t2 - t1, 2),
        "enc_img_per_s": round(len(items) / (t1 - t0), 1), "dec_img_per_s": round(len(items) / (t2 - t1), 1),
        "lossless": lossless, "baselines": {},
    }
    if latent:
        res.update({"neg_elbo_bpd": float(elbo.sum() / pixels), "batches": stats["batches"],
                    "start": {"items": stats["start_items"], "step": stats["start_step"], "bits": stats["start_bits"],
                              "neg_elbo_bits": float(elbo[: stats["start_items"]].sum()),
                              "extra_bits": stats["start_bits"] - float(elbo[: stats["start_items"]].sum())}})
        res["gap_pct"] = 100 * (res["file_bpd"] / res["neg_elbo_bpd"] - 1)
    else:  # the exact model's -log2 p under the tables coded with, and the float model's
        res.update({"model_bpd": stats["model_bits"] / pixels, "float_model_bpd": float(elbo.sum() / pixels)})
        res["gap_pct"] = 100 * (res["file_bpd"] / res["model_bpd"] - 1)
    if baselines:
        res["baselines"] = {k: {"bpd": v * 8 / pixels} for k, v in classical(items, codec.bits == 1).items()}
    start = (f"{res['start']['items']} start items {res['start']['extra_bits']:+.0f} bits over their -ELBO; "
             if latent else "")
    model_bpd = res["neg_elbo_bpd"] if latent else res["model_bpd"]
    print(f"{res['model']} on {res['items']} images: {'-ELBO' if latent else 'model'} {model_bpd:.4f} bits/dim, file "
          f"{res['file_bpd']:.4f} bits/dim (gap {res['gap_pct']:+.3f}%), header {res['header_bytes']} B, "
          f"{start}encode {res['enc_s']:.1f} s ({res['enc_img_per_s']:.0f} img/s), decode {res['dec_s']:.1f} s "
          f"({res['dec_img_per_s']:.0f} img/s), lossless: {'yes' if lossless else 'NO'}")
    if res["baselines"]:
        print("baselines (bits/dim): " + ", ".join(f"{k} {v['bpd']:.4f}" for k, v in res["baselines"].items()))
    if json_path:
        write_json(json_path, res)
    return res


__all__ = ["run_set_bench", "neg_elbo_bits", "mosaic", "classical", "BASELINES"]
