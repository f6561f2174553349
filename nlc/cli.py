"""``nlc``: a thin click layer over :mod:`nlc.api`, :mod:`nlc.batch`, :mod:`nlc.bench` and :mod:`nlc.train`.

Bad input exits with status 1 and one line on stderr naming the file and the
problem; no output file is left behind. With several inputs (or a folder of
them), each bad one gets its line and the others are still done, as gzip does;
the exit status is then 1. A usage error (conflicting options, an unknown codec
name) exits with status 2, as click's own do. Status lines go to stderr.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from .container import SET_MAGIC
from .errors import InputError, NlcError, UsageError, file_errors


class _Lazy:
    """Module ``name``, imported when one of its attributes is first read: commands that code nothing
    (``--help``, shell completion, ``nlc models``, ``nlc info``) start without torch's import (1.5–2 s).
    (Not ``importlib.util.LazyLoader``: its module in ``sys.modules`` is loaded by whoever first touches
    it, torch's import included, in the middle of another import.)"""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)


if TYPE_CHECKING:
    from . import api, images
    from .registry import CodecSpec
else:
    api, images = _Lazy("nlc.api"), _Lazy("nlc.images")


def spec_of(model: str) -> CodecSpec:
    """:func:`nlc.codec.spec_of`, imported when called."""
    from .codec import spec_of as spec

    return spec(model)

DEVICE = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
                      help="Where the model runs.")
OWN_CODEC = click.option("-m", "--model", default=None, metavar="RUN.toml",
                         help="A codec the registry does not hold (the TOML `nlc train` writes) for files it coded; "
                              "default: the codec the file names, from the registry.")


def _own_codec(model: str | None, device: str) -> "api.Codec | None":
    """The codec ``-m`` names for decoding (on the CPU for a set codec), or ``None``: the registry's."""
    if model is None:
        return None
    from .registry import SET_FAMILIES

    set_only = spec_of(model).family in SET_FAMILIES
    return api.Codec.load(model, "cpu" if set_only else api.resolve_device(device))


def _fail(message: str, status: int = 1) -> NoReturn:
    """One line on stderr, then exit: status 1 for a file that failed, 2 for a usage error."""
    click.echo(f"nlc: error: {message}", err=True)
    sys.exit(status)


def _usage(message: str) -> NoReturn:
    """A command line that asks for what cannot be done: exit status 2, as click's own usage errors."""
    _fail(message, 2)


def _status(e: Exception) -> int:
    return 2 if isinstance(e, UsageError) else 1


def _error(e: NlcError) -> NoReturn:
    """Fail with ``e``'s message and the exit status of its kind."""
    _fail(str(e), _status(e))


def _naming(src: str, e: Exception | str) -> str:
    """The error's message, led by the input file's name unless it names it already."""
    msg = str(e)
    return msg if str(src) in msg else f"{src}: {msg}"


def _fail_for(src: str, e: Exception) -> NoReturn:
    """Fail with a message that names the input file."""
    _fail(_naming(src, e), _status(e))


def _progress() -> bool:
    return sys.stderr.isatty()


def _expand_inputs(inputs: tuple[str, ...], recursive: bool = False) -> list[str]:
    """``.nlc`` inputs with every folder replaced by its ``.nlc`` files, sorted (``recursive``: its whole tree)."""
    from .batch import plan

    try:
        return [str(job.src) for job in plan(inputs, None, suffixes={api.SUFFIX}, decompress=True,
                                             recursive=recursive)]
    except NlcError as e:
        _error(e)


class _Failures:
    """Errors of single inputs: fatal with one input; with several, reported and counted until the end."""

    def __init__(self, inputs: list) -> None:
        self.several = len(inputs) > 1
        self.count = 0

    def add(self, src: str, e: Exception | str, status: int = 1) -> None:
        """Report ``e`` for ``src``: exit now with one input, else go on to the next."""
        message = _naming(src, e)
        if not self.several:
            _fail(message, _status(e) if isinstance(e, Exception) else status)
        click.echo(f"nlc: error: {message}", err=True)
        self.count += 1

    def finish(self, done: int) -> None:
        """Exit with status 1 if any input failed, after a line that counts them."""
        if self.count:
            click.echo(f"nlc: {self.count} of {self.count + done} input(s) failed", err=True)
            sys.exit(1)


