"""Metadata: an image's ICC profile, EXIF, XMP, PNG colour and text chunks and resolution survive
compress and decompress exactly; ``--strip`` drops them; files without metadata stay version 1."""

import io
import json
import struct

import pytest
from click.testing import CliRunner
from PIL import Image, ImageCms, PngImagePlugin

from nlc import container, metadata
from nlc.api import decode_image, encode_image, png_bytes
from nlc.cli import main
from nlc.errors import FormatError
from tests.conftest import gradient_image, same_pixels

SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def reopen(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def png_with_everything(mode: str = "RGB") -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "nlc camera"  # Make
    exif[0x0112] = 6  # Orientation: rotate 90
    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "a photo")
    info.add_itxt("Description", "déjà vu", "fr", "Beschreibung")
    info.add_text("Notes", "n" * 500, zip=True)
    info.add_itxt(metadata.XMP_KEYWORD, "<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    info.add(b"gAMA", struct.pack(">I", 45455))
    info.add(b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000))
    buf = io.BytesIO()
    gradient_image(11, 9, mode).save(buf, "PNG", icc_profile=SRGB_ICC, exif=exif, pnginfo=info, dpi=(300, 300))
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P"])
def test_metadata_survives_exactly(tiny_codec, mode):
    src = reopen(png_with_everything(mode))
    kept = metadata.collect(src)
    assert set(kept) == {"icc_profile", "exif", "xmp", "gamma", "chromaticity", "dpi", "text"}
    data, stats = encode_image(src, tiny_codec)
    assert data[4] == container.VERSION_METADATA and stats["metadata_bytes"] > 0
    out, transparency = decode_image(data, codec=tiny_codec)
    assert same_pixels(out, src)
    back = reopen(png_bytes(out, transparency))
    assert metadata.collect(back) == kept
    assert back.info["icc_profile"] == SRGB_ICC and back.getexif()[0x0112] == 6
    assert back.text["Description"] == "déjà vu" and back.text["Description"].lang == "fr"


def test_strip_and_no_metadata_give_version_1(tiny_codec):
    src = reopen(png_with_everything())
    stripped, stats = encode_image(src, tiny_codec, keep_metadata=False)
    assert stripped[4] == container.VERSION and stats["metadata_bytes"] == 0
    out, _ = decode_image(stripped, codec=tiny_codec)
    assert metadata.collect(reopen(png_bytes(out))) == {}
    plain = gradient_image(11, 9)
    data, _ = encode_image(plain, tiny_codec)
    assert data[4] == container.VERSION and data == stripped  # the same pixels: the same file


def test_jpeg_style_exif_and_comment(tiny_codec):
    im = gradient_image(8, 8)
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0110] = "model x"
    im.save(buf, "JPEG", exif=exif, comment=b"scanned", icc_profile=SRGB_ICC)
    src = reopen(buf.getvalue())
    kept = metadata.collect(src)
    assert not kept["exif"].startswith(b"Exif") and kept["comment"] == b"scanned"
    out, _ = decode_image(encode_image(src, tiny_codec)[0], codec=tiny_codec)
    back = reopen(png_bytes(out))
    assert back.getexif()[0x0110] == "model x" and back.text["Comment"] == "scanned"
    assert back.info["icc_profile"] == SRGB_ICC


def test_damaged_metadata_is_a_format_error(tiny_codec):
    data = encode_image(reopen(png_with_everything()), tiny_codec)[0]
    h, model, plane = container.unpack(data)
    h.metadata = h.metadata[:-3]  # a valid file around a truncated zlib stream
    with pytest.raises(FormatError, match="corrupted metadata"):
        decode_image(container.pack(h, model, plane), codec=tiny_codec)
    cut = data[:-10] + data[-4:]
    with pytest.raises(FormatError):
        container.unpack(cut)


def test_cli_keeps_strips_and_shows_metadata(tmp_path, tiny_home):
    src = tmp_path / "photo.png"
    src.write_bytes(png_with_everything())
    run = CliRunner().invoke
    assert run(main, ["compress", str(src)]).exit_code == 0
    r = run(main, ["info", "--json", str(tmp_path / "photo.png.nlc")])
    shown = json.loads(r.stdout)["metadata"]
    assert shown["icc_profile"] == f"{len(SRGB_ICC)} bytes" and shown["text"] == ["Title", "Description", "Notes"]
    assert run(main, ["decompress", str(tmp_path / "photo.png.nlc"), "-o", str(tmp_path / "back.png")]).exit_code == 0
    assert metadata.collect(reopen((tmp_path / "back.png").read_bytes())) == metadata.collect(reopen(src.read_bytes()))
    assert run(main, ["compress", "--strip", str(src), "-o", str(tmp_path / "bare.nlc")]).exit_code == 0
    assert json.loads(run(main, ["info", "--json", str(tmp_path / "bare.nlc")]).stdout)["metadata"] == {}


def test_webp_output_keeps_icc_exif_and_xmp(tmp_path, tiny_home):
    src = tmp_path / "photo.png"
    src.write_bytes(png_with_everything())
    run = CliRunner().invoke
    assert run(main, ["compress", str(src)]).exit_code == 0
    out = tmp_path / "back.webp"
    assert run(main, ["decompress", str(tmp_path / "photo.png.nlc"), "-o", str(out)]).exit_code == 0
    back, kept = reopen(out.read_bytes()), metadata.collect(reopen(src.read_bytes()))
    assert back.format == "WEBP" and same_pixels(back, reopen(src.read_bytes()))
    assert {k: metadata.collect(back)[k] for k in ("icc_profile", "exif", "xmp")} == \
        {k: kept[k] for k in ("icc_profile", "exif", "xmp")}


def test_a_unitless_aspect_ratio_is_kept(tiny_codec):
    """PNG pHYs without a unit (PngSuite's cdfn2c08, cdhn2c08, cdsn2c08 hold one) comes back as it was."""
    import zlib

    buf = io.BytesIO()
    Image.new("RGB", (6, 5), (10, 200, 30)).save(buf, "PNG")
    data = buf.getvalue()
    at = data.index(b"IDAT") - 4  # a pHYs chunk with unit 0 before the pixels (Pillow writes dpi only)
    body = b"pHYs" + struct.pack(">IIB", 1, 4, 0)
    data = data[:at] + struct.pack(">I", 9) + body + struct.pack(">I", zlib.crc32(body)) + data[at:]
    im = Image.open(io.BytesIO(data))
    assert im.info["aspect"] == (1, 4)
    out, t = decode_image(encode_image(im, tiny_codec)[0], codec=tiny_codec)
    assert Image.open(io.BytesIO(png_bytes(out, t))).info["aspect"] == (1, 4)
