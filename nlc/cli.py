"""``nlc``: a thin click layer over :mod:`nlc.api`, :mod:`nlc.bench` and :mod:`nlc.train`.

Bad input exits with status 2 and one line on stderr naming the file and the
problem; no output file is left behind. With several inputs (or a folder of
them), each bad one gets its line and the others are still done, as gzip does;
the exit status is then 2.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Sequence

import click

from . import api, images, metadata
from .container import SET_MAGIC
from .errors import InputError, NlcError, file_errors

DEVICE = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
                      help="Where the model runs.")
OWN_CODEC = click.option("-m", "--model", default=None, metavar="RUN.toml",
                         help="A codec the registry does not hold (the TOML `nlc train` writes) for files it coded; "
                              "default: the codec the file names, from the registry.")


def _own_codec(model: str | None, device: str) -> "api.Codec | None":
    """The codec ``-m`` names for decoding (on the CPU for a set codec), or ``None``: the registry's."""
    if model is None:
        return None
    from .codec import spec_of

    return api.Codec.load(model, "cpu" if spec_of(model).family == "bitsback" else api.resolve_device(device))


def _fail(message: str) -> None:
    click.echo(f"nlc: error: {message}", err=True)
    sys.exit(2)


def _naming(src: str, e: Exception) -> str:
    """The error's message, led by the input file's name unless it names it already."""
    msg = str(e)
    return msg if str(src) in msg else f"{src}: {msg}"


def _fail_for(src: str, e: Exception) -> None:
    """Fail with a message that names the input file."""
    _fail(_naming(src, e))


def _progress() -> bool:
    return sys.stderr.isatty()


def _folder_image_suffixes() -> set[str]:
    """What a folder's images are called: the suffixes a set restores, and JPEG and PPM (decoded to PNG)."""
    from .sets import IMAGE_SUFFIXES

    return set(IMAGE_SUFFIXES) | {".jpg", ".jpeg", ".ppm"}


def _expand_inputs(inputs: tuple[str, ...], decompress: bool) -> list[str]:
    """Inputs with every folder replaced by its files, sorted: images to compress, or ``.nlc`` files to decompress.

    Only the folder's own files are taken (no recursion). A folder with none
    of them is a clean error.
    """
    out: list[str] = []
    for src in inputs:
        p = Path(src)
        if not p.is_dir():
            out.append(src)
            continue
        suffixes = {api.SUFFIX} if decompress else _folder_image_suffixes()
        found = sorted(f for f in p.iterdir() if f.suffix.lower() in suffixes and f.is_file())
        if not found:
            kind = f"{api.SUFFIX} files" if decompress else "images (" + ", ".join(sorted(suffixes)) + ")"
            _fail(f"{src}: a folder with no {kind}")
        out.extend(str(f) for f in found)
    return out


class _Failures:
    """Errors of single inputs: fatal with one input; with several, reported and counted until the end."""

    def __init__(self, inputs: list[str]) -> None:
        self.several = len(inputs) > 1
        self.count = 0

    def add(self, src: str, e: Exception) -> None:
        """Report ``e`` for ``src``: exit now with one input, else go on to the next."""
        if not self.several:
            _fail_for(src, e)
        click.echo(f"nlc: error: {_naming(src, e)}", err=True)
        self.count += 1

    def finish(self, done: int) -> None:
        """Exit with status 2 if any input failed, after a line that counts them."""
        if self.count:
            click.echo(f"nlc: {self.count} of {self.count + done} input(s) failed", err=True)
            sys.exit(2)


def _outputs(inputs: Sequence[str], output: str | None, decompress: bool) -> list[Path | None]:
    if output is None:
        return [None] * len(inputs)
    out = Path(output)
    if len(inputs) == 1 and not out.is_dir():
        return [out]
    if not out.is_dir():
        _fail(f"{out}: with several inputs, -o must be an existing folder")
    return [out / api.default_output(Path(i), decompress).name for i in inputs]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nlc", message="nlc %(version)s")
