"""Many same-sized images in one file (a set).

A latent-variable codec codes a set as one bits-back chain; an autoregressive
photo codec (``pixelcnnpp``, ``pixelsnail``, ...) codes the tiles of all the
images as one batch, so small images share every step of the pixel loop.

>>> import nlc.sets as sets
>>> sets.compress_set(["shirts/"], "shirts.nlc", codec="vae-fmnist")          # doctest: +SKIP
>>> sets.decompress_set("shirts.nlc", "restored/")                            # doctest: +SKIP
>>> sets.compress_set(["t10k-images-idx3-ubyte.gz"], "test.nlc", codec="bitswap-fmnist")  # doctest: +SKIP
>>> sets.compress_set(["thumbnails/"], "thumbs.nlc", codec="pixelcnnpp")     # doctest: +SKIP

Inputs are either one array file (idx, idx.gz or .npy of shape ``(N, H, W)``,
or ``(N, H, W, 3)`` for a photo codec, restored byte for byte) or image files
and folders of same-sized images (restored with identical pixels, names and
order): gray for a latent codec, gray or RGB for a photo codec. A binary codec
takes images whose pixels are all 0/1 or all 0/255 and restores the same values.
"""

from __future__ import annotations

import base64
import importlib.metadata
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from . import container
from .coding.autoregressive import (
    GROUP,
    decode_items,
    encode_items,
    is_exact,
    progress_total,
)
from .coding.bitsback import (
    START_STEPS,
    LatentGrid,
    decode_chain,
    encode_chain,
    make_item_codec,
    model_grid,
    start_grid,
)
from .coding.coders import CODERS, PRECISION, CoderError
from .datasets import (
    ArrayFile,
    array_bytes,
    image_array_shape,
    is_array_file,
    read_array,
)
from .errors import CodecError, FormatError, InputError, file_errors
from .registry import CodecSpec, get_spec, load_model, spec_for_file
from .threads import torch_threads

if TYPE_CHECKING:
    from .api import Codec

IMAGE_SUFFIXES = {".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP", ".pgm": "PPM",
                  ".pbm": "PPM", ".gif": "GIF"}
LATENT_MODES = ("L", "1")
PHOTO_MODES = ("L", "RGB")


@dataclass
class SetCodec:
    """A latent-variable codec with its loaded model."""

    name: str
    sha256: str
    model: torch.nn.Module

    @classmethod
    def load(cls, name: str) -> "SetCodec":
        """Load a registered latent-variable codec (weights checked against their sha256)."""
        return cls.from_spec(get_spec(name))

    @classmethod
    def from_spec(cls, spec: CodecSpec) -> "SetCodec":
        """Load the latent-variable codec of ``spec`` (a registered or an archived one)."""
        if spec.family != "bitsback":
            raise CodecError(f"codec {spec.name!r} codes single images, not sets (use one of the *-fmnist codecs)")
        return cls(spec.name, spec.sha256, load_model(spec))

    @property
    def bits(self) -> int:
        """1 for binary images, 8 for gray levels."""
        return self.model.cfg.bits

    @property
    def shape(self) -> tuple[int, int]:
        """Item height and width the model codes."""
        return (28, 28)


def is_set_codec(name: str) -> bool:
    """Whether a codec name is a latent-variable codec, which codes sets only."""
    return get_spec(name).family == "bitsback"


def load_set_codec(codec: str | SetCodec | Codec, device: str = "auto") -> SetCodec | Codec:
    """The loaded codec that codes a set: a latent-variable one, or an autoregressive photo codec on ``device``.

    A name is looked up in the registry; a flow codec is refused (it codes single images only).
    """
    from .api import Codec, resolve_device

    if isinstance(codec, SetCodec):
        return codec
    spec = get_spec(codec) if isinstance(codec, str) else codec.spec
    if spec.family == "bitsback":
        return SetCodec.from_spec(spec)
    if spec.family == "flow":
        raise CodecError(f"codec {spec.name!r} codes single images only; a set takes a latent-variable codec "
                         "(the *-fmnist codecs) or an autoregressive one (pixelcnnpp, pixelsnail, ...)")
    return Codec.from_spec(spec, resolve_device(device)) if isinstance(codec, str) else codec


