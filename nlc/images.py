"""Reading images and splitting them into what the model codes and what it does not.

Supported Pillow modes: ``RGB`` and ``L`` (coded by the model; grayscale as
the model's red channel of a gray image), ``RGBA`` and ``LA`` (colour by the
model, alpha by the classical plane coder), ``P`` (palette indices by the
plane coder, palette in the header) and ``1`` (bits by the plane coder).
16-bit and float images, CMYK and other modes are refused with a clear message.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import InputError, file_errors

MODEL_MODES = {"RGB": 3, "L": 1, "RGBA": 3, "LA": 1, "P": 0, "1": 0}
SUPPORTED = tuple(MODEL_MODES)


def check_image(im: Image.Image, name: str = "image") -> None:
    """Raise :class:`InputError` unless ``im`` is an 8-bit (or 1-bit) image of a supported mode."""
    if any(";16" in str(getattr(t, "args", "")) for t in (getattr(im, "tile", None) or [])) or im.mode.startswith("I;16"):
        raise InputError(f"{name}: 16-bit images are not supported (nlc codes 8-bit samples); convert to 8 bits first")
    if im.mode in ("I", "F"):
        raise InputError(f"{name}: {im.mode} mode ({'32-bit integer' if im.mode == 'I' else 'float'}) images are not supported")
    if im.mode not in MODEL_MODES:
        raise InputError(f"{name}: unsupported image mode {im.mode} (supported: {', '.join(SUPPORTED)})")
    frames = getattr(im, "n_frames", 1)
    if frames > 1:
        raise InputError(f"{name}: animated or multi-frame images are not supported ({frames} frames)")
    if im.width < 1 or im.height < 1:
        raise InputError(f"{name}: empty image")


def read_image(path: str | Path) -> Image.Image:
    """Open and fully load an image file, checking that it can be coded. Only regular files are read
    (a FIFO would block, a device never end)."""
    path = Path(path)
    with file_errors(path):
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise InputError(f"{path}: not a regular file (FIFOs, devices and sockets are refused)")
        data = path.read_bytes()
    return image_from_bytes(data, str(path))


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_png_chunks(data: bytes, name: str) -> None:
    """Refuse a PNG whose chunks are damaged: a CRC that does not match, or a chunk running past the end.
    A lossless archiver must not take damaged input for the real image (Pillow checks only some CRCs)."""
    pos = len(PNG_SIGNATURE)
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        end = pos + 8 + length
        if end + 4 > len(data):
            raise InputError(f"{name}: damaged PNG ({kind.decode('latin-1')!r} chunk runs past the end of the file)")
        (crc,) = struct.unpack_from(">I", data, end)
        if zlib.crc32(data[pos + 4 : end]) != crc:
            raise InputError(f"{name}: damaged PNG (CRC mismatch in the {kind.decode('latin-1')!r} chunk at byte {pos})")
        if kind == b"IEND":
            return
        pos = end + 4


def image_from_bytes(data: bytes, name: str = "<stdin>") -> Image.Image:
    """Load an image from the bytes of its file, checking that it can be coded (``name`` is what
    error messages call it)."""
    if data.startswith(PNG_SIGNATURE):
        check_png_chunks(data, name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            check_image(im, name)
            im.load()
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise InputError(f"{name}: image too large (over {Image.MAX_IMAGE_PIXELS:,} pixels)") from None
    except UnidentifiedImageError:
        raise InputError(f"{name}: not an image (or a format Pillow cannot read)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{name}: cannot read image ({e})") from None
    return im


def palette_of(im: Image.Image) -> tuple[bytes, str]:
    """Raw palette bytes and their mode (``RGB`` or ``RGBA``) of a ``P`` image."""
    mode = im.palette.mode if im.palette is not None else "RGB"
    return bytes(im.getpalette(mode) or []), mode


def pixels_crc32(im: Image.Image) -> int:
    """CRC-32 of an image's pixel bytes, its mode, size and (for ``P``) palette."""
    crc = zlib.crc32(f"{im.mode}:{im.width}x{im.height}".encode())
    crc = zlib.crc32(im.tobytes(), crc)
    if im.mode == "P":
        crc = zlib.crc32(palette_of(im)[0], crc)
    return crc


def model_pixels(im: Image.Image) -> np.ndarray | None:
    """The ``(H, W, C)`` uint8 array the model codes (``C`` = 3 or 1), or ``None``."""
    if im.mode in ("RGB", "RGBA"):
        return np.asarray(im.convert("RGB") if im.mode == "RGBA" else im)
    if im.mode in ("L", "LA"):
        return np.asarray(im.getchannel("L") if im.mode == "LA" else im)[:, :, None]
    return None


def plane_of(im: Image.Image) -> np.ndarray | None:
    """The ``(H, W)`` plane coded classically (alpha, indices or bits), or ``None``."""
    if im.mode in ("RGBA", "LA"):
        return np.asarray(im.getchannel("A"))
    if im.mode in ("P", "1"):
        return np.asarray(im)
    return None