def main() -> None:
    """Lossless compression with neural likelihood models."""


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", help="Output file (one input) or folder (several); - for standard output.")
@click.option("-m", "--model", default="default", show_default=True,
              help="Codec name (see `nlc models`), or the codec TOML of a training run (RUN.toml).")
@click.option("--coder", type=click.Choice(["range", "ans"]), default=None, help="Entropy coder (default: the codec's).")
@click.option("--tile", type=click.IntRange(8, 4096), default=None, help="Tile side (default: the codec's).")
@click.option("-f", "--force", is_flag=True, help="Overwrite existing output files.")
@click.option("--set", "as_set", is_flag=True,
              help="All inputs (same-sized images, folders of them, or one idx/.npy array) into one file.")
@click.option("--strip", is_flag=True,
              help="Keep the pixels only: drop the ICC profile, EXIF, XMP, text chunks and resolution.")
@click.option("--no-fallback", is_flag=True,
              help="Always keep the model's coding, even where lossless WebP would be smaller.")
@DEVICE
def compress(inputs, output, model, coder, tile, force, as_set, strip, no_fallback, device) -> None:
    """Compress images to IMAGE.nlc.

    A folder stands for the images in it (not its sub-folders), each coded to
    its own IMAGE.nlc beside it, or into the folder ``-o`` names. ``-`` reads
    one image from standard input and writes the file to standard output
    (or ``-o FILE``); ``-o -`` writes to standard output.

    With ``--set``, all inputs (same-sized gray or RGB images, folders of them,
    or one idx/.npy array file) go into one file, ``-o SET.nlc``: the tiles of
    all the images are coded as one batch, far faster than one file each for
    small images. A set codec (``--model vae-fmnist`` and the other *-fmnist
    codecs) always writes a set.

    An image's metadata (ICC colour profile, EXIF, XMP, PNG colour and text
    chunks, resolution) is kept and written back by ``nlc decompress``;
    ``--strip`` drops it. Sets keep pixels only.

    Pixels are also coded as lossless WebP, and the file keeps whichever is
    smaller (a screenshot or a drawing can cost a photo model many times
    more); ``--no-fallback`` always keeps the model's coding.
    """
    from . import sets

    piped = _piped(inputs, output)
    try:
        if as_set or sets.is_set_codec(model):
            if piped:
                _fail("a set is read from files or folders and written to a file, not through a pipe")
            _compress_set(inputs, output, model, force, coder, tile, device)
            return
        codec = api.Codec.load(model, api.resolve_device(device))
        if piped:
            _compress_pipe(inputs[0], output, codec, force, coder=coder, tile=tile, device=device,
                           keep_metadata=not strip, fallback=not no_fallback)
            return
    except NlcError as e:
        _fail(str(e))
    files = _expand_inputs(inputs, False)
    failures, total_bytes, total_subpixels, done = _Failures(files), 0, 0, 0
    for src, dst in zip(files, _outputs(files, output, False)):
        try:
            path, stats = api.compress(src, dst, codec=codec, force=force, progress=_progress(),
                                       coder=coder, tile=tile, device=device, keep_metadata=not strip,
                                       fallback=not no_fallback)
        except NlcError as e:
            failures.add(src, e)
            continue
        n = stats["subpixels"]
        click.echo(f"{src} -> {path}: {_outcome(stats)}")
        total_bytes, total_subpixels, done = total_bytes + stats["bytes"], total_subpixels + n, done + 1
    if done > 1:
        rate = f", {total_bytes * 8 / total_subpixels:.3f} bits/subpixel" if total_subpixels else ""
        click.echo(f"{done} files: {total_bytes} bytes{rate}")
    failures.finish(done)


LOSSY = {"JPEG": "a JPEG", "MPO": "a JPEG", "WEBP": "a WebP", "HEIF": "a HEIF", "AVIF": "an AVIF"}