class _Say:
    """Status lines on stderr (``-q``: none; ``-v``: more)."""

    def __init__(self, quiet: bool, verbose: bool) -> None:
        self.quiet, self.verbose = quiet, verbose

    def __call__(self, line: str, detail: bool = False) -> None:
        if not self.quiet and (self.verbose or not detail):
            click.echo(line, err=True)


QUIET = click.option("-q", "--quiet", is_flag=True, help="No status lines (errors only).")
VERBOSE = click.option("-v", "--verbose", is_flag=True, help="More status lines (seconds, skipped files).")
RECURSIVE = click.option("-r", "--recursive", is_flag=True,
                         help="Folders with their sub-folders; -o DIR mirrors their tree (and is created).")
SKIP = click.option("--skip-existing", is_flag=True,
                    help="Leave inputs whose output exists (resume a run that was stopped).")
REPORT = click.option("--report", type=click.Path(dir_okay=False), default=None, metavar="FILE.jsonl",
                      help="Append one JSON line per file: input, output, status, bytes, bits/subpixel, seconds.")
JOBS = click.option("-j", "--jobs", type=click.IntRange(0, 256), default=0,
                    help="Files coded at once, each in its own process [0: one per core for 16 or more small "
                         "images (up to 128x128 pixels: one keeps one core busy) where --threads is not given, "
                         "else 1].")
AUTO_JOBS_FILES = 16  # below this, a worker's start-up (imports and the model, about 2 s) costs what it saves
SMALL_PIXELS = 128 * 128  # an image this small has one column of tiles: its decoder keeps one core busy
SMALL_FILE = 1 << 16  # a .nlc file above this holds no small image (128x128 RGB is 48 KiB raw)
THREADS = click.option("--threads", type=click.IntRange(0, 1024), default=0,
                       help="Threads per process [0: every core, divided among the jobs].")


def _batch_options(command):
    """The options of commands that code many files: -r, --skip-existing, --report, -j, --threads, -q, -v, --device."""
    for option in reversed([RECURSIVE, SKIP, REPORT, JOBS, THREADS, QUIET, VERBOSE, DEVICE]):
        command = option(command)
    return command


def _auto_jobs(jobs: int, threads: int, plan: list, small) -> int:
    """``-j``'s value: as given, or for ``0`` one process per core where at least :data:`AUTO_JOBS_FILES`
    inputs are all ``small(path)`` and ``--threads`` was left to nlc, else 1."""
    from .threads import cores

    if jobs:
        return jobs
    if threads or cores() < 2 or len(plan) < AUTO_JOBS_FILES:
        return 1
    return cores() if all(small(job.src) for job in plan) else 1


