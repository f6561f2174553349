"""Reading images and splitting them into what the model codes and what it does not.

Supported Pillow modes: ``RGB`` and ``L`` (coded by the model; grayscale as
the model's red channel of a gray image), ``RGBA`` and ``LA`` (colour by the
model, alpha by the classical plane coder), ``P`` (palette indices by the
plane coder, palette in the header) and ``1`` (bits by the plane coder).
16-bit images (PNG of any colour type, and Pillow's ``I;16`` gray from other
formats) are :class:`Image16`: their high bytes are an 8-bit image for the
model, their low bytes and alpha go to :mod:`nlc.coding.low_bytes`.
32-bit and float images, CMYK and other modes are refused with a clear message.
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

from . import png16
from .errors import InputError, file_errors

IMAGE_SUFFIXES = (".png", ".webp", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm")  # what a folder's images are


def list_images(folder: str | Path) -> list[Path]:
    """Image files of a folder (by :data:`IMAGE_SUFFIXES`), sorted by name; :class:`FileNotFoundError` for none."""
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{folder}: no images found")
    return files


MODES16 = {"I;16": 1, "LA;16": 1, "RGB;16": 3, "RGBA;16": 3}  # 16-bit modes -> channels the model codes
MODEL_MODES = {"RGB": 3, "L": 1, "RGBA": 3, "LA": 1, "P": 0, "1": 0, **MODES16}
SUPPORTED = tuple(MODEL_MODES)
_BANDS16 = {"I;16": ("I",), "LA;16": ("L", "A"), "RGB;16": ("R", "G", "B"), "RGBA;16": ("R", "G", "B", "A")}


class Image16:
    """A 16-bit image: ``samples`` ``(H, W, planes)`` uint16 in one of :data:`MODES16` (alpha last), with
    the parts of a Pillow image's interface nlc uses (``mode``, ``size``, ``info``, ``text``,
    ``getbands()``, ``tobytes()`` (big-endian samples), ``np.asarray``)."""

    def __init__(self, samples: np.ndarray, mode: str, info: dict | None = None, text: dict | None = None,
                 format: str | None = "PNG") -> None:
        if mode not in MODES16 or samples.ndim != 3 or samples.shape[2] != len(_BANDS16[mode]):
            raise ValueError(f"16-bit samples of shape {samples.shape} for mode {mode}")
        self.samples = np.ascontiguousarray(samples, np.uint16)
        self.mode, self.info, self.text, self.format = mode, dict(info or {}), dict(text or {}), format

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``, as Pillow's."""
        return self.samples.shape[1], self.samples.shape[0]

    @property
    def width(self) -> int:
        """Pixels per row."""
        return self.samples.shape[1]

    @property
    def height(self) -> int:
        """Rows."""
        return self.samples.shape[0]

    def getbands(self) -> tuple[str, ...]:
        """The names of the planes, as Pillow's."""
        return _BANDS16[self.mode]

    @staticmethod
    def bands(mode: str) -> tuple[str, ...]:
        """The names of the planes of a 16-bit ``mode``."""
        return _BANDS16[mode]

    def tobytes(self) -> bytes:
        """The samples, big-endian, row by row (what the pixel CRC covers)."""
        return self.samples.astype(">u2").tobytes()

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """The samples, ``(H, W)`` for gray, else ``(H, W, planes)``."""
        a = self.samples[:, :, 0] if self.mode == "I;16" else self.samples
        return a if dtype is None else a.astype(dtype)


AnyImage = Image.Image | Image16


def _image16(data: bytes, name: str, im: Image.Image) -> Image16:
    """The :class:`Image16` of a 16-bit image that Pillow opened as ``im`` (its ``data``: a PNG's samples
    are read by :mod:`nlc.png16`, Pillow truncates all but gray)."""
    if png16.bit_depth(data) == 16:
        samples, mode, transparency = png16.read_samples(data, name)
        info = {k: v for k, v in im.info.items() if k != "transparency"}
        if transparency is not None:
            info["transparency"] = transparency
        return Image16(samples, mode, info, dict(getattr(im, "text", None) or {}), im.format)
    if im.mode.startswith("I;16"):
        im.load()
        return Image16(np.asarray(im).astype(np.uint16)[:, :, None], "I;16", im.info, None, im.format)
    raise InputError(f"{name}: 16-bit {im.mode} images are supported in PNG files only (convert to 16-bit PNG)")


def is_16bit(im: Image.Image) -> bool:
    """Whether Pillow opened ``im`` from 16-bit samples (``I;16`` or a truncating ``;16`` raw mode); ask
    before ``im.load()``, which forgets the raw mode."""
    return any(";16" in str(getattr(t, "args", "")) for t in (getattr(im, "tile", None) or [])) \
        or im.mode.startswith("I;16")