def _outcome(stats: dict) -> str:
    """What one compressed image reports: bytes and rate, and why when the file is not the model's coding
    or is larger than its input."""
    n, size = stats["subpixels"], stats["bytes"]
    line = f"{size} bytes" + (f", {size * 8 / n:.3f} bits/subpixel" if n else "")
    if stats.get("pixels_coder") == "webp" and stats.get("model_payload_bytes") is None:
        line += (f" (pixels as lossless WebP: the model, estimated at {stats['model_estimate']:.3f} bits/subpixel "
                 "on a few tiles, was not run)")
    elif stats.get("pixels_coder") == "webp":
        line += f" (pixels as lossless WebP: the model's coding took {stats['model_payload_bytes']} bytes)"
    if size > stats.get("input_bytes", size):
        kind = LOSSY.get(stats.get("input_format") or "")
        line += f"; larger than the {stats['input_bytes']}-byte input"
        if kind:
            line += (f" ({kind} may be lossy: nlc keeps its decoded pixels exactly and decompresses to PNG, "
                     "so keep the original file)")
    return line


def _piped(inputs: tuple[str, ...], output: str | None) -> bool:
    """Whether standard input or output carries the data: input ``-`` (which must be the only one) or ``-o -``."""
    if "-" not in inputs and output != "-":
        return False
    if len(inputs) != 1:
        _fail("with standard input or output ('-'), give exactly one input")
    return True


def _emit(data: bytes, output: str | None, force: bool) -> str:
    """Write ``data`` to ``-o FILE``, or to standard output (no ``-o``, or ``-o -``); returns where it went."""
    if output not in (None, "-"):
        return str(api.write_file(output, data, force=force))
    if sys.stdout.isatty():
        raise InputError("binary data is not written to a terminal: redirect standard output or use -o FILE")
    out = sys.stdout.buffer
    out.write(data)
    out.flush()
    return "<stdout>"


def _read_input(src: str) -> bytes:
    """The bytes of ``src``, or of standard input for ``-``."""
    if src == "-":
        return sys.stdin.buffer.read()
    with file_errors(src):
        return Path(src).read_bytes()


def _stream_name(src: str) -> str:
    """What messages call an input: ``<stdin>`` for ``-``."""
    return "<stdin>" if src == "-" else src


def _compress_pipe(src: str, output: str | None, codec: api.Codec, force: bool, **kw) -> None:
    """One image from a file or standard input, to ``-o FILE`` or standard output."""
    name = _stream_name(src)
    if output not in (None, "-"):
        api.check_output(Path(output), force)  # before the work, not after it
    raw = _read_input(src)
    im = images.image_from_bytes(raw, name)
    data, stats = api.encode_image(im, codec, progress=_progress(), **kw)
    where = _emit(data, output, force)
    stats = dict(stats, bytes=len(data), input_bytes=len(raw), input_format=im.format)
    click.echo(f"{name} -> {where}: {_outcome(stats)}", err=where == "<stdout>")


def _decompress_pipe(src: str, output: str | None, force: bool, device: str, codec: api.Codec | None) -> None:
    """One image file from a file or standard input, to ``-o FILE`` (PNG) or standard output."""
    name = _stream_name(src)
    if output not in (None, "-"):
        api.check_output(Path(output), force)  # before the work, not after it
    data = _read_input(src)
    if data[:4] == SET_MAGIC:
        raise InputError(f"{name}: a set file restores files into a folder: nlc decompress SET.nlc -o DIR")
    out = api.decoded_file_bytes(data, None if output == "-" else output, device=device, progress=_progress(),
                                 codec=codec)
    where = _emit(out, output, force)
    click.echo(f"{name} -> {where}", err=where == "<stdout>")


def _compress_set(inputs: tuple[str, ...], output: str | None, model: str, force: bool, coder: str | None,
                  tile: int | None, device: str) -> None:
    from . import sets

    if output is None:
        if len(inputs) != 1:
            _fail("with a set and several inputs, name the output file with -o SET.nlc")
        src = Path(inputs[0].rstrip("/"))
        output = str(src.with_name(src.name + api.SUFFIX))  # beside the folder or array file, like IMAGE.nlc
    latent = sets.is_set_codec(model)
    if latent and (coder or tile):
        _fail(f"--coder and --tile apply to photo codecs; {model!r} codes sets with its own bits-back chain")
    kw = {} if latent else {"coder": coder, "tile": tile, "device": device}
    path, stats = sets.compress_set(list(inputs), output, codec=model, force=force, progress=_progress(), **kw)
    unit = "pixel" if latent else "subpixel"
    click.echo(f"{len(inputs)} input(s) -> {path}: {stats['items']} images, {stats['bytes']} bytes, "
               f"{stats['bytes'] * 8 / max(1, stats['pixels']):.4f} bits/{unit}")