def _small_image(path: Path) -> bool:
    """Whether ``path`` is an image of at most :data:`SMALL_PIXELS` (its header read only)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.width * im.height <= SMALL_PIXELS
    except Exception:  # not an image Pillow reads: its own job reports it
        return False


def _small_nlc(path: Path) -> bool:
    """Whether ``path`` is a ``.nlc`` file of an image of at most :data:`SMALL_PIXELS`."""
    try:
        if path.stat().st_size > SMALL_FILE:
            return False
        header = api.read_header(path.read_bytes())
        return header.width * header.height <= SMALL_PIXELS
    except (OSError, NlcError):  # unreadable or damaged: its own job reports it
        return False


def _threads_per_job(threads: int, jobs: int) -> int:
    from .threads import cores, use_threads

    per_job = threads or max(1, cores() // jobs)
    if jobs == 1:
        use_threads(threads)
    return per_job


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
@click.option("--tile", type=click.IntRange(8, 4096), default=None,
              help="Tile side (default: the codec's; the default codec takes 128 for images of 24 to 96 such tiles).")
@click.option("-f", "--force", is_flag=True, help="Overwrite existing output files.")
@click.option("--set", "as_set", is_flag=True,
              help="All inputs (same-sized images, folders of them, or one idx/.npy array) into one file.")
@click.option("--strip", is_flag=True,
              help="Keep the pixels only: drop the ICC profile, EXIF, XMP, text chunks and resolution.")
@click.option("--no-fallback", is_flag=True,
              help="Always keep the model's coding, even where lossless WebP would be smaller.")
@_batch_options
def compress(inputs, output, model, coder, tile, force, as_set, strip, no_fallback, recursive, skip_existing,
             report, jobs, threads, quiet, verbose, device) -> None:
    """Compress images to IMAGE.nlc.

    A folder stands for the images in it (-r: and in its sub-folders), each
    coded to its own IMAGE.nlc beside it, or into the folder -o names (with -r,
    mirroring the sub-folders). A run that was stopped resumes with
    --skip-existing: outputs are written whole or not at all. - reads one
    image from standard input and writes the file to standard output (or
    -o FILE); -o - writes to standard output.

    With --set, all inputs (same-sized gray or RGB images, folders of them,
    or one idx/.npy array file) go into one file, -o SET.nlc: the tiles of
    all the images are coded as one batch, far faster than one file each for
    small images. A set codec (--model vae-fmnist and the other *-fmnist
    codecs) always writes a set.

    An image's metadata (ICC colour profile, EXIF, XMP, PNG colour and text
    chunks, resolution) is kept and written back by nlc decompress; --strip
    drops it. Sets keep pixels only.

    Pixels are also coded as lossless WebP, and the file keeps whichever is
    smaller (a screenshot or a drawing can cost a photo model many times
    more); --no-fallback always keeps the model's coding.

    Status lines go to stderr. Exit status: 0 when every file was coded, 1
    when one failed, 2 for a usage error.
    """
    from . import batch, sets

    say = _Say(quiet, verbose)
    piped = _piped(inputs, output)
    codec = None
    try:
        if as_set or sets.is_set_codec(model) or piped:  # one process: --threads as given
            _threads_per_job(threads, 1)
        if as_set or sets.is_set_codec(model):
            if piped:
                _usage("a set is read from files or folders and written to a file, not through a pipe")
            _compress_set(inputs, output, model, force, coder, tile, device, say)
            return
        if piped:
            codec = api.Codec.load(model, api.resolve_device(device))
            _compress_pipe(inputs[0], output, codec, force, say, coder=coder, tile=tile, device=device,
                           keep_metadata=not strip, fallback=not no_fallback)
            return
        spec_of(model)  # an unknown codec is one usage error, before any file
        plan = batch.plan(inputs, output, suffixes=batch.image_suffixes(), decompress=False, recursive=recursive)
        jobs = _auto_jobs(jobs, threads, plan, _small_image)
        per_job = _threads_per_job(threads, jobs)
        if jobs == 1:
            codec = api.Codec.load(model, api.resolve_device(device))
    except NlcError as e:
        _error(e)
    options = dict(codec=codec if jobs == 1 else model, force=force, progress=_progress() and jobs == 1 and not quiet,
                   coder=coder, tile=tile, device=device, keep_metadata=not strip, fallback=not no_fallback)
    failures, totals = _Failures(plan), {"bytes": 0, "subpixels": 0, "done": 0, "skipped": 0}

    def show(r: dict) -> None:
        if r["status"] == "failed":
            failures.add(r["input"], r["error"], 2 if r.get("usage") else 1)
        elif r["status"] == "skipped":
            totals["skipped"] += 1
            say(f"{r['input']}: skipped ({r['output']} exists)", detail=True)
        else:
            say(f"{r['input']} -> {r['output']}: {_outcome(r['stats'])}" +
                (f" in {r['seconds']:.1f} s" if verbose else ""))
            totals["bytes"] += r["bytes"]
            totals["subpixels"] += r["subpixels"]
            totals["done"] += 1

    batch.run(plan, batch.compress_job, options, skip_existing=skip_existing, report=report, jobs_at_once=jobs,
              threads=per_job, on_result=show)
    if totals["done"] > 1 or totals["skipped"]:
        rate = f", {totals['bytes'] * 8 / totals['subpixels']:.3f} bits/subpixel" if totals["subpixels"] else ""
        skipped = f" ({totals['skipped']} skipped: their output exists)" if totals["skipped"] else ""
        say(f"{totals['done']} files: {totals['bytes']} bytes{rate}{skipped}")
    failures.finish(totals["done"] + totals["skipped"])


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
        _usage("with standard input or output ('-'), give exactly one input")
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


def _compress_pipe(src: str, output: str | None, codec: api.Codec, force: bool, say: _Say, **kw) -> None:
    """One image from a file or standard input, to ``-o FILE`` or standard output."""
    name = _stream_name(src)
    if output not in (None, "-"):
        api.check_output(Path(output), force)  # before the work, not after it
    raw = _read_input(src)
    im = images.image_from_bytes(raw, name)
    data, stats = api.encode_image(im, codec, progress=_progress(), **kw)
    where = _emit(data, output, force)
    stats = dict(stats, bytes=len(data), input_bytes=len(raw), input_format=im.format)
    say(f"{name} -> {where}: {_outcome(stats)}")


def _decompress_pipe(src: str, output: str | None, force: bool, device: str, codec: api.Codec | None,
                     say: _Say) -> None:
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
    say(f"{name} -> {where}")


def _compress_set(inputs: tuple[str, ...], output: str | None, model: str, force: bool, coder: str | None,
                  tile: int | None, device: str, say: _Say) -> None:
    from . import sets

    if output is None:
        if len(inputs) != 1:
            _usage("with a set and several inputs, name the output file with -o SET.nlc")
        src = Path(inputs[0].rstrip("/"))
        output = str(src.with_name(src.name + api.SUFFIX))  # beside the folder or array file, like IMAGE.nlc
    latent = sets.is_set_codec(model)
    if latent and (coder or tile):
        _usage(f"--coder and --tile apply to photo codecs; {model!r} codes sets with its own bits-back chain")
    kw = {} if latent else {"coder": coder, "tile": tile, "device": device}
    path, stats = sets.compress_set(list(inputs), output, codec=model, force=force, progress=_progress(), **kw)
    unit = "pixel" if latent else "subpixel"
    say(f"{len(inputs)} input(s) -> {path}: {stats['items']} images, {stats['bytes']} bytes, "
        f"{stats['bytes'] * 8 / max(1, stats['pixels']):.4f} bits/{unit}")


def _is_set_file(src: str | Path) -> bool:
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
@_batch_options
def decompress(inputs, output, force, model, recursive, skip_existing, report, jobs, threads, quiet, verbose,
               device) -> None:
    """Decompress .nlc files to PNG; a set file restores all its images (or its array file) into a folder.

    -o NAME.webp writes lossless WebP instead (RGB and RGBA images); a name
    for a lossy format (.jpg, .avif, .heic, .gif) is refused. A folder stands
    for the .nlc files in it (-r: and in its sub-folders, mirrored under -o
    DIR). - reads one image file from standard input and writes the PNG to
    standard output (or -o FILE); -o - writes to standard output.

    Status lines go to stderr. Exit status: 0 when every file was decoded, 1
    when one failed, 2 for a usage error.
    """
    from . import batch, sets

    say = _Say(quiet, verbose)
    try:
        codec = _own_codec(model, device)
    except NlcError as e:
        _error(e)
    if _piped(inputs, output):
        _threads_per_job(threads, 1)
        try:
            _decompress_pipe(inputs[0], output, force, device, codec, say)
        except NlcError as e:
            _fail_for(_stream_name(inputs[0]), e)
        return
    try:
        plan = batch.plan(inputs, output, suffixes={api.SUFFIX}, decompress=True, recursive=recursive)
    except NlcError as e:
        _error(e)
    set_jobs = [job for job in plan if _is_set_file(job.src)]
    if model is None:
        jobs = _auto_jobs(jobs, threads, [job for job in plan if job not in set_jobs], _small_nlc)
    per_job = _threads_per_job(threads, jobs or 1)
    jobs = jobs or 1
    failures, done = _Failures(plan), 0
    for job in set_jobs:  # a set restores into a folder: -o as given
        try:
            paths = sets.decompress_set(job.src, output, force=force, progress=_progress() and not quiet,
                                        device=device, codec=codec)
        except NlcError as e:
            failures.add(str(job.src), e)
            continue
        say(f"{job.src} -> {paths[0].parent if paths else output}: {len(paths)} file(s)")
        done += 1
    skipped = 0

    def show(r: dict) -> None:
        nonlocal done, skipped
        if r["status"] == "failed":
            failures.add(r["input"], r["error"], 2 if r.get("usage") else 1)
        elif r["status"] == "skipped":
            skipped += 1
            say(f"{r['input']}: skipped ({r['output']} exists)", detail=True)
        else:
            say(f"{r['input']} -> {r['output']}" + (f" in {r['seconds']:.1f} s" if verbose else ""))
            done += 1

    options = dict(force=force, progress=_progress() and jobs == 1 and not quiet, device=device,
                   codec=codec if jobs == 1 else None)
    if jobs > 1 and model is not None:
        _usage("-m RUN.toml decodes in this process only; leave out -j")
    batch.run([job for job in plan if job not in set_jobs], batch.decompress_job, options, decompress=True,
              skip_existing=skip_existing, report=report, jobs_at_once=jobs, threads=per_job, on_result=show)
    if skipped:
        say(f"{done} files decoded ({skipped} skipped: their output exists)")
    failures.finish(done + skipped)


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--originals", is_flag=True,
              help="Also compare each decoded image with its original: the file of the same name without .nlc.")
@OWN_CODEC
@RECURSIVE
@DEVICE
def verify(inputs, originals, model, recursive, device) -> None:
    """Decode .nlc files in memory and check them; nothing is written (like gzip -t).

    Every CRC is checked: header, payload and the original pixels. With
    --originals, each image is also compared pixel for pixel with the file
    it was made from (photo.png.nlc with photo.png), for example before
    deleting it. A folder stands for the .nlc files in it (-r: and in its
    sub-folders). Exit status 1 if any file fails, 2 for a usage error.
    """
    from .verification import verify as verify_file

    try:
        codec = _own_codec(model, device)
    except NlcError as e:
        _error(e)
    files = _expand_inputs(inputs, recursive)
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

    from . import metadata
    from .container import is_set, unpack, unpack_set
    from .registry import decodes_on

    try:
        with file_errors(file):
            data = Path(file).read_bytes()
        if is_set(data):
            d = asdict(unpack_set(data)[0])
            src = d.pop("source")
            d.update(source=src["kind"], names=len(src.get("names", [])) or src.get("name", ""))
        else:
            image_header = unpack(data)[0]
            d = dict(image_header.as_dict(), metadata=metadata.summary(metadata.unpack(image_header.metadata)))
    except NlcError as e:
        _fail_for(file, e)
    extra = d.get("extra") or {}
    d = dict(d, file=file, bytes=len(data),
             decodes_on=decodes_on(d["codec"], d["torch"], d["device"], extra.get("cpu"), extra.get("pixels", "model")))
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
    from .registry import DEFAULT, SET_FAMILIES, codec_names, get_spec
    from .results import kodak_result, set_result

    try:
        default = get_spec(DEFAULT).name
        for name in codec_names():
            spec = get_spec(name)
            if spec.family in SET_FAMILIES:
                r = set_result(name)
                rate = f"{r:.3f} bits/dim on the fashion-mnist test set" if r is not None else "not benchmarked"
            else:
                r = kodak_result(name)
                rate = f"{r:.3f} bits/subpixel on kodak" if r is not None else "not benchmarked on kodak"
            marked = f"{name} (default)" if name == default else name
            click.echo(f"{marked}\t{spec.description}\t{rate}")
    except NlcError as e:
        _error(e)


@main.command()
@click.option("-m", "--model", default="default", show_default=True,
              help="Codec name; without --data also 'all' (every codec's committed result).")
@click.option("--data", default=None, type=click.Path(exists=True, file_okay=False),
              help="Folder of images to run on; without it, the committed result (bench/results) is shown.")
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N images.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write results as JSON.")
@click.option("--no-baselines", is_flag=True, help="Skip the classical codecs (PNG, WebP, JPEG-XL, JPEG-LS, JPEG 2000).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, metavar="FILE.png",
              help="Plot bits/subpixel against decode seconds: this run's codec and baselines, or without --data "
                   "every codec's committed Kodak result.")
@DEVICE
def bench(model, data, limit, json_path, no_baselines, plot_path, device) -> None:
    """Compress, decompress and check every image of a folder; compare with classical codecs.

    With a set codec (--model vae-fmnist), DATA is the Fashion-MNIST folder
    and the whole test set is coded as one file. Without --data, the codec's
    committed result is shown (--model all: every codec's). The classical
    codecs need imagecodecs (pip install 'nlc[bench]'); without it the run is
    refused unless --no-baselines.
    """
    from .bench import run_bench
    from .sets import is_set_codec

    command = _as_typed(click.get_current_context())
    try:
        if data is None:
            if plot_path:
                _plot_committed(plot_path)
                return
            _show_committed(model)
            return
        if model == "all":
            _usage("--model all shows the committed results; to run on --data, name one codec")
        if is_set_codec(model):
            from .bench.sets import run_set_bench

            run_set_bench(model, data, limit=limit, json_path=json_path, baselines=not no_baselines,
                          progress=_progress())
            return
        run_bench(model, data, limit=limit, json_path=json_path, baselines=not no_baselines, device=device,
                  progress=_progress(), command=command, plot=plot_path)
    except NlcError as e:
        _error(e)


def _as_typed(ctx: click.Context) -> str:
    """The command line that repeats this command: its name and every option given on the command line
    (click may keep a flag's default unset, so the options' sources decide, not their defaults)."""
    words = ["nlc", ctx.info_name or ""]
    for param in ctx.command.params:
        name = param.name or ""
        value = ctx.params.get(name)
        source = ctx.get_parameter_source(name)
        if not isinstance(param, click.Option) or value is None or source in (
                None, click.core.ParameterSource.DEFAULT, click.core.ParameterSource.DEFAULT_MAP):
            continue
        flag = max(param.opts, key=len)
        if param.is_flag:
            words.append(flag if value or not param.secondary_opts else param.secondary_opts[0])
        else:
            words += [flag, str(value)]
    return " ".join(words)


def _plot_committed(path: str) -> None:
    from .bench import committed_result, plot_results
    from .registry import codec_names

    results = [r for r in map(committed_result, codec_names()) if r and "summary" in r]
    if not results:
        _fail("no committed Kodak results in bench/results to plot")
    click.echo(f"{plot_results(results, path)}: {len(results)} codecs")


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
@click.option("--init", "init", default=None, metavar="[PREFIX=]WEIGHTS",
              help="Start from these safetensors weights (a fine-tune) instead of a fresh model; layers the model "
                   "has and the weights lack start fresh (a grown model). Set codecs also take PREFIX=WEIGHTS: the "
                   "weights as the model's PREFIX. ones, e.g. base=trained/made-fmnist.safetensors for maf-fmnist.")
@click.option("--freeze", default=None, metavar="REGEX",
              help="Photo codecs: keep the parameters whose names match REGEX fixed, e.g. 'levels\\.\\d+\\.steps\\.' "
                   "(an integer flow's bijections, to refit its priors).")
@click.option("--val-crop", default=64, show_default=True, type=click.IntRange(8),
              help="Photo codecs: side of the fixed validation crops (8 per validation image).")
@click.option("--out", default=None, help="Output path without suffix (default: runs/<model>).")
@DEVICE
def train(model, data, val, steps, batch, crop, lr, resume, minutes, init, freeze, val_crop, out, device) -> None:
    """Train a codec's model (never on Kodak); writes safetensors + metadata and a checkpoint."""
    from .families import family
    from .registry import get_spec, write_codec_toml

    command = "nlc train " + " ".join(sys.argv[2:])
    try:
        spec = get_spec(model)
        out = out or f"runs/{spec.name}"
        set_only = family(spec.family).set_only
        if init is not None:
            from .train.latent import split_init

            prefix, weights = split_init(init)
            if prefix and not set_only:
                _usage("--init PREFIX=WEIGHTS is for set codecs; a photo codec takes --init WEIGHTS")
            if not Path(weights).is_file():
                _usage(f"--init: no file {weights!r}")
        if set_only:
            if freeze:
                _usage("--freeze is for photo codecs")
            from .train.latent import LatentTrainConfig, train_latent

            cfg = LatentTrainConfig(architecture=spec.architecture, data=data, out=out, steps=steps,
                                    batch=batch or 64, lr=lr or 1e-3, resume=resume, minutes=minutes, init=init or "",
                                    hyperparameters=dict(spec.hyperparameters))
            meta = train_latent(cfg, command=command, progress=_progress())
            click.echo(f"validation -ELBO {meta['val_neg_elbo_bits_per_dim']} bits/dim after {meta['steps']} steps "
                       f"-> {out}.safetensors, codec {write_codec_toml(spec, out + '.safetensors')}")
            return
        if val is None:
            _usage(f"codec {spec.name!r} needs --val DIR (validation photos)")
        from .train import TrainConfig
        from .train import train as run

        photo_cfg = TrainConfig(data=data, val=val, out=out, steps=steps, batch=batch or 16, crop=crop,
                          lr=lr or 2e-3, resume=resume, minutes=minutes, init=init, freeze=freeze, val_crop=val_crop,
                          architecture=spec.architecture,
                          model=dict(spec.hyperparameters), device=api.resolve_device(device))
        meta = run(photo_cfg, command=command, progress=_progress())
    except (NlcError, ValueError, FileNotFoundError) as e:
        _fail(str(e), _status(e))
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, process 0 validated and wrote the weights
        toml = write_codec_toml(spec, photo_cfg.out + ".safetensors")
        click.echo(f"validation {meta['val_bits_per_dim']} bits/dim after {meta['steps']} steps -> "
                   f"{photo_cfg.out}.safetensors, "
                   f"codec {toml}")


def run() -> None:
    """The ``nlc`` entry point: the click group, with Ctrl-C ending in exit status 130 (128 + SIGINT)
    and one line, as shells expect, instead of click's "Aborted!" and status 1."""
    try:
        status = main(standalone_mode=False)
    except KeyboardInterrupt:
        click.echo("nlc: interrupted", err=True)
        sys.exit(130)
    except SystemError as e:  # Ctrl-C inside a compiled kernel's call: numba reports it as the cause
        if not isinstance(e.__cause__ or e.__context__, KeyboardInterrupt):
            raise
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


def console() -> None:
    """The installed ``nlc`` command and ``python -m nlc``: :func:`run`, then the exit status at once.

    By then every output is written and closed; the interpreter's teardown (torch's and numba's
    modules) would add about a third of a second to every command, so the process flushes its
    streams and ends with ``os._exit``. ``nlc train`` (process groups, data loaders) and a run that
    left other threads alive end the ordinary way."""
    try:
        run()
        code: int | str | None = 0
    except SystemExit as e:
        code = e.code
    fast = len(sys.argv) < 2 or sys.argv[1] != "train"
    fast = fast and all(t.daemon or t is threading.main_thread() for t in threading.enumerate())
    if not fast or not isinstance(code, (int, type(None))):
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe: the shell reads the status
        code = code or 1
    os._exit(code or 0)


if __name__ == "__main__":
    console()
