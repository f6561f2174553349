"""The library API behind the CLI: compress and decompress images and files.

>>> import nlc
>>> nlc.compress("photo.png")            # writes photo.png.nlc       # doctest: +SKIP
>>> nlc.decompress("photo.png.nlc")      # writes photo.png again     # doctest: +SKIP
>>> data, stats = nlc.encode_image(Image.open("photo.png"))           # doctest: +SKIP
>>> image = nlc.decode_image(data)                                     # doctest: +SKIP
"""

from __future__ import annotations

import importlib.metadata
import io
import os
import struct
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from . import container, images, metadata
from .codec import Codec
from .coding.autoregressive import group_for, is_exact
from .coding.coders import CODERS, PRECISION, CoderError
from .coding.low_bytes import decode_rest, encode_rest
from .coding.planes import (
    decode_bits,
    decode_plane,
    decode_webp,
    encode_bits,
    encode_plane,
    encode_webp,
    webp_can_hold,
)
from .errors import FormatError, InputError, NlcError, file_errors
from .progress import Superseded, abort_when
from .registry import DEFAULT, encoder_kind, spec_for_file
from .registry import decodes_on as decodes_on  # its home before nlc.registry
from .threads import cpu_kind

SUFFIX = ".nlc"
_CONSTRICTION = importlib.metadata.version("constriction")


def mismatch_message(encoded_with: str, device: str, cpu: str | None, exact: bool) -> str:
    """What a CRC mismatch of decoded pixels says: a corrupted file for an exact codec; for a float
    codec, most likely other floats than the encoder's, with what to do about it."""
    if exact:
        return "decoded pixels do not match the original's CRC-32 (corrupted payload)"
    there = encoder_kind(encoded_with, device, cpu)
    here = f"torch {torch.__version__} on {'cpu (' + cpu_kind() + ')' if device == 'cpu' else device}"
    return (f"decoded pixels do not match the original's CRC-32 (encoded with {there}; this is {here}): "
            "a float codec's file decodes where its floats are reproduced, with the same torch on the same kind "
            "of machine; codecs with exact arithmetic (e.g. pixelcnnpp-exact) write files that decode anywhere")


def resolve_device(device: str, recorded: str | None = None) -> str:
    """``auto`` -> the device a file was encoded on if it is here (else CUDA if present, else CPU).

    Model outputs are bit-identical only on the same kind of device, so a
    file decodes where it was encoded; ``cuda`` without a GPU is an error.
    """
    if device == "auto":
        if recorded is not None:
            device = recorded if recorded == "cpu" or torch.cuda.is_available() else "cpu"
        else:
            device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise InputError(f"unknown device {device!r} (use auto, cpu or cuda)")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("device cuda requested, but CUDA is not available on this machine")
    return device


def _resolve(codec: str | Codec, device: str) -> Codec:
    if isinstance(codec, Codec):
        return codec
    return Codec.load(codec, device)