def _is_set_file(src: str) -> bool:
    try:
        with open(src, "rb") as f:
            return f.read(4) == SET_MAGIC
    except OSError:
        return False


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output",
              help="Output file (one input) or folder (several, or a set file); - for standard output.")
@click.option("-f", "--force", is_flag=True, help="Overwrite existing output files.")
@OWN_CODEC
@DEVICE
def decompress(inputs, output, force, model, device) -> None:
    """Decompress .nlc files to PNG; a set file restores all its images (or its array file) into a folder.

    ``-o NAME.webp`` writes lossless WebP instead (RGB and RGBA images); a
    name for a lossy format (.jpg, .avif, .heic, .gif) is refused. A folder
    stands for the .nlc files in it. ``-`` reads one image file
    from standard input and writes the PNG to standard output (or ``-o
    FILE``); ``-o -`` writes to standard output.
    """
    from . import sets

    try:
        codec = _own_codec(model, device)
    except NlcError as e:
        _fail(str(e))
    if _piped(inputs, output):
        try:
            _decompress_pipe(inputs[0], output, force, device, codec)
        except NlcError as e:
            _fail_for(_stream_name(inputs[0]), e)
        return
    files = _expand_inputs(inputs, True)
    failures, done = _Failures(files), 0
    set_files = {src for src in files if _is_set_file(src)}
    for src in files:
        if src in set_files:
            try:
                paths = sets.decompress_set(src, output, force=force, progress=_progress(), device=device,
                                            codec=codec)
            except NlcError as e:
                failures.add(src, e)
                continue
            where = paths[0].parent if paths else output
            click.echo(f"{src} -> {where}: {len(paths)} file(s)")
            done += 1
    rest = [i for i in files if i not in set_files]
    for src, dst in zip(rest, _outputs(tuple(rest), output, True) if rest else []):
        try:
            path = api.decompress(src, dst, force=force, progress=_progress(), device=device, codec=codec)
        except NlcError as e:
            failures.add(src, e)
            continue
        click.echo(f"{src} -> {path}")
        done += 1
    failures.finish(done)


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--originals", is_flag=True,
              help="Also compare each decoded image with its original: the file of the same name without .nlc.")
@OWN_CODEC
@DEVICE
def verify(inputs, originals, model, device) -> None:
    """Decode .nlc files in memory and check them; nothing is written (like gzip -t).

    Every CRC is checked: header, payload and the original pixels. With
    --originals, each image is also compared pixel for pixel with the file
    it was made from (photo.png.nlc with photo.png), for example before
    deleting it. A folder stands for the .nlc files in it. Exit status 2 if
    any file fails.
    """
    from .verification import verify as verify_file

    try:
        codec = _own_codec(model, device)
    except NlcError as e:
        _fail(str(e))
    files = _expand_inputs(inputs, True)
    failures, done = _Failures(files), 0
    for src in files:
        try:
            r = verify_file(src, original=originals, device=device, progress=_progress(), codec=codec)
        except NlcError as e:
            failures.add(src, e)
            continue
        what = f"{r['items']} images of {r['size']} {r['mode']}" if r["kind"] == "set" else f"{r['size']} {r['mode']}"
        same = f", same pixels as {r['original']}" if "original" in r else ""
        coded = f"codec {r['codec']}" + (" (pixels as lossless WebP)" if r.get("pixels") == "webp" else "")
        click.echo(f"{src}: ok, {what}, {coded}, {r['bytes']} bytes, decoded in {r['seconds']:.1f} s{same}")
        done += 1
    failures.finish(done)


