"""The shell commands of README.md and docs/ run as written, in order, as a user would type them: each page in
a fresh folder holding what its commands name (a photo, a screenshot, folders of photos, thumbnails and 28x28
shirts, a small array, a 16-bit scan); `.venv/bin/nlc` is this environment's `nlc`.

Left out, each for its reason: lines over `../shared/data` (benchmarks of whole data sets: minutes, measured
by `nlc bench` and committed in bench/results) and the file such a line makes (`test.nlc`), `make` (the set-up
this suite runs under) and a remote Dask scheduler (`tcp://`; tests/test_cluster.py runs a local cluster)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nlc import png16
from tests.conftest import ROOT, gradient_image

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP = ("../shared/data", "test.nlc", "make ", "tcp://")


def commands(page: Path) -> list[str]:
    """The command lines of a page's shell blocks (```sh, or ``` without a language)."""
    out = []
    for block in re.findall(r"```(?:sh)?\n(.*?)```", page.read_text(), re.S):
        for line in block.splitlines():
            if re.match(r"(\.venv/bin/nlc|nlc|cat|python -m nlc)\b", line.strip()):
                out.append(line.strip())
    return out


def _fixtures(folder: Path) -> None:
    gradient_image(24, 32).save(folder / "photo.png")
    shot = np.full((40, 48, 3), 255, np.uint8)
    shot[8:12, 4:40] = (20, 40, 200)  # a flat screenshot: a bar on white
    Image.fromarray(shot).save(folder / "shot.png")
    (folder / "photos" / "trip").mkdir(parents=True)
    gradient_image(16, 20, seed=1).save(folder / "photos" / "a.png")
    gradient_image(12, 18, "L", seed=2).save(folder / "photos" / "trip" / "b.png")
    (folder / "thumbnails").mkdir()
    (folder / "shirts").mkdir()
    for i in range(3):
        gradient_image(16, 16, seed=i).save(folder / "thumbnails" / f"t{i}.png")
        gradient_image(28, 28, "L", seed=i).save(folder / "shirts" / f"s{i}.png")
    np.save(folder / "cifar.npy", np.stack([np.asarray(gradient_image(8, 8, seed=i)) for i in range(2)]))
    deep = (np.arange(10 * 12 * 3).reshape(10, 12, 3) * 997 % 65536).astype(np.uint16)
    (folder / "scan16.png").write_bytes(png16.png_bytes(deep, "RGB;16", None, b""))


def test_the_pages_have_commands():
    assert sum(len(commands(p)) for p in PAGES) >= 25


@pytest.mark.parametrize("page", [p for p in PAGES if commands(p)], ids=lambda p: p.name)
def test_every_command_runs_as_written(page, tmp_path):
    _fixtures(tmp_path)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    for line in commands(page):
        if any(s in line for s in SKIP):
            continue
        command = line.replace(".venv/bin/nlc", str(bin_dir / "nlc")).replace("python -m", f"{sys.executable} -m")
        r = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, (line, r.stderr[-1500:])
    if (tmp_path / "back.png").exists() and (tmp_path / "photo.png.nlc").exists():
        assert Image.open(tmp_path / "back.png").tobytes() == Image.open(tmp_path / "photo.png").tobytes()