def encode_image(
    image: images.AnyImage,
    codec: str | Codec = DEFAULT,
    *,
    coder: str | None = None,
    tile: int | None = None,
    device: str = "auto",
    progress: bool = False,
    keep_metadata: bool = True,
    fallback: bool = True,
) -> tuple[bytes, dict]:
    """Compress a Pillow image (or a 16-bit :class:`nlc.images.Image16`) to ``.nlc`` bytes.

    With ``fallback`` (the default), the pixels are also coded as lossless
    WebP, and the file keeps whichever is smaller: a screenshot or a drawing
    can cost a photo model many times what WebP needs. ``fallback=False``
    always keeps the model's coding (benchmarks of the model use that).
    The image's metadata (ICC profile, EXIF, XMP, PNG colour and text chunks,
    resolution: :mod:`nlc.metadata`) is kept unless ``keep_metadata`` is false.
    Returns the file's bytes and statistics: ``codec`` (the codec's name, an
    alias resolved), ``model_bits`` (the model's
    ``-log2 p`` of the model-coded sub-pixels), ``subpixels`` (their number),
    ``plane_bytes`` (classically coded planes), ``metadata_bytes``,
    ``header_bytes`` and ``pixels_coder`` (``"model"``, ``"webp"`` when the
    fallback won, or ``None`` without model-coded pixels) with
    ``model_payload_bytes`` (what the model's coding took, kept or not). For
    pixels that lossless WebP codes below :data:`SKIP_CHECK_RATE` bits per
    sub-pixel, the model's rate is first estimated on a few tiles; where it is
    over :data:`SKIP_MARGIN` times WebP's, the model's coding is skipped
    (``model_bits`` and ``model_payload_bytes`` are then ``None``, and
    ``model_estimate`` holds the estimate): a big screenshot takes a second,
    not minutes.
    """
    images.check_image(image)
    c = _resolve(codec, resolve_device(device))
    dev = c.device
    coder_name, tile = c.coding(coder, tile, (image.height, image.width))
    pixels = images.model_pixels(image)
    plane = images.plane_of(image)
    model_bits: float | None = 0.0
    model_payload = b""
    extra: dict = {}
    pixel_stats: dict = {"pixels_coder": None}
    if pixels is not None:
        model_payload, model_bits, extra, pixel_stats = _pixel_payload(c, pixels, tile, coder_name, progress,
                                                                       fallback)
    plane_payload = b""
    if isinstance(image, images.Image16) and pixels is not None:
        plane_payload = encode_rest(image.samples, pixels.shape[2])  # low bytes, alpha
    elif plane is not None:
        plane_payload = encode_bits(plane) if image.mode == "1" else encode_plane(plane)
    palette, palette_mode = images.palette_of(image) if image.mode == "P" else (b"", "RGB")
    if image.mode == "P" and palette_mode != "RGB":
        extra["palette_mode"] = palette_mode
    t = images.transparency_of(image)
    if t is not None:
        extra["transparency"] = t
    header = container.Header(
        codec=c.spec.name, weights_sha256=c.spec.sha256, coder=coder_name, precision=PRECISION,
        constriction=_CONSTRICTION, torch=torch.__version__, device=dev,
        width=image.width, height=image.height, mode=image.mode,
        model_channels=0 if pixels is None else pixels.shape[2], bit_depth=1 if image.mode == "1" else 16 if isinstance(image, images.Image16) else 8,
        tile=tile, group=group_for(tile), pixels_crc32=images.pixels_crc32(image), palette=palette, extra=extra,
        metadata=metadata.pack(metadata.collect(image)) if keep_metadata else b"",
    )
    data = container.pack(header, model_payload, plane_payload)
    stats = {
        "codec": c.spec.name,
        "tile": tile,
        "model_bits": model_bits,
        "subpixels": 0 if pixels is None else int(pixels.size),
        "plane_bytes": len(plane_payload),
        "metadata_bytes": len(header.metadata),
        **pixel_stats,
        "header_bytes": len(data) - len(model_payload) - len(plane_payload) - len(header.metadata),
    }
    return data, stats


SKIP_CHECK_RATE = 2.0  # below this many bits per sub-pixel from WebP, estimate the model's rate first
SKIP_MARGIN = 1.25  # and skip the model where its estimate is over this many times WebP's rate


def _pixel_payload(c: Codec, pixels: np.ndarray, tile: int, coder_name: str, progress: bool,
                   fallback: bool) -> tuple[bytes, float | None, dict, dict]:
    """The model payload of an image's model-coded pixels: ``(payload, model bits, header extra, stats)``.

    With ``fallback``, lossless WebP of the same pixels replaces the model's coding where it is smaller,
    and the model is not run at all where a quick estimate puts it far above WebP.
    """
    payload = None
    if fallback and webp_can_hold(*pixels.shape[:2]):
        # WebP on a thread of its own beside the model (Pillow's encoder releases the GIL); the model's
        # coding stops if WebP turns out cheap enough for the model's rate to be estimated first
        with ThreadPoolExecutor(max_workers=1) as pool:
            job = pool.submit(encode_webp, pixels)
            try:
                with abort_when(lambda: job.done() and _rate(job.result(), pixels) < SKIP_CHECK_RATE):
                    payload, bits, extra = c.family.encode_pixels(c, pixels, tile, coder_name, progress)
            except Superseded:
                payload = None
            webp: bytes | None = job.result()
    else:
        webp = None
    webp_rate = None if webp is None else _rate(webp, pixels)
    if webp is not None and webp_rate is not None and webp_rate < SKIP_CHECK_RATE:
        estimate = c.family.estimate_rate(c, pixels, tile)
        if estimate is not None and estimate > SKIP_MARGIN * webp_rate:
            return webp, None, {"pixels": "webp"}, {"pixels_coder": "webp", "model_payload_bytes": None,
                                                    "model_estimate": estimate}
    if payload is None:
        payload, bits, extra = c.family.encode_pixels(c, pixels, tile, coder_name, progress)
    stats = {"pixels_coder": "model", "model_payload_bytes": len(payload)}
    if webp is not None and len(webp) < len(payload):
        return webp, bits, {"pixels": "webp"}, dict(stats, pixels_coder="webp")  # the model's facts do not apply
    return payload, bits, extra, stats


