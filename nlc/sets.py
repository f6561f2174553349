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
import os
import zlib
from pathlib import Path

import numpy as np

from . import container
from .codec import Codec, spec_of
from .coding.autoregressive import is_exact
from .coding.coders import CoderError
from .datasets import (
    ArrayFile,
    array_bytes,
    is_array_file,
    read_array,
)
from .errors import CodecError, FormatError, InputError, file_errors
from .families import family
from .images import is_16bit
from .registry import spec_for_file

IMAGE_SUFFIXES = {".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP", ".pgm": "PPM",
                  ".pbm": "PPM", ".gif": "GIF"}
LATENT_MODES = ("L", "1")
PHOTO_MODES = ("L", "RGB")


def is_set_codec(name: str) -> bool:
    """Whether a codec (a registered name or a codec TOML's path) codes sets only (a latent-variable or a
    sequence codec)."""
    return family(spec_of(name).family).set_only


def load_set_codec(codec: str | Codec, device: str = "auto") -> Codec:
    """The loaded codec that codes a set: a latent-variable one (on the CPU), or an autoregressive photo codec
    on ``device``. A name is looked up in the registry; a flow codec is refused (it codes single images only)."""
    from .api import resolve_device

    if isinstance(codec, Codec):
        return codec
    spec = spec_of(codec)
    if spec.family == "flow":
        raise CodecError(f"codec {spec.name!r} codes single images only; a set takes a latent-variable codec "
                         "(the *-fmnist codecs) or an autoregressive one (pixelcnnpp, pixelsnail, ...)")
    return Codec.load(codec, "cpu" if family(spec.family).set_only else resolve_device(device))


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
                deep = is_16bit(im)  # before loading: Pillow hands 16-bit RGB over cut to 8 bits
                im.load()
            except (OSError, ValueError) as e:
                raise InputError(f"{f}: cannot read image ({e})") from None
        if deep:
            raise InputError(f"{f}: 16-bit samples; a set stores 8-bit images (compress 16-bit images one file each)")
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


def encode_set(items: np.ndarray, codec: str | Codec, source: dict | None = None,
               progress: bool = False, *, coder: str | None = None, tile: int | None = None,
               device: str = "auto") -> tuple[bytes, dict]:
    """Compress ``(N, H, W)`` uint8 items (``(N, H, W, 3)`` for a photo codec) into set-file bytes.

    Returns the bytes and statistics. ``coder``, ``tile`` and ``device`` apply
    to an autoregressive photo codec (default: the codec's coder and tile, the
    GPU if there is one); a latent-variable codec has its own and runs on the CPU.
    """
    c = load_set_codec(codec, device)
    return c.family.encode_set(c, items, source or {"kind": "array-memory"}, progress, coder, tile)


def decode_set(data: bytes, codec: Codec | None = None, progress: bool = False,
               device: str = "auto") -> tuple[np.ndarray, container.SetHeader]:
    """Decompress set-file bytes to ``(N, H, W)`` (or ``(N, H, W, 3)``) uint8 items and the header.

    ``device`` applies to a set coded by an autoregressive codec (``auto``:
    where it was encoded, if that device is here). ``codec`` overrides the registry
    lookup (its name and weights hash must still match the file's header).
    """
    header, payload = container.unpack_set(data)
    return _decode_unpacked(header, payload, codec, progress, device), header


def _decode_unpacked(header: container.SetHeader, payload: bytes, codec: Codec | None, progress: bool,
                     device: str) -> np.ndarray:
    """:func:`decode_set` of a file already parsed by :func:`nlc.container.unpack_set`."""
    from .api import resolve_device

    if codec is None:
        spec = spec_for_file(header.codec, header.weights_sha256)
        dev = "cpu" if family(spec.family).set_only else resolve_device(device, header.device)
        codec = Codec.from_spec(spec, dev)
    codec.check_file(header.codec, header.weights_sha256)
    if codec.family.set_coding != header.coding:
        raise CodecError(f"file is a set coded as {header.coding!r}, which codec {codec.spec.name!r} "
                         f"({codec.family.name}) does not code")
    try:
        items = codec.family.decode_set(codec, header, payload, progress)
    except (CoderError, ValueError) as e:
        raise FormatError(f"corrupted payload ({e})") from None
    _check_crc(items, header, header.coding == "tiles" and is_exact(codec.model))
    return items