def assemble(mode: str, pixels: np.ndarray | None, plane: np.ndarray | None,
             palette: bytes = b"", palette_mode: str = "RGB") -> Image.Image:
    """Rebuild an image of ``mode`` from the parts made by :func:`model_pixels` and :func:`plane_of`."""
    px = pixels if pixels is not None else np.zeros((0, 0, 3), np.uint8)  # each mode uses the parts it has
    pl = plane if plane is not None else np.zeros((0, 0), np.uint8)
    if mode == "RGB":
        return Image.fromarray(px, "RGB")
    if mode == "L":
        return Image.fromarray(px[:, :, 0], "L")
    if mode == "RGBA":
        return Image.fromarray(np.dstack([px, pl]), "RGBA")
    if mode == "LA":
        return Image.fromarray(np.dstack([px[:, :, 0], pl]), "LA")
    if mode == "1":
        h, w = pl.shape
        return Image.frombytes("1", (w, h), np.packbits(pl.astype(bool), axis=1).tobytes())
    if mode == "P":
        im = Image.fromarray(pl, "P")
        im.putpalette(palette, rawmode=palette_mode)
        return im
    raise InputError(f"unsupported image mode {mode}")


def transparency_of(im: Image.Image) -> object:
    """The ``transparency`` entry of an image's info as JSON-friendly data, or ``None``."""
    t = im.info.get("transparency")
    if isinstance(t, bytes):
        return list(t)
    if isinstance(t, tuple):
        return list(t)
    return t


LOSSY_SUFFIXES = {".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".jfif": "JPEG", ".avif": "AVIF",
                  ".heic": "HEIF", ".heif": "HEIF", ".gif": "GIF (256 colours)"}


def output_format(path: str | Path, mode: str, transparency: object = None,
                  size: tuple[int, int] | None = None) -> str:
    """The format a decoded image of ``mode`` (and ``size``, width and height) is written in at ``path``:
    ``"WEBP"`` (lossless) for a ``.webp`` name, else ``"PNG"``. Raises :class:`InputError` for a name
    whose format would lose something (JPEG, AVIF, HEIF, GIF) and for WebP of a mode or size it
    cannot hold exactly."""
    suffix = Path(path).suffix.lower()
    if suffix in LOSSY_SUFFIXES:
        raise InputError(f"{path}: nlc writes lossless files, and {LOSSY_SUFFIXES[suffix]} would change the pixels; "
                         "name the output .png (or .webp)")
    if suffix != ".webp":
        return "PNG"
    from .coding.planes import WEBP_MAX_SIDE, webp_can_hold

    if size is not None and not webp_can_hold(*size):
        raise InputError(f"{path}: lossless WebP holds at most {WEBP_MAX_SIDE} pixels a side (this image is "
                         f"{size[0]}x{size[1]}); name the output .png")
    if mode not in ("RGB", "RGBA") or transparency is not None:
        what = f"mode {mode}" + (" with a transparent colour" if transparency is not None else "")
        raise InputError(f"{path}: lossless WebP holds RGB and RGBA pixels only (this image is {what}); "
                         "name the output .png")
    return "WEBP"


def save_image(im: Image.Image, path: str | Path | io.BytesIO, transparency: object = None,
               fmt: str = "PNG") -> None:
    """Write a decoded image as PNG (:func:`save_png`) or lossless WebP (``fmt = "WEBP"``: the ICC
    profile, EXIF and XMP go along; PNG text and colour chunks have no place there)."""
    from .coding.planes import WEBP_LOSSLESS

    if fmt == "PNG":
        save_png(im, path, transparency)
        return
    kw = {k: im.info[k] for k in ("icc_profile", "exif", "xmp") if im.info.get(k)}
    im.save(path, format="WEBP", **WEBP_LOSSLESS, **kw)


def save_png(im: Image.Image, path: str | Path | io.BytesIO, transparency: object = None) -> None:
    """Write ``im`` as PNG (``transparency`` as stored by :func:`transparency_of`), with the metadata
    a decoder put on ``im.info`` (:func:`nlc.metadata.attach`)."""
    from .metadata import png_options

    kw = png_options(im.info)
    if transparency is not None:
        if im.mode == "P" and isinstance(transparency, list):
            kw["transparency"] = bytes(transparency)
        elif isinstance(transparency, list):
            kw["transparency"] = tuple(transparency)
        else:
            kw["transparency"] = transparency
    aspect = im.info.get("aspect") if im.info.get("dpi") is None else None
    if aspect is None:
        im.save(path, format="PNG", **kw)
        return
    buf = io.BytesIO()  # Pillow writes pHYs only for dpi: a unit-less one goes in before the first IDAT
    im.save(buf, format="PNG", **kw)
    data = buf.getvalue()
    body = b"pHYs" + struct.pack(">IIB", int(aspect[0]), int(aspect[1]), 0)
    at = data.index(b"IDAT") - 4
    data = data[:at] + struct.pack(">I", 9) + body + struct.pack(">I", zlib.crc32(body)) + data[at:]
    if isinstance(path, io.BytesIO):
        path.write(data)
    else:
        Path(path).write_bytes(data)