def _rate(webp: bytes, pixels: np.ndarray) -> float:
    """Bits per sub-pixel of ``webp``, the lossless WebP of ``pixels``."""
    return len(webp) * 8 / pixels.size


def read_header(data: bytes) -> container.Header:
    """Parse and check a ``.nlc`` file's header (and its CRCs)."""
    return container.unpack(data)[0]


def decode_image(data: bytes, *, device: str = "auto", progress: bool = False,
                 codec: Codec | None = None) -> tuple[images.AnyImage, object]:
    """Decompress ``.nlc`` bytes; returns the image (an :class:`nlc.images.Image16` for a 16-bit one) and
    its PNG transparency entry (or ``None``).

    The metadata the file kept is on the image's ``info``, under Pillow's names
    (:func:`nlc.metadata.attach`); :func:`png_bytes` and :func:`decompress` write it.

    ``codec`` overrides the registry lookup (its name and weights hash must
    still match the file's header): a codec of one's own, :meth:`Codec.from_toml`.
    """
    return decode_unpacked(container.unpack(data), device, progress, codec)


def decode_unpacked(unpacked: tuple[container.Header, bytes, bytes], device: str, progress: bool,
                     codec: Codec | None) -> tuple[images.AnyImage, object]:
    """:func:`decode_image` of a file already parsed by :func:`nlc.container.unpack`."""
    header, model_payload, plane_payload = unpacked
    record = metadata.unpack(header.metadata)
    dev = resolve_device(device, header.device)
    if header.coder not in CODERS or header.precision != PRECISION:
        raise FormatError(f"unsupported coder {header.coder!r} with precision {header.precision}")
    if header.mode not in images.MODEL_MODES or images.MODEL_MODES[header.mode] != header.model_channels:
        raise FormatError(f"corrupted header (mode {header.mode!r} with {header.model_channels} model channels)")
    sixteen = header.mode in images.MODES16
    if header.bit_depth != (16 if sixteen else 1 if header.mode == "1" else 8):
        raise FormatError(f"corrupted header (bit depth {header.bit_depth} for mode {header.mode!r})")
    pixels = plane = samples = None
    pixels_coder = header.extra.get("pixels", "model")
    if pixels_coder not in ("model", "webp"):
        raise FormatError(f"unknown pixel coder {pixels_coder!r} (this nlc knows model and webp)")
    try:
        if header.model_channels and pixels_coder == "webp":
            pixels = decode_webp(model_payload, header.height, header.width, header.model_channels)
        elif header.model_channels:
            c = codec or Codec.from_spec(spec_for_file(header.codec, header.weights_sha256), dev)
            c.check_file(header.codec, header.weights_sha256)
            pixels = c.family.decode_pixels(c, header, model_payload, progress)
        if header.mode in ("1",):
            plane = decode_bits(plane_payload, header.height, header.width)
        elif header.mode in ("RGBA", "LA", "P"):
            plane = decode_plane(plane_payload, header.height, header.width)
        elif sixteen and pixels is not None:
            samples = decode_rest(plane_payload, pixels, len(images.Image16.bands(header.mode)))
    except (CoderError, ValueError) as e:
        raise FormatError(f"corrupted payload ({e})") from None
    im: images.AnyImage
    if sixteen and samples is not None:
        im = images.Image16(samples, header.mode)
    else:
        im = images.assemble(header.mode, pixels, plane, header.palette, header.extra.get("palette_mode", "RGB"))
    if images.pixels_crc32(im) != header.pixels_crc32:
        exact = bool(header.model_channels) and (pixels_coder == "webp" or is_exact(c.model))
        raise FormatError(mismatch_message(header.torch, header.device, header.extra.get("cpu"), exact))
    return metadata.attach(im, record), header.extra.get("transparency")