@main.command()
@click.argument("file")
@click.option("--json", "as_json", is_flag=True, help="Print the header as JSON.")
def info(file, as_json) -> None:
    """Show the header of a .nlc file, and where it decodes (any machine for a codec with exact arithmetic)."""
    from dataclasses import asdict

    from .container import is_set, unpack_set

    try:
        data = api.read_nlc(file)
        if is_set(data):
            header = unpack_set(data)[0]
            d = asdict(header)
            src = d.pop("source")
            d.update(source=src["kind"], names=len(src.get("names", [])) or src.get("name", ""))
        else:
            header = api.read_header(data)
            d = dict(header.as_dict(), metadata=metadata.summary(metadata.unpack(header.metadata)))
    except NlcError as e:
        _fail_for(file, e)
    extra = d.get("extra") or {}
    d = dict(d, file=file, bytes=len(data),
             decodes_on=api.decodes_on(d["codec"], d["torch"], d["device"], extra.get("cpu"),
                                       extra.get("pixels", "model")))
    if as_json:
        click.echo(json.dumps(d, indent=2))
    else:
        width = max(map(len, d))
        for k, v in d.items():
            click.echo(f"{k:<{width}}  {v}")


@main.command()
def models() -> None:
    """List the codecs: name (the default marked), what it is, and its committed benchmark figure
    (from bench/results)."""
    from .bench import kodak_result, set_result
    from .registry import DEFAULT, codec_names, get_spec

    try:
        default = get_spec(DEFAULT).name
        for name in codec_names():
            spec = get_spec(name)
            if spec.family == "bitsback":
                r = set_result(name)
                rate = f"{r:.3f} bits/dim on the fashion-mnist test set" if r is not None else "not benchmarked"
            else:
                r = kodak_result(name)
                rate = f"{r:.3f} bits/subpixel on kodak" if r is not None else "not benchmarked on kodak"
            marked = f"{name} (default)" if name == default else name
            click.echo(f"{marked}\t{spec.description}\t{rate}")
    except NlcError as e:
        _fail(str(e))


@main.command()
@click.option("-m", "--model", default="default", show_default=True,
              help="Codec name; without --data also 'all' (every codec's committed result).")
@click.option("--data", default=None, type=click.Path(exists=True, file_okay=False),
              help="Folder of images to run on; without it, the committed result (bench/results) is shown.")
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N images.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write results as JSON.")
@click.option("--no-baselines", is_flag=True, help="Skip PNG / WebP / JPEG-XL.")
@DEVICE
def bench(model, data, limit, json_path, no_baselines, device) -> None:
    """Compress, decompress and check every image of a folder; compare with classical codecs.

    With a set codec (``--model vae-fmnist``), DATA is the Fashion-MNIST folder
    and the whole test set is coded as one file. Without ``--data``, the
    codec's committed result is shown (``--model all``: every codec's).
    """
    from .bench import run_bench
    from .sets import is_set_codec

    try:
        if data is None:
            _show_committed(model)
            return
        if model == "all":
            _fail("--model all shows the committed results; to run on --data, name one codec")
        if is_set_codec(model):
            from .bench_sets import run_set_bench

            run_set_bench(model, data, limit=limit, json_path=json_path, baselines=not no_baselines,
                          progress=_progress())
            return
        run_bench(model, data, limit=limit, json_path=json_path, baselines=not no_baselines, device=device,
                  progress=_progress())
    except NlcError as e:
        _fail(str(e))


def _show_committed(model: str) -> None:
    from .bench import committed_report
    from .registry import codec_names

    if model != "all":
        lines = committed_report(model)
        if not lines:
            _fail(f"codec {model!r} has no committed result in bench/results; run it with --data DIR")
        click.echo("\n".join(lines + [f"Run it here: nlc bench --model {model} --data DIR [--json FILE]"]))
        return
    reports = [lines for lines in map(committed_report, codec_names()) if lines]  # codecs never benched: none
    click.echo("\n\n".join("\n".join(lines) for lines in reports))


@main.command()
@click.option("-m", "--model", default="pixelcnnpp", show_default=True, help="Codec whose architecture to train.")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False),
              help="Training images (photos), or the Fashion-MNIST folder for the *-fmnist codecs.")
@click.option("--val", default=None, type=click.Path(exists=True, file_okay=False),
              help="Validation images (photo models; the *-fmnist codecs hold out 5,000 training images).")
