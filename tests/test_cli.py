"""The command line, through click's runner, with a tiny model registered in NLC_HOME."""

import json
from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner
from PIL import Image

from nlc import container
from nlc.cli import main
from tests.conftest import gradient_image, same_pixels


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_clean_error(result, *needles, status=1):
    """One line on stderr, no traceback, exit status 1 (a file failed) or ``status`` (2: a usage error)."""
    assert result.exit_code == status, result.output
    err = result.stderr.strip()
    assert "\n" not in err and "Traceback" not in err, err
    for n in needles:
        assert n in err, err


def test_compress_decompress_round_trip(photo, tmp_path):
    r = run("compress", photo)
    assert r.exit_code == 0, r.output
    nlc_file = tmp_path / "photo.png.nlc"
    assert nlc_file.exists() and "bits/subpixel" in r.stderr and not r.stdout  # status lines on stderr
    original = Image.open(photo)
    original.load()
    out = tmp_path / "back.png"
    assert run("decompress", nlc_file, "-o", out).exit_code == 0
    assert same_pixels(Image.open(out), original)


def test_never_overwrites_without_force(photo, tmp_path):
    assert run("compress", photo).exit_code == 0
    nlc_file = tmp_path / "photo.png.nlc"
    before = nlc_file.read_bytes()
    assert_clean_error(run("compress", photo), "already exists", "--force")
    assert nlc_file.read_bytes() == before
    assert_clean_error(run("decompress", nlc_file), "photo.png", "already exists")
    assert run("compress", photo, "--force").exit_code == 0


def test_several_inputs_to_a_folder(tmp_path, tiny_home):
    outdir = tmp_path / "out"
    outdir.mkdir()
    files = []
    for i, mode in enumerate(["L", "RGBA", "P"]):
        p = tmp_path / f"im{i}.png"
        gradient_image(7 + i, 9, mode).save(p)
        files.append(p)
    assert run("compress", *files, "-o", outdir).exit_code == 0
    back = tmp_path / "back"
    back.mkdir()
    assert run("decompress", *sorted(outdir.iterdir()), "-o", back).exit_code == 0
    for p in files:
        assert same_pixels(Image.open(back / p.name), Image.open(p))


def test_folders_stand_for_their_images(tmp_path, tiny_home):
    imgs = tmp_path / "imgs"
    (imgs / "sub").mkdir(parents=True)
    for name, mode in [("a.png", "RGB"), ("b.png", "L"), ("sub/c.png", "RGB")]:
        gradient_image(6, 5, mode).save(imgs / name)
    (imgs / "notes.txt").write_text("not an image")
    r = run("compress", imgs)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in imgs.iterdir()) == ["a.png", "a.png.nlc", "b.png", "b.png.nlc", "notes.txt", "sub"]
    assert r.stderr.splitlines()[-1].startswith("2 files: ")  # a total line after the two files' lines
    back = tmp_path / "back"
    back.mkdir()
    assert run("decompress", imgs, "-o", back).exit_code == 0
    assert sorted(p.name for p in back.iterdir()) == ["a.png", "b.png"]
    for name in ["a.png", "b.png"]:
        assert same_pixels(Image.open(back / name), Image.open(imgs / name))


def test_one_bad_input_among_several_stops_only_itself(tmp_path, tiny_home):
    good = []
    for name in ["a.png", "b.png"]:
        gradient_image(5, 4).save(tmp_path / name)
        good.append(tmp_path / name)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    out = tmp_path / "out"
    out.mkdir()
    r = run("compress", "-q", good[0], bad, good[1], "-o", out)
    assert r.exit_code == 1  # a file failed (2 is for usage errors)
    assert r.stderr.splitlines() == [f"nlc: error: {bad}: not an image (or a format Pillow cannot read)",
                                     "nlc: 1 of 3 input(s) failed"]
    assert sorted(p.name for p in out.iterdir()) == ["a.png.nlc", "b.png.nlc"]
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    r = run("compress", *good, "-o", out)  # never overwrites: both fail, both files stay as they were
    assert r.exit_code == 1 and r.stderr.count("already exists") == 2, r.output
    assert r.stderr.splitlines()[-1] == "nlc: 2 of 2 input(s) failed"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_info_and_models(photo, tmp_path):
    run("compress", "--no-fallback", photo)
    r = run("info", tmp_path / "photo.png.nlc", "--json")
    d = json.loads(r.stdout)
    assert (d["codec"], d["width"], d["height"], d["mode"], d["coder"]) == ("tiny", 17, 20, "RGB", "range")
    assert d["decodes_on"].startswith(f"torch {d['torch']} on cpu (")  # a float codec: its encoder's CPU kind
    r = run("models")
    assert r.exit_code == 0 and r.stdout.startswith("tiny (default)\t")  # the alias's target is marked