def check_image(im: AnyImage, name: str = "image") -> None:
    """Raise :class:`InputError` unless ``im`` is an :class:`Image16` or an 8-bit (or 1-bit) image of a
    supported mode (a Pillow image read from 16-bit samples must come through :func:`image_from_bytes`)."""
    if isinstance(im, Image16):
        return
    if is_16bit(im):
        raise InputError(f"{name}: 16-bit samples in a Pillow image (Pillow cuts 16-bit colour to 8 bits); open the "
                         "file with nlc.images.read_image, which keeps all 16")
    if im.mode in ("I", "F"):
        raise InputError(f"{name}: {im.mode} mode ({'32-bit integer' if im.mode == 'I' else 'float'}) images are not supported")
    if im.mode not in MODEL_MODES:
        raise InputError(f"{name}: unsupported image mode {im.mode} (supported: {', '.join(SUPPORTED)})")
    frames = getattr(im, "n_frames", 1)
    if frames > 1:
        raise InputError(f"{name}: animated or multi-frame images are not supported ({frames} frames)")
    if im.width < 1 or im.height < 1:
        raise InputError(f"{name}: empty image")


def read_image(path: str | Path) -> AnyImage:
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


def image_from_bytes(data: bytes, name: str = "<stdin>") -> AnyImage:
    """Load an image from the bytes of its file, checking that it can be coded (``name`` is what
    error messages call it)."""
    if data.startswith(PNG_SIGNATURE):
        check_png_chunks(data, name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            if is_16bit(im):
                return _image16(data, name, im)
            check_image(im, name)
            im.load()
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise InputError(f"{name}: image too large (over {Image.MAX_IMAGE_PIXELS:,} pixels)") from None
    except UnidentifiedImageError:
        raise InputError(f"{name}: not an image (or a format Pillow cannot read)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{name}: cannot read image ({e})") from None
    return im


def palette_of(im: AnyImage) -> tuple[bytes, str]:
    """Raw palette bytes and their mode (``RGB`` or ``RGBA``) of a ``P`` image."""
    if isinstance(im, Image16):
        return b"", "RGB"
    mode = im.palette.mode if im.palette is not None else "RGB"
    return bytes(im.getpalette(mode) or []), mode


def pixels_crc32(im: AnyImage) -> int:
    """CRC-32 of an image's pixel bytes, its mode, size and (for ``P``) palette."""
    crc = zlib.crc32(f"{im.mode}:{im.width}x{im.height}".encode())
    crc = zlib.crc32(im.tobytes(), crc)
    if im.mode == "P":
        crc = zlib.crc32(palette_of(im)[0], crc)
    return crc


def model_pixels(im: AnyImage) -> np.ndarray | None:
    """The ``(H, W, C)`` uint8 array the model codes (``C`` = 3 or 1), or ``None``; of a 16-bit image,
    the high bytes of its colour (or gray) samples."""
    if isinstance(im, Image16):
        return (im.samples[:, :, : MODES16[im.mode]] >> 8).astype(np.uint8)
    if im.mode in ("RGB", "RGBA"):
        return np.asarray(im.convert("RGB") if im.mode == "RGBA" else im)
    if im.mode in ("L", "LA"):
        return np.asarray(im.getchannel("L") if im.mode == "LA" else im)[:, :, None]
    return None


def plane_of(im: AnyImage) -> np.ndarray | None:
    """The ``(H, W)`` plane coded classically (alpha, indices or bits), or ``None`` (also for a 16-bit
    image: :func:`nlc.coding.low_bytes.encode_rest` codes its low bytes and alpha)."""
    if isinstance(im, Image16):
        return None
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


def transparency_of(im: AnyImage) -> object:
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


def save_image(im: AnyImage, path: str | Path | io.BytesIO, transparency: object = None,
               fmt: str = "PNG") -> None:
    """Write a decoded image as PNG (:func:`save_png`) or lossless WebP (``fmt = "WEBP"``: the ICC
    profile, EXIF and XMP go along; PNG text and colour chunks have no place there)."""
    from .coding.planes import WEBP_LOSSLESS

    if fmt == "PNG":
        save_png(im, path, transparency)
        return
    if isinstance(im, Image16):
        raise InputError("lossless WebP holds 8-bit samples only; write a 16-bit image as PNG")
    kw = {k: im.info[k] for k in ("icc_profile", "exif", "xmp") if im.info.get(k)}
    im.save(path, format="WEBP", **WEBP_LOSSLESS, **kw)


_MODES8 = {"I;16": "L", "LA;16": "LA", "RGB;16": "RGB", "RGBA;16": "RGBA"}


def save_png(im: AnyImage, path: str | Path | io.BytesIO, transparency: object = None) -> None:
    """Write ``im`` as PNG (``transparency`` as stored by :func:`transparency_of`), with the metadata
    a decoder put on ``im.info`` (:func:`nlc.metadata.attach`). A 16-bit image is written with 16-bit
    samples (:func:`nlc.png16.png_bytes`), its ancillary chunks as Pillow writes them for 8 bits."""
    from .metadata import png_options

    if isinstance(im, Image16):
        stand_in = Image.new(_MODES8[im.mode], (1, 1))
        stand_in.info = {k: v for k, v in im.info.items() if k != "transparency"}
        buf = io.BytesIO()
        save_png(stand_in, buf)
        data = png16.png_bytes(im.samples, im.mode, transparency, buf.getvalue())
        if isinstance(path, io.BytesIO):
            path.write(data)
        else:
            Path(path).write_bytes(data)
        return

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