@click.option("--steps", default=10000, show_default=True, type=click.IntRange(1))
@click.option("--batch", default=None, type=click.IntRange(1), help="Batch size [16 for photos, 64 for sets].")
@click.option("--crop", default=32, show_default=True, type=click.IntRange(8))
@click.option("--lr", default=None, type=float, help="Peak learning rate [2e-3 for photos, 1e-3 for sets].")
@click.option("--resume", type=click.Path(exists=True, dir_okay=False), default=None, help="Checkpoint to resume.")
@click.option("--minutes", default=0.0, type=click.FloatRange(0), metavar="M",
              help="Stop this call after M minutes, with weights and a checkpoint written; "
                   "--resume it to go on under the same schedule (0: run to --steps).")
@click.option("--init", "init", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Photo codecs: start from these safetensors weights (a fine-tune) instead of a fresh model; "
                   "layers the model has and the weights lack start fresh (a grown model).")
@click.option("--freeze", default=None, metavar="REGEX",
              help="Photo codecs: keep the parameters whose names match REGEX fixed, e.g. 'levels\\.\\d+\\.steps\\.' "
                   "(an integer flow's bijections, to refit its priors).")
@click.option("--val-crop", default=64, show_default=True, type=click.IntRange(8),
              help="Photo codecs: side of the fixed validation crops (8 per validation image).")
@click.option("--out", default=None, help="Output path without suffix (default: runs/<model>).")
@DEVICE
def train(model, data, val, steps, batch, crop, lr, resume, minutes, init, freeze, val_crop, out, device) -> None:
    """Train a codec's model (never on Kodak); writes safetensors + metadata and a checkpoint."""
    from .registry import get_spec, write_codec_toml

    command = "nlc train " + " ".join(sys.argv[2:])
    try:
        spec = get_spec(model)
        out = out or f"runs/{spec.name}"
        if spec.family == "bitsback":
            if init or freeze:
                _fail("--init and --freeze are for photo codecs")
            from .train_latent import LatentTrainConfig, train_latent

            cfg = LatentTrainConfig(architecture=spec.architecture, data=data, out=out, steps=steps,
                                    batch=batch or 64, lr=lr or 1e-3, resume=resume, minutes=minutes,
                                    hyperparameters=dict(spec.hyperparameters))
            meta = train_latent(cfg, command=command, progress=_progress())
            click.echo(f"validation -ELBO {meta['val_neg_elbo_bits_per_dim']} bits/dim after {meta['steps']} steps "
                       f"-> {out}.safetensors, codec {write_codec_toml(spec, out + '.safetensors')}")
            return
        if val is None:
            _fail(f"codec {spec.name!r} needs --val DIR (validation photos)")
        from .train import TrainConfig
        from .train import train as run

        cfg = TrainConfig(data=data, val=val, out=out, steps=steps, batch=batch or 16, crop=crop,
                          lr=lr or 2e-3, resume=resume, minutes=minutes, init=init, freeze=freeze, val_crop=val_crop,
                          architecture=spec.architecture,
                          model=dict(spec.hyperparameters), device=api.resolve_device(device))
        meta = run(cfg, command=command, progress=_progress())
    except (NlcError, ValueError, FileNotFoundError) as e:
        _fail(str(e))
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, process 0 validated and wrote the weights
        toml = write_codec_toml(spec, cfg.out + ".safetensors")
        click.echo(f"validation {meta['val_bits_per_dim']} bits/dim after {meta['steps']} steps -> {cfg.out}.safetensors, "
                   f"codec {toml}")


def run() -> None:
    """The ``nlc`` entry point: the click group, with Ctrl-C ending in exit status 130 (128 + SIGINT)
    and one line, as shells expect, instead of click's "Aborted!" and status 1."""
    try:
        status = main(standalone_mode=False)
    except KeyboardInterrupt:
        click.echo("nlc: interrupted", err=True)
        sys.exit(130)
    except click.exceptions.Abort:
        click.echo("nlc: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    if isinstance(status, int) and status:
        sys.exit(status)


if __name__ == "__main__":
    run()