def _image_files(inputs: list[Path]) -> tuple[list[Path], list[str], str | None]:
    files, names, root = [], [], None
    for p in inputs:
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
            if not found:
                raise InputError(f"{p}: no images found")
            files += found
            names += [f.name for f in found]
            root = p.resolve().name if len(inputs) == 1 else None
        elif p.is_file():
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                raise InputError(f"{p}: not an image file this codec stores ({', '.join(sorted(IMAGE_SUFFIXES))})")
            files.append(p)
            names.append(p.name)
        else:
            raise InputError(f"{p}: no such file or folder")
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise InputError(f"two inputs are named {sorted(dupes)[0]}: names must be unique within a set")
    return files, names, root


def read_items(inputs: list[str | Path], modes: tuple[str, ...] = LATENT_MODES) -> tuple[np.ndarray, dict]:
    """Load a set's images as ``(N, H, W)`` (or ``(N, H, W, 3)``) uint8 plus a ``source`` record to restore them.

    ``modes`` are the image modes the codec stores (``LATENT_MODES`` or ``PHOTO_MODES``).
    """
    from PIL import Image

    paths = [Path(p) for p in inputs]
    if len(paths) == 1 and paths[0].is_file() and is_array_file(paths[0]):
        with file_errors(paths[0]):
            arr, rec = read_array(paths[0], verify_gzip=True)
        src = {"kind": "array", "name": paths[0].name, "format": rec.kind, "gzipped": rec.gzipped,
               "header": base64.b64encode(rec.header).decode(), "gzip_header": base64.b64encode(rec.gzip_header).decode(),
               "gzip_level": rec.gzip_level, "gzip_exact": rec.gzip_exact}
        return arr, src
    files, names, root = _image_files(paths)
    arrays, seen, formats = [], set(), []
    for f in files:
        with file_errors(f):
            try:
                im = Image.open(f)
                im.load()
            except (OSError, ValueError) as e:
                raise InputError(f"{f}: cannot read image ({e})") from None
        if im.mode not in modes:
            what = "8-bit gray (L) or 1-bit" if modes == LATENT_MODES else "8-bit gray (L) or RGB"
            raise InputError(f"{f}: mode {im.mode}; this codec stores {what} images")
        seen.add(im.mode)
        arrays.append(np.asarray(im, dtype=np.uint8))
        formats.append(IMAGE_SUFFIXES[f.suffix.lower()])
    if len(seen) > 1:
        raise InputError(f"a set must not mix image modes, found {' and '.join(sorted(seen))}")
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise InputError(f"all images of a set must have the same size, found {sorted(shapes)[:2]}")
    return np.stack(arrays), {"kind": "files", "names": names, "formats": formats, "mode": seen.pop(), "root": root}