def _check_crc(items: np.ndarray, header: container.SetHeader, exact: bool = False) -> None:
    from .api import mismatch_message

    if zlib.crc32(np.ascontiguousarray(items).tobytes()) != header.pixels_crc32:
        raise FormatError(mismatch_message(header.torch, header.device, None, exact))


def _targets(source: dict, out: Path) -> tuple[Path, list[Path], ArrayFile | None]:
    """Where a set's contents go: ``(folder, files, the array file's format or None)``. ``out`` is a folder,
    or, for a set that holds one array file, that file's new name (with the original's suffix)."""
    if source["kind"] == "array":
        rec = ArrayFile(source["format"], source["gzipped"], base64.b64decode(source["header"]),
                        base64.b64decode(source["gzip_header"]), source["gzip_level"])
        name = source["name"]
        if rec.gzipped and not source.get("gzip_exact"):
            # The original gzip stream came from another deflate implementation: restore its exact content.
            rec.gzipped = False
            name = name[:-3] if name.lower().endswith(".gz") else name + ".raw"
        if out.suffix and not out.is_dir():  # -o fm.npy: the array file itself
            if out.suffix.lower() != Path(name).suffix.lower():
                raise InputError(f"{out}: the set restores {name} byte for byte; name the output "
                                 f"*{Path(name).suffix or ' (no suffix)'} or a folder")
            return out.parent, [out], rec
        return out, [out / name], rec
    if source["kind"] != "files":
        raise InputError("this set was coded from an array in memory (nlc.encode_set without a source) and has no "
                         "file names to restore: decode it with nlc.decode_set")
    if out.suffix and not out.is_dir():
        raise InputError(f"{out}: the set restores {len(source['names'])} images into a folder, and this names a "
                         "file (create the folder first to use that name)")
    return out, [out / n for n in source["names"]], None


def _write_files(items: np.ndarray, source: dict, targets: list[Path], rec: ArrayFile | None) -> list[Path]:
    from PIL import Image

    from .api import _atomic_write

    targets[0].parent.mkdir(parents=True, exist_ok=True)
    if rec is not None:
        blob = array_bytes(items, rec)
        _atomic_write(targets[0], lambda tmp: Path(tmp).write_bytes(blob))
        return targets
    for t, fmt, a in zip(targets, source["formats"], items):
        if source["mode"] == "1":
            im = Image.fromarray(((a > 0) * 255).astype(np.uint8), "L").convert("1", dither=Image.Dither.NONE)
        else:
            im = Image.fromarray(a, "RGB" if a.ndim == 3 else "L")
        kw = {"lossless": True} if fmt == "WEBP" else {}
        _atomic_write(t, lambda tmp, im=im, fmt=fmt, kw=kw: im.save(tmp, format=fmt, **kw))
    return targets


def compress_set(inputs: list[str | Path], dst: str | Path, *, codec: str | Codec,
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
    items, source = read_items(inputs, c.family.set_modes)
    data, stats = encode_set(items, c, source, progress, **kw)
    _atomic_write(dst, lambda tmp: Path(tmp).write_bytes(data))
    return dst, dict(stats, items=len(items), pixels=int(items.size))


def decompress_set(src: str | Path, outdir: str | Path | None = None, *, force: bool = False,
                   progress: bool = False, device: str = "auto", codec: Codec | None = None) -> list[Path]:
    """Restore a set file's images (or array file) into ``outdir``; returns the written paths.

    The default folder is the set's original folder name (for a folder input)
    or the folder holding ``src``. For a set that holds one array file, ``outdir``
    may name that file instead (``-o fm.npy``, with the original's suffix); a set of
    images refuses a name with a suffix that is not an existing folder. Existing
    outputs are refused before any decoding (without ``force``).
    """
    src = Path(src)
    with file_errors(src):
        data = src.read_bytes()
    header, payload = container.unpack_set(data)
    if outdir is None:
        root = header.source.get("root")
        outdir = src.parent / root if root else src.parent
    folder, targets, rec = _targets(header.source, Path(outdir))
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder")
    for t in targets:  # before the work, not after it
        if os.path.lexists(t) and not force:
            raise InputError(f"{t}: already exists (use --force to overwrite)")
    items = _decode_unpacked(header, payload, codec, progress, device)
    return _write_files(items, header.source, targets, rec)
