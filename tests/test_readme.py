"""The Python examples of README.md and docs/*.md run as written (with the shipped codecs, on a small photo)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT, gradient_image, same_pixels

PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = [(page.relative_to(ROOT).as_posix(), i + 1, block) for page in PAGES
          for i, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S))]


def test_the_readme_has_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    gradient_image(24, 32).save("photo.png")  # the file the examples name
    namespace: dict = {}
    page, number, block = BLOCKS[index]
    exec(compile(block, f"{page} python block {number}", "exec"), namespace)
    if "codec=codec" in block and "mine.safetensors" in block:  # your own model's codec: a true round trip
        assert same_pixels(Image.open("back.png"), Image.open("photo.png"))
    if "nlc.decode_image(" in block:  # the image API example: its outputs are the photo again
        assert same_pixels(Image.open("back.png"), Image.open("photo.png"))
        assert same_pixels(namespace["image"], Image.open("photo.png"))