def _coded_values(items: np.ndarray, bits: int) -> tuple[np.ndarray, int]:
    """What the model codes and the scale that restores the stored values."""
    if bits == 8:
        return items, 1
    values = np.unique(items)
    if set(values.tolist()) <= {0, 1}:
        return items, 1
    if set(values.tolist()) <= {0, 255}:
        return (items // 255).astype(np.uint8), 255
    raise InputError(f"a binary codec needs pixels that are all 0/1 or all 0/255, found {values[:6].tolist()}...")


def encode_set(items: np.ndarray, codec: str | SetCodec | Codec, source: dict | None = None,
               progress: bool = False, *, coder: str | None = None, tile: int | None = None,
               device: str = "auto") -> tuple[bytes, dict]:
    """Compress ``(N, H, W)`` uint8 items (``(N, H, W, 3)`` for a photo codec) into set-file bytes.

    Returns the bytes and statistics. ``coder``, ``tile`` and ``device`` apply
    to an autoregressive photo codec (default: the codec's coder and tile, the
    GPU if there is one); a latent-variable codec has its own and runs on the CPU.
    """
    from tqdm import tqdm

    c = load_set_codec(codec, device)
    if not isinstance(c, SetCodec):
        return _encode_tiles(items, c, source, progress, coder, tile)
    if items.ndim != 3 or items.shape[1:] != c.shape:
        raise InputError(f"codec {c.name!r} codes {c.shape[0]}x{c.shape[1]} images, got items of shape {items.shape[1:]}")
    values, scale = _coded_values(items, c.bits)
    grid = model_grid(c.model)
    threads = torch.get_num_threads()
    t0 = time.perf_counter()
    start = start_grid(c.model, values[0], grid) if len(values) else grid
    with tqdm(total=len(items), desc="encode", unit="img", disable=not progress, leave=False) as bar:
        payload, stats = encode_chain(make_item_codec(c.model, grid), values, progress=bar.update,
                                      start_codec=make_item_codec(c.model, start))
    header = container.SetHeader(
        codec=c.name, weights_sha256=c.sha256, constriction=importlib.metadata.version("constriction"),
        torch=torch.__version__, device="cpu", count=len(items), height=c.shape[0], width=c.shape[1], bits=c.bits,
        scale=scale, pixels_crc32=zlib.crc32(np.ascontiguousarray(items).tobytes()),
        schedule=container.schedule_runs(stats.schedule), source=source or {"kind": "array-memory"},
        precision=PRECISION, latent_step=grid.step, latent_bound=grid.bound, start_bits=stats.start_bits,
        start_items=stats.start_items, start_step=start.step, threads=threads)
    data = container.pack_set(header, payload)
    return data, {"bytes": len(data), "payload_bytes": len(payload), "header_bytes": len(data) - len(payload),
                  "start_items": stats.start_items, "start_bits": stats.start_bits, "start_step": start.step,
                  "batches": len(stats.schedule),
                  "seconds": time.perf_counter() - t0}


def decode_set(data: bytes, codec: SetCodec | Codec | None = None, progress: bool = False,
               device: str = "auto") -> tuple[np.ndarray, container.SetHeader]:
    """Decompress set-file bytes to ``(N, H, W)`` (or ``(N, H, W, 3)``) uint8 items and the header.

    ``device`` applies to a set coded by an autoregressive codec (``auto``:
    where it was encoded, if that device is here).
    """
    from tqdm import tqdm

    header, payload = container.unpack_set(data)
    if header.coding == "tiles":
        return _decode_tiles(header, payload, codec, progress, device), header
    if codec is not None and not isinstance(codec, SetCodec):
        raise CodecError(f"file was coded with the latent-variable codec {header.codec!r}, not an autoregressive one")
    c = codec or SetCodec.from_spec(spec_for_file(header.codec, header.weights_sha256))
    _check_codec(header, c.name, c.sha256)
    schedule = container.schedule_from_runs(header.schedule)
    if sum(schedule) != header.count or header.latent_step != LatentGrid().step or header.precision != PRECISION \
            or header.latent_bound not in (8.0, 16.0):
        raise FormatError("corrupted header (batch schedule, latent grid or precision)")
    if header.start_step not in START_STEPS or not 0 <= header.start_items <= len(schedule):
        raise FormatError(f"corrupted header (start items {header.start_items} on latent step {header.start_step})")
    if not 1 <= header.threads <= 1024:
        raise FormatError(f"corrupted header (threads {header.threads})")
    try:
        with torch_threads(header.threads), \
                tqdm(total=header.count, desc="decode", unit="img", disable=not progress, leave=False) as bar:
            grid, start = (LatentGrid(s, header.latent_bound) for s in (header.latent_step, header.start_step))
            values = decode_chain(make_item_codec(c.model, grid), payload, schedule, header.start_items,
                                  progress=bar.update, start_codec=make_item_codec(c.model, start))
    except CoderError as e:
        raise FormatError(f"corrupted payload ({e})") from None
    items = (values * header.scale).astype(np.uint8)
    _check_crc(items, header)
    return items, header


def _check_codec(header: container.SetHeader, name: str, sha256: str) -> None:
    if name != header.codec:
        raise CodecError(f"file was coded with codec {header.codec!r}, not {name!r}")
    if sha256 != header.weights_sha256:
        raise CodecError(f"file was coded with {header.codec!r} weights {header.weights_sha256[:12]}..., "
                         f"but the registry has {sha256[:12]}...")


def _check_crc(items: np.ndarray, header: container.SetHeader, exact: bool = False) -> None:
    from .api import mismatch_message

    if zlib.crc32(np.ascontiguousarray(items).tobytes()) != header.pixels_crc32:
        raise FormatError(mismatch_message(header.torch, header.device, None, exact))


def _encode_tiles(items: np.ndarray, c: Codec, source: dict | None, progress: bool, coder: str | None,
                  tile: int | None) -> tuple[bytes, dict]:
    """A set coded by an autoregressive codec: the tiles of all its images in one batch."""
    from .api import _progress

    if not image_array_shape(items.shape) or items.dtype != np.uint8:
        raise InputError(f"codec {c.spec.name!r} codes uint8 arrays of shape (N, H, W) or (N, H, W, 3), "
                         f"got {items.dtype} {items.shape}")
    if items.shape[1] < 1 or items.shape[2] < 1:
        raise InputError(f"images of a set must be at least 1x1, got {items.shape[2]}x{items.shape[1]}")
    coder, tile = c.coding(coder, tile)
    pixels = items if items.ndim == 4 else items[..., None]
    n, h, w, channels = pixels.shape
    t0 = time.perf_counter()
    with _progress(progress_total(h, w, tile, GROUP, n), "encode", progress) as bar:
        payload, bits = encode_items(c.model, c.mixtures, pixels, tile, coder, GROUP, bar,
                                     c.spec.adaptive or None)
    header = container.SetHeader(
        codec=c.spec.name, weights_sha256=c.spec.sha256, constriction=importlib.metadata.version("constriction"),
        torch=torch.__version__, device=c.device, count=n, height=h, width=w, bits=8, scale=1,
        pixels_crc32=zlib.crc32(np.ascontiguousarray(items).tobytes()), schedule=[],
        source=source or {"kind": "array-memory"}, coder=coder, precision=PRECISION,
        threads=torch.get_num_threads(), coding="tiles", channels=channels, tile=tile, group=GROUP)
    data = container.pack_set(header, payload)
    return data, {"bytes": len(data), "payload_bytes": len(payload), "header_bytes": len(data) - len(payload),
                  "model_bits": bits, "seconds": time.perf_counter() - t0}


def _decode_tiles(header: container.SetHeader, payload: bytes, codec: SetCodec | Codec | None, progress: bool,
                  device: str) -> np.ndarray:
    """Decode a set coded by :func:`_encode_tiles`."""
    from .api import Codec, _progress, resolve_device

    n, h, w, ch = header.count, header.height, header.width, header.channels
    if header.coder not in CODERS or header.precision != PRECISION or ch not in (1, 3) or header.bits != 8 \
            or header.scale != 1:
        raise FormatError(f"corrupted header (coder {header.coder!r}, precision {header.precision}, "
                          f"{ch} channels, {header.bits} bits)")
    if not (0 <= n and 1 <= h <= container.MAX_SIDE and 1 <= w <= container.MAX_SIDE
            and n * h * w <= container.MAX_PIXELS):
        raise FormatError(f"header claims absurd dimensions: {n} images of {w}x{h}")
    if not (1 <= header.tile <= container.MAX_SIDE and 1 <= header.group <= 1 << 20 and 1 <= header.threads <= 1024):
        raise FormatError(f"corrupted header (tile {header.tile}, group {header.group}, threads {header.threads})")
    if codec is not None and not isinstance(codec, Codec):
        raise CodecError(f"file was coded with the autoregressive codec {header.codec!r}, not a latent-variable one")
    c = codec or Codec.from_spec(spec_for_file(header.codec, header.weights_sha256),
                                 resolve_device(device, header.device))
    _check_codec(header, c.spec.name, c.spec.sha256)
    try:
        with torch_threads(header.threads), \
                _progress(progress_total(h, w, header.tile, header.group, n), "decode", progress) as bar:
            pixels = decode_items(c.model, c.mixtures, n, h, w, ch, header.tile, header.coder, payload,
                                  header.group, bar, c.spec.adaptive or None)
    except (CoderError, ValueError) as e:
        raise FormatError(f"corrupted payload ({e})") from None
    items = pixels if ch == 3 else pixels[..., 0]
    _check_crc(items, header, is_exact(c.model))
    return items


def _write_files(items: np.ndarray, source: dict, outdir: Path, force: bool) -> list[Path]:
    from PIL import Image

    from .api import _atomic_write

    outdir.mkdir(parents=True, exist_ok=True)
    if source["kind"] == "array":
        rec = ArrayFile(source["format"], source["gzipped"], base64.b64decode(source["header"]),
                        base64.b64decode(source["gzip_header"]), source["gzip_level"])
        name = source["name"]
        if rec.gzipped and not source.get("gzip_exact"):
            # The original gzip stream came from another deflate implementation: restore its exact content.
            rec.gzipped = False
            name = name[:-3] if name.lower().endswith(".gz") else name + ".raw"
        targets = [outdir / name]
        blobs = [array_bytes(items, rec)]
    else:
        targets = [outdir / n for n in source["names"]]
        blobs = None
    for t in targets:
        if t.exists() and not force:
            raise InputError(f"{t}: already exists (use --force to overwrite)")
    if blobs is not None:
        _atomic_write(targets[0], lambda tmp: Path(tmp).write_bytes(blobs[0]))
        return targets
    for t, fmt, a in zip(targets, source["formats"], items):
        if source["mode"] == "1":
            im = Image.fromarray(((a > 0) * 255).astype(np.uint8), "L").convert("1", dither=Image.Dither.NONE)
        else:
            im = Image.fromarray(a, "RGB" if a.ndim == 3 else "L")
        kw = {"lossless": True} if fmt == "WEBP" else {}
        _atomic_write(t, lambda tmp, im=im, fmt=fmt, kw=kw: im.save(tmp, format=fmt, **kw))
    return targets


def compress_set(inputs: list[str | Path], dst: str | Path, *, codec: str | SetCodec | Codec,
                 force: bool = False, progress: bool = False, **kw) -> tuple[Path, dict]:
    """Compress image files/folders or one array file into the set file ``dst``.

    ``codec`` is a latent-variable or an autoregressive codec; ``kw`` (``coder``,
    ``tile``, ``device``) go to :func:`encode_set`.
    """
    from .api import _atomic_write, check_output

    dst = Path(dst)
    if dst.is_dir():
        raise InputError(f"{dst}: is a folder; a set is one file (-o SET.nlc)")
    check_output(dst, force)
    c = load_set_codec(codec, kw.get("device", "auto"))
    items, source = read_items(inputs, LATENT_MODES if isinstance(c, SetCodec) else PHOTO_MODES)
    data, stats = encode_set(items, c, source, progress, **kw)
    _atomic_write(dst, lambda tmp: Path(tmp).write_bytes(data))
    return dst, dict(stats, items=len(items), pixels=int(items.size))


def decompress_set(src: str | Path, outdir: str | Path | None = None, *, force: bool = False,
                   progress: bool = False, device: str = "auto") -> list[Path]:
    """Restore a set file's images (or array file) into ``outdir``; returns the written paths.

    The default folder is the set's original folder name (for a folder input)
    or the folder holding ``src``.
    """
    src = Path(src)
    with file_errors(src):
        data = src.read_bytes()
    items, header = decode_set(data, progress=progress, device=device)
    if outdir is None:
        root = header.source.get("root")
        outdir = src.parent / root if root else src.parent
    return _write_files(items, header.source, Path(outdir), force)