def test_commands_that_code_nothing_start_without_torch():
    """`nlc --help`, `nlc models` and `nlc info` (of an image file and of a set file) import neither torch nor
    numba: they answer in a fraction of a second, and so does shell completion, which runs the command."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = """
import sys
from nlc.cli import main
for args in (["--help"], ["models"], ["info", "tests/golden/default-rgb.nlc"], ["info", "tests/golden/made-fmnist-set.nlc"]):
    try:
        main(args, standalone_mode=False)
    except SystemExit as e:
        assert not e.code, (args, e.code)
print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "numba", "constriction")))
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "[]"
    assert "any machine (exact arithmetic)" in r.stdout and " (default)\t" in r.stdout


def test_bad_inputs_leave_nothing_behind(tmp_path, tiny_home):
    def files():
        return sorted(p.name for p in tmp_path.iterdir())

    text = tmp_path / "notes.txt"
    text.write_text("hello")
    cmyk = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (4, 4)).save(cmyk)
    deep = tmp_path / "deep.tif"
    Image.fromarray(np.arange(12, dtype=np.int32).reshape(3, 4) * 500000).save(deep)
    before = files()
    assert_clean_error(run("compress", tmp_path / "missing.png"), "missing.png", "no such file")
    assert_clean_error(run("compress", text), "notes.txt", "not an image")
    assert_clean_error(run("compress", cmyk), "cmyk.jpg", "unsupported image mode CMYK")
    assert_clean_error(run("compress", deep), "deep.tif", "I mode (32-bit integer) images are not supported")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_clean_error(run("compress", empty), "empty: a folder with no images")
    assert_clean_error(run("decompress", empty), "empty: a folder with no .nlc files")
    empty.rmdir()
    assert_clean_error(run("compress", text, "--model", "nope"), "unknown codec 'nope'", status=2)
    if not torch.cuda.is_available():
        assert_clean_error(run("compress", text, "--device", "cuda"), "CUDA is not available")
    assert files() == before


