"""``nlc compress --model SET_CODEC`` / ``nlc decompress`` on folders and array files, through click's runner."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch
from PIL import Image

from nlc.registry import sha256_file
from tests.coding.test_bitsback import TINY_LATENT, shapes_data, tiny_latent
from tests.test_cli import assert_clean_error, run


@pytest.fixture()
def set_home(tmp_path, monkeypatch):
    """A registry with tiny latent codecs ``tiny-vae`` and ``tiny-vae-binary``."""
    from safetensors.torch import save_file

    home = tmp_path / "home"
    (home / "codecs").mkdir(parents=True)
    (home / "trained").mkdir()
    for name in ("vae", "vae-binary"):
        arch, hp = TINY_LATENT[name]
        w = home / "trained" / f"tiny-{name}.safetensors"
        save_file(tiny_latent(name).state_dict(), str(w))
        lines = "\n".join(f"{k} = {v}" for k, v in hp.items())
        (home / "codecs" / f"tiny-{name}.toml").write_text(
            f'name = "tiny-{name}"\narchitecture = "{arch}"\nweights = "tiny-{name}.safetensors"\n'
            f'sha256 = "{sha256_file(w)}"\ncoder = "ans"\ntile = 28\n\n[hyperparameters]\n{lines}\n')
    monkeypatch.setenv("NLC_HOME", str(home))
    return home


def _folder(tmp_path, n=5, mode="L"):
    d = tmp_path / "shirts"
    d.mkdir()
    items = shapes_data(n, binary=mode == "1")
    names = [f"img{i:03d}.png" for i in range(n)][::-1]  # order comes from the names
    for name, a in zip(names, items):
        im = Image.fromarray(a * (255 if mode == "1" else 1), "L")
        (im.convert("1") if mode == "1" else im).save(d / name)
    return d


def test_folder_round_trip(set_home, tmp_path):
    d = _folder(tmp_path)
    r = run("compress", "--model", "tiny-vae", d, "-o", tmp_path / "set.nlc")
    assert r.exit_code == 0, r.output
    assert "5 images" in r.stderr
    out = tmp_path / "out"
    r = run("decompress", tmp_path / "set.nlc", "-o", out)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in d.iterdir())
    for p in d.iterdir():
        assert np.array_equal(np.asarray(Image.open(p)), np.asarray(Image.open(out / p.name)))
    r = run("decompress", tmp_path / "set.nlc", "-o", out)
    assert_clean_error(r, "already exists", "--force")


def test_binary_folder_round_trip(set_home, tmp_path):
    d = _folder(tmp_path, 3, mode="1")
    assert run("compress", "-m", "tiny-vae-binary", d, "-o", tmp_path / "b.nlc").exit_code == 0
    out = tmp_path / "out"
    assert run("decompress", tmp_path / "b.nlc", "-o", out).exit_code == 0
    for p in d.iterdir():
        a, b = Image.open(p), Image.open(out / p.name)
        assert b.mode == "1" and a.tobytes() == b.tobytes()


def test_idx_file_round_trip_byte_exact(set_home, tmp_path):
    arr = shapes_data(7)
    raw = gzip.compress(b"\0\0\x08\x03" + np.array(arr.shape, ">u4").tobytes() + arr.tobytes(), 9, mtime=0)
    src = tmp_path / "t10k-images-idx3-ubyte.gz"
    src.write_bytes(raw)
    assert run("compress", "-m", "tiny-vae", src, "-o", tmp_path / "t.nlc").exit_code == 0
    out = tmp_path / "out"
    r = run("decompress", tmp_path / "t.nlc", "-o", out)
    assert r.exit_code == 0, r.output
    assert (out / src.name).read_bytes() == raw


def test_a_set_of_one_array_file_restores_to_the_file_named(set_home, tmp_path):
    """`-o out/fm.npy` is that file (not a folder named fm.npy); a name with another suffix, or a file name for
    a set of images, is refused in one line before any decoding."""
    arr = shapes_data(3)
    src = tmp_path / "fm.npy"
    np.save(src, arr)
    assert run("compress", "-m", "tiny-vae", src, "-o", tmp_path / "fm.nlc").exit_code == 0
    out = tmp_path / "out" / "restored.npy"
    r = run("decompress", tmp_path / "fm.nlc", "-o", out)
    assert r.exit_code == 0, r.output
    assert out.is_file() and out.read_bytes() == src.read_bytes()
    assert_clean_error(run("decompress", tmp_path / "fm.nlc", "-o", out), "already exists")
    assert_clean_error(run("decompress", tmp_path / "fm.nlc", "-o", tmp_path / "x.png"),
                       "the set restores fm.npy byte for byte; name the output *.npy or a folder")
    d = _folder(tmp_path, 2)
    assert run("compress", "-m", "tiny-vae", d, "-o", tmp_path / "s.nlc").exit_code == 0
    assert_clean_error(run("decompress", tmp_path / "s.nlc", "-o", tmp_path / "all.png"),
                       "the set restores 2 images into a folder")
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "all.png").exists()


def test_truncated_set_file_is_a_clean_error(set_home, tmp_path):
    d = _folder(tmp_path, 3)
    f = tmp_path / "set.nlc"
    run("compress", "-m", "tiny-vae", d, "-o", f)
    f.write_bytes(f.read_bytes()[:-7])
    assert_clean_error(run("decompress", f, "-o", tmp_path / "o"), "set.nlc", "truncated or corrupted")


def test_mixed_sizes_are_refused(set_home, tmp_path):
    d = _folder(tmp_path, 2)
    Image.new("L", (30, 28)).save(d / "wide.png")
    assert_clean_error(run("compress", "-m", "tiny-vae", d, "-o", tmp_path / "s.nlc"), "same size")


def test_rgb_images_are_refused(set_home, tmp_path):
    d = _folder(tmp_path, 1)
    Image.new("RGB", (28, 28)).save(d / "color.png")
    assert_clean_error(run("compress", "-m", "tiny-vae", d, "-o", tmp_path / "s.nlc"), "color.png", "mode RGB")


def test_several_inputs_need_an_output(set_home, tmp_path):
    d = _folder(tmp_path, 2)
    files = sorted(d.iterdir())
    assert_clean_error(run("compress", "-m", "tiny-vae", *files), "-o SET.nlc", status=2)


def test_empty_set_round_trip(set_home, tmp_path):
    arr = np.zeros((0, 28, 28), np.uint8)
    src = tmp_path / "empty.npy"
    np.save(src, arr)
    assert run("compress", "-m", "tiny-vae", src, "-o", tmp_path / "e.nlc").exit_code == 0
    out = tmp_path / "out"
    assert run("decompress", tmp_path / "e.nlc", "-o", out).exit_code == 0
    assert (out / "empty.npy").read_bytes() == src.read_bytes()


def test_train_a_set_codec_and_resume(set_home, tmp_path):
    """`nlc train --model tiny-vae` on a Fashion-MNIST-shaped folder, then resumed exactly from its checkpoint."""
    import json

    data = tmp_path / "fmnist"
    data.mkdir()
    arr = shapes_data(60)
    (data / "train-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(b"\0\0\x08\x03" + np.array(arr.shape, ">u4").tobytes() + arr.tobytes()))
    out = tmp_path / "run"
    r = run("train", "--model", "tiny-vae", "--data", data, "--steps", 4, "--batch", 8, "--out", out)
    assert r.exit_code == 0, r.output
    assert "validation -ELBO" in r.stdout
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["steps"] == 4 and meta["architecture"] == "vae" and len(meta["sha256"]) == 64
    r = run("train", "--model", "tiny-vae", "--data", data, "--steps", 6, "--batch", 8, "--out", out,
            "--resume", out.with_suffix(".ckpt"))
    assert r.exit_code == 0, r.output
    assert json.loads(out.with_suffix(".json").read_text())["steps"] == 6


def test_train_photo_codec_needs_val(tiny_home, tmp_path):
    assert_clean_error(run("train", "--model", "tiny", "--data", tmp_path, "--steps", 1), "needs --val", status=2)


def test_train_photo_codec_runs_and_resumes(tiny_home, tmp_path):
    """The photo trainer (shared loop pieces in nlc.train.loop) trains, writes metadata and resumes."""
    import json

    from tests.conftest import photo_folder

    photos = photo_folder(tmp_path)
    out = tmp_path / "run"
    args = ("train", "--model", "tiny", "--data", photos, "--val", photos, "--batch", 2, "--crop", 8, "--out", out)
    r = run(*args, "--steps", 2)
    assert r.exit_code == 0, r.output
    assert json.loads(out.with_suffix(".json").read_text())["steps"] == 2
    r = run(*args, "--steps", 3, "--resume", out.with_suffix(".ckpt"))
    assert r.exit_code == 0, r.output
    assert json.loads(out.with_suffix(".json").read_text())["steps"] == 3
    # the updated codec TOML: the registry's entry with the new weights and their sha256
    import tomllib

    from nlc.registry import get_spec, sha256_file

    toml = tomllib.loads(out.with_suffix(".toml").read_text())
    assert toml["sha256"] == sha256_file(out.with_suffix(".safetensors")) and toml["weights"] == "run.safetensors"
    assert toml["hyperparameters"] == get_spec("tiny").hyperparameters and toml["architecture"] == "pixelcnnpp"


def test_train_stops_on_its_time_budget_and_resumes_exactly(tiny_home, tmp_path):
    """`--minutes` ends a call early with weights and a checkpoint; resuming it lands on the uninterrupted weights."""
    import json

    from safetensors.torch import load_file

    from tests.conftest import photo_folder

    photos = photo_folder(tmp_path)
    args = ("train", "--model", "tiny", "--data", photos, "--val", photos, "--batch", 2, "--crop", 8, "--steps", 3)
    cut, whole = tmp_path / "cut", tmp_path / "whole"
    r = run(*args, "--out", cut, "--minutes", 1e-9)  # the budget is spent after the first step
    assert r.exit_code == 0, r.output
    assert f"stopped at step 1 of 3 after 1e-09 minutes; go on with --resume {cut.with_suffix('.ckpt')}" in r.output
    meta = json.loads(cut.with_suffix(".json").read_text())
    assert meta["steps"] == 1 and meta["schedule_steps"] == 3 and len(meta["history"]) == 1
    r = run(*args, "--out", cut, "--resume", cut.with_suffix(".ckpt"))
    assert r.exit_code == 0, r.output
    assert run(*args, "--out", whole).exit_code == 0
    a, b = load_file(str(cut.with_suffix(".safetensors"))), load_file(str(whole.with_suffix(".safetensors")))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads(cut.with_suffix(".json").read_text())["steps"] == 3
