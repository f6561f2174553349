"""Check ``.nlc`` files without writing anything (``nlc verify``, like ``gzip -t``).

A file is decoded in memory, which checks every CRC the container holds: the
header's, the payload's and the original pixels'; the PNG that ``nlc decompress``
would write is rendered in memory too, so a file passes only if it decompresses. With ``original``, the
decoded image is also compared pixel for pixel with an image file, for
example the photo the ``.nlc`` was made from, before that is deleted. Files
coded on another kind of machine fail here exactly as they would fail to
decompress (README, "Limits worth knowing"), so ``verify`` also tells whether an
archive decodes on this machine.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from . import api, container, images, sets
from .errors import InputError


def original_of(src: str | Path) -> Path:
    """The file an ``.nlc`` file was presumably made from: its name without ``.nlc`` (``photo.webp.nlc -> photo.webp``)."""
    src = Path(src)
    if not src.name.endswith(api.SUFFIX) or src.name == api.SUFFIX:
        raise InputError(f"{src}: not named IMAGE{api.SUFFIX}, so its original cannot be found")
    return src.with_name(src.name[: -len(api.SUFFIX)])


def same_image(a: images.AnyImage, b: images.AnyImage) -> bool:
    """Whether two images have the same mode, size, pixels and (for ``P``) palette."""
    if a.mode != b.mode or a.size != b.size or not np.array_equal(np.asarray(a), np.asarray(b)):
        return False
    return a.mode != "P" or images.palette_of(a) == images.palette_of(b)


def verify(src: str | Path, *, original: str | Path | bool | None = None, device: str = "auto",
           progress: bool = False, codec: api.Codec | None = None) -> dict:
    """Decode the ``.nlc`` (image or set) file ``src`` in memory and check it; returns what was checked.

    Raises :class:`~nlc.errors.FormatError` (or another :class:`~nlc.errors.NlcError`)
    when the file does not decode to the pixels it was made from, and
    :class:`~nlc.errors.InputError` when ``original`` (image files only) differs
    from the decoded image. ``original=True`` names the file beside ``src``
    (:func:`original_of`), and has nothing to compare for a set file. The
    result has ``kind`` (``"image"`` or ``"set"``), ``codec``, ``bytes``,
    ``seconds`` (decoding), ``size`` (``"WxH"``), ``mode`` and ``items`` (1
    for an image), for an image ``pixels`` (``"model"``, or ``"webp"`` where the file
    kept lossless WebP), and ``original`` when one was compared. ``codec``: a codec of one's own that the
    registry does not hold (:meth:`nlc.codec.Codec.from_toml`).
    """
    data = api.read_nlc(src)
    t0 = time.perf_counter()
    if data[:4] == container.SET_MAGIC:
        if original not in (None, False, True):
            raise InputError(f"{src}: a set file; only image files are compared with an original")
        items, set_header = sets.decode_set(data, codec, progress=progress, device=device)
        mode = "RGB" if items.ndim == 4 else "L"
        return {"kind": "set", "codec": set_header.codec, "bytes": len(data), "seconds": time.perf_counter() - t0,
                "size": f"{set_header.width}x{set_header.height}", "mode": mode, "items": int(len(items))}
    if original is True:
        original = original_of(src)
    unpacked = container.unpack(data)
    header = unpacked[0]
    im, transparency = api.decode_unpacked(unpacked, device, progress, codec)
    api.image_file_bytes(im, transparency)  # everything decompress does but the write
    result = {"kind": "image", "codec": header.codec, "pixels": header.extra.get("pixels", "model"),
              "bytes": len(data), "seconds": time.perf_counter() - t0, "size": f"{im.width}x{im.height}",
              "mode": im.mode, "items": 1}
    if isinstance(original, (str, Path)):
        if not same_image(im, images.read_image(original)):
            raise InputError(f"{src}: decodes to other pixels than {original}")
        result["original"] = str(original)
    return result