def test_bad_nlc_files(photo, tmp_path, tiny_home):
    assert run("compress", "--no-fallback", photo).exit_code == 0
    good = (tmp_path / "photo.png.nlc").read_bytes()
    cases = {
        "truncated.nlc": (good[: len(good) // 2], "truncated"),
        "magic.nlc": (b"GIF89a" + good[6:], "wrong magic"),
        "version.nlc": (good[:4] + b"\x07" + good[5:], "unknown format version 7"),
        "flipped.nlc": (good[:-6] + bytes([good[-6] ^ 0x10]) + good[-5:], "corrupted payload"),
    }
    h, model, plane = container.unpack(good)
    h.codec = "gone"
    cases["codec.nlc"] = (container.pack(h, model, plane), "unknown codec 'gone'")
    h.codec, h.width, h.height = "tiny", 1 << 19, 1 << 19
    cases["huge.nlc"] = (container.pack(h, model, plane), "absurd dimensions")
    for name, (data, needle) in cases.items():
        (tmp_path / name).write_bytes(data)
        assert_clean_error(run("decompress", tmp_path / name), name, needle)
        assert not (tmp_path / name.replace(".nlc", ".png")).exists()
    assert_clean_error(run("info", tmp_path / "magic.nlc"), "magic.nlc", "wrong magic")


def test_weights_that_do_not_match_their_hash(photo, tiny_home):
    w = tiny_home / "trained" / "tiny.safetensors"
    w.write_bytes(w.read_bytes()[:-1] + b"\0")
    assert_clean_error(run("compress", photo), "codec 'tiny'", "does not match")


def out_sha(home):
    from nlc.registry import sha256_file

    return sha256_file(home / "trained" / "tiny.safetensors")


def test_bench_runs_a_folder_and_shows_the_committed_result(tiny_home, tmp_path):
    """`nlc bench --data` codes every image losslessly near -log2 p and writes JSON; without --data it shows it."""
    import json

    from tests.conftest import gradient_image

    photos = tmp_path / "photos"
    photos.mkdir()
    for i, mode in enumerate(("RGB", "L")):
        gradient_image(20, 24 + i, mode=mode, seed=i).save(photos / f"p{i}.png")
    results = tiny_home / "bench" / "results"
    r = run("bench", "--data", photos, "--no-baselines", "--json", results / "kodak-tiny.json")
    assert r.exit_code == 0, r.output
    out = json.loads((results / "kodak-tiny.json").read_text())
    m = out["summary"]
    assert out["model"] == "tiny" and m["images"] == 2 and m["all_lossless"]
    bits = sum(im["bpsp"] * im["pixels"] * im["channels"] for im in out["images"])
    model_bits = sum(im["bpsp_model"] * im["pixels"] * im["channels"] for im in out["images"])
    assert model_bits < bits < model_bits + 8 * sum(im["header_bytes"] + 8 for im in out["images"])

    r = run("bench", "--model", "default")
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == [
        f"tiny on {photos}: 2 images (committed bench/results/kodak-tiny.json; {out['device']}, "
        f"torch {out['versions']['torch']})",
        f"  file {m['bpsp']:.4f} bits/subpixel   model {m['bpsp_model']:.4f}   gap {m['gap_pct']:.3f}%   all lossless",
        f"  encode {m['enc_s']:.2f} s/image   decode {m['dec_s']:.2f} s/image   peak {m['peak_mb']:.0f} MB",
        "Run it here: nlc bench --model default --data DIR [--json FILE]",
    ]
    assert run("bench", "--model", "all").output.splitlines()[0].startswith("tiny on ")
    assert_clean_error(run("bench", "--model", "all", "--data", photos), "--model all shows the committed results",
                       status=2)
    prov = out["provenance"]
    assert prov["codec"]["name"] == "tiny" and prov["codec"]["sha256"] == out_sha(tiny_home)
    assert prov["codec"]["coder"] == "range" and prov["codec"]["tile"] == 16 and prov["libraries"]["constriction"]
    assert prov["command"].startswith("nlc bench --data") and "png" in prov["baselines"]
    assert prov["command"].endswith("--no-baselines")  # the options given on the command line

    r = run("bench", "--data", photos, "--json", tmp_path / "b.json", "--plot", tmp_path / "b.png")
    assert r.exit_code == 0, r.output
    withb = json.loads((tmp_path / "b.json").read_text())
    assert "--no-baselines" not in withb["provenance"]["command"]  # a flag left out is not written
    for name in ("png", "webp", "jpegxl", "jpeg2000"):
        per = [im["baselines"][name] for im in withb["images"]]
        assert all(x["lossless"] and x["dec_s"] >= 0 and x["bpsp"] == x["bytes"] * 8 / (im["pixels"] * im["channels"])
                   for x, im in zip(per, withb["images"]))
        total = sum(x["bytes"] for x in per) * 8 / sum(im["pixels"] * im["channels"] for im in withb["images"])
        assert abs(withb["baselines"][name]["bpsp"] - total) < 1e-12
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import sys

    monkey = {"imagecodecs": None}  # as if imagecodecs were not installed
    saved = {k: sys.modules.get(k) for k in monkey}
    sys.modules.update(monkey)
    try:
        assert_clean_error(run("bench", "--data", photos), "need imagecodecs", "--no-baselines", status=2)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    (results / "kodak-tiny.json").unlink()
    assert_clean_error(run("bench", "--model", "tiny"), "codec 'tiny' has no committed result in bench/results")


def test_verify_decodes_in_memory_and_compares_with_originals(tmp_path, tiny_home):
    """`nlc verify` checks image and set files without writing; --originals compares pixels; failures are counted."""
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for name, mode in [("a.png", "RGB"), ("b.png", "P"), ("c.png", "L")]:
        gradient_image(6, 5, mode).save(imgs / name)
    assert run("compress", imgs).exit_code == 0
    gray = tmp_path / "gray"
    gray.mkdir()
    for i in range(3):
        gradient_image(6, 5, "L", seed=i).save(gray / f"{i}.png")
    assert run("compress", "--set", gray, "-o", tmp_path / "gray.nlc").exit_code == 0
    before = sorted(p.name for p in imgs.iterdir())

    r = run("verify", imgs, tmp_path / "gray.nlc", "--originals")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == 4 and all(": ok, " in line for line in lines), lines
    assert lines[0].startswith(f"{imgs / 'a.png.nlc'}: ok, 5x6 RGB, codec tiny, ")
    assert lines[0].endswith(f", same pixels as {imgs / 'a.png'}")
    assert f"{imgs / 'b.png.nlc'}: ok, 5x6 P, " in lines[1]
    assert lines[3].startswith(f"{tmp_path / 'gray.nlc'}: ok, 3 images of 5x6 L, codec tiny, ")
    assert sorted(p.name for p in imgs.iterdir()) == before  # nothing written

    a = np.asarray(Image.open(imgs / "a.png")).copy()
    a[0, 0, 0] ^= 1
    Image.fromarray(a).save(imgs / "a.png")  # the original changed after compression
    data = (imgs / "c.png.nlc").read_bytes()
    (imgs / "c.png.nlc").write_bytes(data[:-3] + bytes([data[-3] ^ 0x04]) + data[-2:])
    r = run("verify", imgs, "--originals")
    assert r.exit_code == 1
    err = r.stderr.splitlines()
    assert err[0] == f"nlc: error: {imgs / 'a.png.nlc'}: decodes to other pixels than {imgs / 'a.png'}"
    assert err[1].startswith(f"nlc: error: {imgs / 'c.png.nlc'}: ") and "corrupted" in err[1], err
    assert err[2] == "nlc: 2 of 3 input(s) failed"
    assert run("verify", imgs / "a.png.nlc").exit_code == 0  # without --originals: the file itself is fine
    (imgs / "b.png").unlink()
    assert_clean_error(run("verify", imgs / "b.png.nlc", "--originals"), "b.png", "no such file")
    assert sorted(p.name for p in imgs.iterdir()) == sorted(set(before) - {"b.png"})


def test_pipes(tmp_path, tiny_home):
    """`-` reads standard input and writes standard output; the bytes are those of the file commands."""
    p = tmp_path / "photo.png"
    gradient_image(9, 7, "RGBA").save(p)
    assert run("compress", p).exit_code == 0
    nlc_bytes = (tmp_path / "photo.png.nlc").read_bytes()
    piped = CliRunner().invoke(main, ["compress", "-"], input=p.read_bytes())
    assert piped.exit_code == 0, piped.output
    assert piped.stdout_bytes == nlc_bytes
    assert piped.stderr.startswith("<stdin> -> <stdout>: ")
    assert CliRunner().invoke(main, ["compress", str(p), "-o", "-"]).stdout_bytes == nlc_bytes
    r = CliRunner().invoke(main, ["compress", "-", "-o", str(tmp_path / "in.nlc")], input=p.read_bytes())
    assert r.exit_code == 0 and (tmp_path / "in.nlc").read_bytes() == nlc_bytes
    back = CliRunner().invoke(main, ["decompress", "-"], input=nlc_bytes)
    assert back.exit_code == 0, back.output
    (tmp_path / "back.png").write_bytes(back.stdout_bytes)
    assert same_pixels(Image.open(tmp_path / "back.png"), Image.open(p))
    out = CliRunner().invoke(main, ["decompress", str(tmp_path / "in.nlc"), "-o", "-"])
    assert out.stdout_bytes == back.stdout_bytes
    assert sorted(x.name for x in tmp_path.iterdir()) == ["back.png", "home", "in.nlc", "photo.png", "photo.png.nlc"]

    def fails(args, data, message, status=1):
        r = CliRunner().invoke(main, args, input=data)
        assert r.exit_code == status and r.stderr == f"nlc: error: {message}\n" and not r.stdout_bytes, r.output

    fails(["compress", "-"], b"not an image", "<stdin>: not an image (or a format Pillow cannot read)")
    fails(["decompress", "-"], nlc_bytes[:40], "<stdin>: truncated file")
    fails(["compress", "-", str(p)], b"", "with standard input or output ('-'), give exactly one input", 2)
    fails(["compress", "--set", "-"], b"", "a set is read from files or folders and written to a file, not through a pipe",
          2)
    fails(["compress", "-", "-o", str(tmp_path / "in.nlc")], p.read_bytes(),
          f"{tmp_path / 'in.nlc'}: already exists (use --force to overwrite)")


def test_decompress_to_lossless_webp_and_refuse_lossy_names(tmp_path, tiny_home):
    rgba, gray = tmp_path / "rgba.png", tmp_path / "gray.png"
    gradient_image(9, 7, "RGBA").save(rgba)
    gradient_image(9, 7, "L").save(gray)
    for src in (rgba, gray):
        assert run("compress", src).exit_code == 0
    out = tmp_path / "back.webp"
    assert run("decompress", tmp_path / "rgba.png.nlc", "-o", out).exit_code == 0
    back = Image.open(out)
    assert back.format == "WEBP" and back.mode == "RGBA" and same_pixels(back, Image.open(rgba))
    before = sorted(p.name for p in tmp_path.iterdir())
    assert_clean_error(run("decompress", tmp_path / "rgba.png.nlc", "-o", tmp_path / "back.jpg"),
                       "back.jpg", "JPEG would change the pixels", ".png")
    assert_clean_error(run("decompress", tmp_path / "gray.png.nlc", "-o", tmp_path / "g.webp"),
                       "g.webp", "RGB and RGBA pixels only (this image is mode L)")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_training_runs_codec_toml_compresses_and_only_it_decodes(tiny_home, tmp_path):
    """`nlc compress -m RUN.toml`: the file names the run's codec and weights; the registry cannot decode it
    (one line that says how), `-m RUN.toml` can, for decompress and verify alike."""
    from safetensors.torch import save_file

    from nlc.models.pixelcnnpp import PixelCNNPP, PixelCNNPPConfig
    from nlc.registry import get_spec, write_codec_toml
    from tests.conftest import TINY

    torch.manual_seed(11)
    run_dir = tmp_path / "runs"
    run_dir.mkdir()
    save_file(PixelCNNPP(PixelCNNPPConfig(**TINY)).state_dict(), str(run_dir / "mine.safetensors"))
    toml = write_codec_toml(get_spec("tiny"), run_dir / "mine.safetensors")
    img = tmp_path / "g.png"
    gradient_image(13, 11, "RGB").save(img)
    r = run("compress", "-m", toml, "--no-fallback", img)
    assert r.exit_code == 0, r.output
    header = container.unpack((tmp_path / "g.png.nlc").read_bytes())[0]
    assert header.codec.startswith("tiny-run-") and header.weights_sha256 != get_spec("tiny").sha256
    assert_clean_error(run("decompress", tmp_path / "g.png.nlc", "-o", tmp_path / "x.png"),
                       f"unknown codec '{header.codec}'",
                       "decodes with -m ITS.toml")
    assert run("verify", "-m", toml, tmp_path / "g.png.nlc").exit_code == 0
    r = run("decompress", "-m", toml, tmp_path / "g.png.nlc", "-o", tmp_path / "back.png")
    assert r.exit_code == 0, r.output
    assert same_pixels(Image.open(tmp_path / "back.png"), Image.open(img))
    toml.write_text(toml.read_text().replace(header.weights_sha256, "0" * 64))  # the TOML claims other weights
    assert_clean_error(run("decompress", "-m", toml, tmp_path / "g.png.nlc", "-o", tmp_path / "y.png"),
                       "weights sha256", "does not match the registry's 0000")
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "y.png").exists()


def _tree(root, names):
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        gradient_image(6 + len(name) % 5, 5, "RGB", seed=len(name)).save(root / name)


def test_recursive_runs_mirror_the_tree_and_report_each_file(tiny_home, tmp_path):
    src = tmp_path / "photos"
    _tree(src, ["a.png", "trip/b.png", "trip/day2/c.png"])
    (src / "trip" / "notes.txt").write_text("not an image: left alone")
    out, back = tmp_path / "archive", tmp_path / "back"
    r = run("compress", "-r", src, "-o", out, "--report", tmp_path / "c.jsonl")
    assert r.exit_code == 0, r.output
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "a.png.nlc", "trip/b.png.nlc", "trip/day2/c.png.nlc"]
    lines = [json.loads(x) for x in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert [x["status"] for x in lines] == ["ok"] * 3
    assert {x["input"] for x in lines} == {str(src / n) for n in ["a.png", "trip/b.png", "trip/day2/c.png"]}
    for x in lines:
        assert x["bytes"] == Path(x["output"]).stat().st_size and x["seconds"] >= 0
        assert x["bits_per_subpixel"] == x["bytes"] * 8 / x["subpixels"]
    assert run("decompress", "-r", out, "-o", back, "-j", "2").exit_code == 0  # two worker processes
    for name in ["a.png", "trip/b.png", "trip/day2/c.png"]:
        assert same_pixels(Image.open(back / name), Image.open(src / name))
    assert_clean_error(run("compress", src, "-o", tmp_path / "missing"), "-o must be an existing folder", status=2)
    r = run("compress", "-r", src / "trip", "-o", out / "trip")  # never overwrites: both fail in one line each
    assert r.exit_code == 1 and r.stderr.count("already exists") == 2, r.output


def test_a_killed_folder_run_resumes_with_skip_existing(tiny_home, tmp_path):
    """A run killed halfway leaves whole files only; --skip-existing codes the rest, none twice, all exact."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    src, out = tmp_path / "many", tmp_path / "out"
    _tree(src, [f"{i:02d}.png" for i in range(24)])
    out.mkdir()
    cmd = [sys.executable, "-m", "nlc", "compress", str(src), "-o", str(out), "--threads", "1", "-q"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ), stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(out.glob("*.nlc"))) < 3 and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = {p.name: p.stat().st_mtime_ns for p in out.glob("*.nlc")}
    assert 3 <= len(done) < 24, len(done)  # killed halfway
    r = run("compress", src, "-o", out, "--skip-existing", "--report", tmp_path / "r.jsonl")
    assert r.exit_code == 0, r.output
    report = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    skipped = {Path(x["output"]).name for x in report if x["status"] == "skipped"}
    coded = {Path(x["output"]).name for x in report if x["status"] == "ok"}
    assert skipped == set(done) and not skipped & coded and len(skipped | coded) == 24  # none coded twice
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.nlc") if p.name in done} == done
    assert not list(out.glob(".*.tmp"))  # what the kill left of a file being written is gone
    back = tmp_path / "back"
    back.mkdir()
    assert run("decompress", out, "-o", back, "-q").exit_code == 0
    for p in src.iterdir():
        assert same_pixels(Image.open(back / p.name), Image.open(p))


def test_the_command_ends_at_once_with_its_status_and_all_its_output(tiny_home, tmp_path):
    """`python -m nlc` (as the installed `nlc`) skips the interpreter's teardown: the exit status, the
    status lines and the files are all there, and a reader that closed the pipe early gets no traceback."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    gradient_image(9, 7, "RGB").save(tmp_path / "g.png")
    env = dict(os.environ)

    def nlc(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "nlc", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300)

    r = nlc("compress", str(tmp_path / "g.png"))
    assert r.returncode == 0 and "g.png -> " in r.stderr and (tmp_path / "g.png.nlc").exists()
    r = nlc("info", str(tmp_path / "g.png.nlc"))
    assert r.returncode == 0 and "codec" in r.stdout
    r = nlc("decompress", str(tmp_path / "missing.nlc"))
    assert r.returncode == 1 and r.stderr.endswith("missing.nlc: no such file\n") and r.stderr.count("\n") == 1
    r = nlc("compress", "--no-such-option")
    assert r.returncode == 2 and "No such option" in r.stderr
    r = nlc("compress", str(tmp_path / "g.png"))  # the output exists: a failed file
    assert r.returncode == 1 and "already exists" in r.stderr
    closed = subprocess.run(f"{sys.executable} -m nlc models | head -c 1", shell=True, cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert "Traceback" not in closed.stderr


def test_many_small_images_take_a_process_per_core_by_default(tiny_home, tmp_path, monkeypatch):
    """-j 0 (the default): one process per core for 16 or more small images (or .nlc files of them) when
    --threads is left to nlc; one process for fewer files, a larger image among them, --threads or -j N."""
    from nlc import cli, threads
    from nlc.batch import Job

    monkeypatch.setattr(threads, "cores", lambda: 2)
    _tree(tmp_path, [f"{i:02d}.png" for i in range(16)])
    big = tmp_path / "big.png"
    Image.new("RGB", (129, 128)).save(big)
    plan = [Job(p, None) for p in sorted(tmp_path.glob("??.png"))]
    assert cli._auto_jobs(0, 0, plan, cli._small_image) == 2
    assert cli._auto_jobs(0, 0, plan[:15], cli._small_image) == 1
    assert cli._auto_jobs(0, 0, plan + [Job(big, None)], cli._small_image) == 1
    assert cli._auto_jobs(0, 1, plan, cli._small_image) == 1  # --threads 1: the user sizes the run
    assert cli._auto_jobs(3, 0, plan, cli._small_image) == 3
    assert not cli._small_image(tmp_path / "missing.png") and not cli._small_image(big)
    assert run("compress", "-q", tmp_path / "00.png", big).exit_code == 0
    assert cli._small_nlc(tmp_path / "00.png.nlc") and not cli._small_nlc(tmp_path / "big.png.nlc")
    (tmp_path / "bad.nlc").write_bytes(b"not a file nlc wrote")
    assert not cli._small_nlc(tmp_path / "bad.nlc")