def _atomic_write(dst: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename over ``dst``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_output(dst: Path, force: bool, src: Path | None = None) -> None:
    """Refuse an existing ``dst`` (a dangling symlink counts) without ``force``, the input ``src`` itself
    even with ``force``, and a ``dst`` in a folder that does not exist."""
    if src is not None and dst.exists() and src.exists() and os.path.samefile(src, dst):
        raise InputError(f"{dst}: is the input file (choose another output name)")
    if os.path.lexists(dst) and not force:
        raise InputError(f"{dst}: already exists (use --force to overwrite)")
    if not dst.parent.is_dir():
        raise InputError(f"{dst.parent}: no such folder")


def default_output(src: Path, decompress: bool) -> Path:
    """``photo.png -> photo.png.nlc``; ``photo.png.nlc -> photo.png``; ``x.webp.nlc -> x.png``."""
    if not decompress:
        return src.with_name(src.name + SUFFIX)
    name = src.name[: -len(SUFFIX)] if src.name.endswith(SUFFIX) else src.name + ".out"
    stem = Path(name)
    return src.with_name(name if stem.suffix.lower() == ".png" else stem.stem + ".png")


def write_file(dst: str | Path, data: bytes, *, force: bool = False) -> Path:
    """Write ``data`` to ``dst`` through a temporary file and a rename; refuse to overwrite without ``force``."""
    dst = Path(dst)
    check_output(dst, force)
    with file_errors(dst):
        _atomic_write(dst, lambda tmp: Path(tmp).write_bytes(data))
    return dst


def compress(src: str | Path, dst: str | Path | None = None, *, codec: str | Codec = DEFAULT,
             force: bool = False, progress: bool = False, **kw) -> tuple[Path, dict]:
    """Compress an image file to ``dst`` (default ``src + ".nlc"``); returns the path and stats
    (:func:`encode_image`'s, with ``bytes``, ``input_bytes`` and ``input_format``, Pillow's name)."""
    src = Path(src)
    dst = Path(dst) if dst else default_output(src, False)
    check_output(dst, force, src)
    im = images.read_image(src)
    data, stats = encode_image(im, codec, progress=progress, **kw)
    stats = dict(stats, bytes=len(data), input_bytes=src.stat().st_size, input_format=im.format)
    return write_file(dst, data, force=force), stats


def png_bytes(im: images.AnyImage, transparency: object = None) -> bytes:
    """The PNG file of a decoded image (``transparency`` as :func:`decode_image` returns it)."""
    return image_file_bytes(im, transparency, "PNG")


def image_file_bytes(im: images.AnyImage, transparency: object = None, fmt: str = "PNG") -> bytes:
    """The PNG (or lossless WebP) file of a decoded image, rendered in memory: what ``decompress``
    writes and ``verify`` checks. Metadata a crafted file got past its CRCs but that no image file can
    hold (wrong types, absurd values) is a :class:`FormatError`, never a traceback."""
    buf = io.BytesIO()
    try:
        images.save_image(im, buf, transparency, fmt)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError, OSError,
            struct.error) as e:
        raise FormatError(f"corrupted metadata (the decoded image cannot be written: {e})") from None
    return buf.getvalue()


def read_nlc(src: str | Path) -> bytes:
    """The bytes of a ``.nlc`` file, with file errors as :class:`InputError`."""
    with file_errors(src):
        return Path(src).read_bytes()


def _output_format(dst: str | Path | None, header: container.Header) -> str:
    """The format the image is written in at ``dst`` (:func:`nlc.images.output_format`: PNG, or lossless WebP
    for a ``.webp`` name), checked against the file's header before any decoding."""
    if dst is None:
        return "PNG"
    return images.output_format(dst, header.mode, header.extra.get("transparency"), (header.width, header.height))


def decoded_file_bytes(data: bytes, dst: str | Path | None = None, *, device: str = "auto", progress: bool = False,
                       codec: Codec | None = None) -> bytes:
    """The image file that ``.nlc`` bytes decode to: PNG, or lossless WebP for a ``dst`` named ``.webp``
    (a name for a lossy format is refused before any decoding). The header is parsed once."""
    unpacked = container.unpack(data)
    fmt = _output_format(dst, unpacked[0])
    im, transparency = decode_unpacked(unpacked, device, progress, codec)
    return image_file_bytes(im, transparency, fmt)


def decompress(src: str | Path, dst: str | Path | None = None, *, force: bool = False,
               progress: bool = False, device: str = "auto", codec: Codec | None = None) -> Path:
    """Decompress a ``.nlc`` file to a PNG, or to lossless WebP for a ``.webp`` ``dst`` (default: ``src``
    without ``.nlc``, as PNG); returns the path. A ``dst`` named for a lossy format is refused before
    any decoding. ``codec``: as for :func:`decode_image`."""
    src = Path(src)
    dst = Path(dst) if dst else default_output(src, True)
    check_output(dst, force)
    out = decoded_file_bytes(read_nlc(src), dst, device=device, progress=progress, codec=codec)
    with file_errors(dst):  # a full disk or a folder without write permission: one line
        _atomic_write(dst, lambda tmp: Path(tmp).write_bytes(out))
    return dst


__all__ = ["Codec", "NlcError", "compress", "decompress", "encode_image", "decode_image", "read_header"]
