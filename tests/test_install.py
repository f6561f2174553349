"""A wheel installed anywhere works: built from the source, installed with ``--prefix``, ``--target`` and
``--user``, it finds its codecs and weights (package data, through importlib.resources), lists them and
round-trips an image. Each install runs in a fresh process from an empty folder, so the source checkout
is never what it imports (the test checks ``nlc.__file__``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import ROOT

SITE = sysconfig.get_paths()["purelib"]  # this environment's torch, numpy, ... for the installed nlc
SCRIPT = """
import sys, nlc, numpy as np
from PIL import Image
from nlc.registry import codec_names, data_root
assert nlc.__file__.startswith(sys.argv[1]), nlc.__file__
names = codec_names()
assert "pixelcnnpp" in names and "default" not in names, names
im = Image.fromarray(np.arange(8 * 6 * 3, dtype=np.uint8).reshape(8, 6, 3) * 3, "RGB")
data, _ = nlc.encode_image(im, "pixelcnnpp", fallback=False)
assert nlc.decode_image(data)[0].tobytes() == im.tobytes()
print("ok", data_root())
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the source (no build/ left in the checkout)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("nlc", "codecs", "trained", "bench", "pyproject.toml", "README.md"):
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(path, src / name)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(src)], check=True, capture_output=True, timeout=600)
    return next(out.glob("nlc-*.whl"))


def _check(python: str, env: dict, where: Path, cwd: Path) -> str:
    r = subprocess.run([python, "-c", SCRIPT, str(where)], env=env, cwd=cwd, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.startswith("ok ") and str(where) in r.stdout, r.stdout
    return r.stdout


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("NLC_HOME", "PYTHONPATH", "PYTHONUSERBASE")}
    return env | extra


def test_the_wheel_holds_the_registry_and_the_weights(wheel):
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "nlc/_data/codecs/default.toml" in names and "nlc/_data/trained/pixelcnnpp.safetensors" in names
    assert "nlc/families/autoregressive.py" in names and "nlc/data/coffee.png" in names
    assert any(n.startswith("nlc/_data/bench/results/kodak-") for n in names)


@pytest.mark.parametrize("how", ["--prefix", "--target"])
def test_a_wheel_installed_with_a_prefix_or_a_target_works(wheel, tmp_path, how):
    dest = tmp_path / "inst"
    # --ignore-installed: never uninstall the nlc of this environment (pip would, for --prefix)
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "-q", how,
                    str(dest), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    lib = dest if how == "--target" else Path(sysconfig.get_path("purelib", vars={"base": str(dest),
                                                                                    "platbase": str(dest)}))
    _check(sys.executable, _env(PYTHONPATH=f"{lib}{os.pathsep}{SITE}"), lib / "nlc", tmp_path)
    here = subprocess.run([sys.executable, "-c", "import nlc; print(nlc.__file__)"], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True)
    assert here.stdout.startswith(str(ROOT)), here.stderr  # this environment's nlc is still the checkout


def test_a_wheel_installed_for_the_user_works(wheel, tmp_path):
    base = getattr(sys, "_base_executable", sys.executable)
    if subprocess.run([base, "-m", "pip", "--version"], capture_output=True).returncode:
        pytest.skip("the base interpreter has no pip for a --user install")
    userbase = tmp_path / "userbase"
    env = _env(PYTHONUSERBASE=str(userbase), PIP_BREAK_SYSTEM_PACKAGES="1")
    subprocess.run([base, "-m", "pip", "install", "--no-deps", "--no-index", "--user", "-q", str(wheel)], env=env,
                   check=True, capture_output=True, timeout=300)
    user_site = subprocess.run([base, "-m", "site", "--user-site"], env=env, capture_output=True,
                               text=True).stdout.strip()
    # the base interpreter with this environment's packages behind the user's site
    _check(base, env | {"PYTHONPATH": SITE}, Path(user_site) / "nlc", tmp_path)
