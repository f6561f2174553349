"""Batch runs over many files: which outputs the inputs get, resuming, a per-file report, parallel jobs.

``nlc compress`` and ``nlc decompress`` with several inputs, folders or ``-r`` plan their work here
(:func:`plan`) and run it (:func:`run`)::

    >>> from nlc import batch
    >>> jobs = batch.plan(["photos/"], "archive/", suffixes={".png"}, decompress=False,
    ...                   recursive=True)                                          # doctest: +SKIP
    >>> batch.run(jobs, batch.compress_job, {"codec": "default"}, skip_existing=True,
    ...           report="run.jsonl")                                              # doctest: +SKIP

Every output is written through a temporary file and a rename, so a run that is killed leaves
whole files only; run again with ``skip_existing``, it codes just the files that have no output
yet. The report gets one JSON line per file as it finishes (``input``, ``output``, ``status``:
``ok``, ``skipped`` or ``failed``, ``bytes``, ``bits_per_subpixel``, ``seconds``, ``error``).
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import InputError, NlcError, UsageError


def image_suffixes() -> set[str]:
    """What a folder's images are called: :data:`nlc.images.IMAGE_SUFFIXES` (JPEG and PPM among them, decoded
    to PNG) and the suffixes a set restores (GIF and PBM too)."""
    from .images import IMAGE_SUFFIXES
    from .sets import IMAGE_SUFFIXES as SET_SUFFIXES

    return set(IMAGE_SUFFIXES) | set(SET_SUFFIXES)


@dataclass(frozen=True)
class Job:
    """One file to code: its input and its output (``None``: the default name beside the input)."""

    src: Path
    dst: Path | None


def _walk(folder: Path, suffixes: set[str], recursive: bool) -> list[Path]:
    """The files of ``folder`` (and, ``recursive``, of its sub-folders, symlinked folders not followed) whose
    suffix is one of ``suffixes``, sorted."""
    if not recursive:
        return sorted(f for f in folder.iterdir() if f.suffix.lower() in suffixes and f.is_file())
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found += [Path(root) / f for f in files if Path(f).suffix.lower() in suffixes and (Path(root) / f).is_file()]
    return sorted(found)


def plan(inputs: list[str] | tuple[str, ...], output: str | Path | None, *, suffixes: set[str], decompress: bool,
         recursive: bool = False) -> list[Job]:
    """The jobs of a command line: every folder replaced by its files (``recursive``: its whole tree), each
    with its output. With one file and ``output`` not an existing folder, ``output`` is that file; otherwise
    ``output`` is a folder that mirrors each input folder's tree (created with ``recursive``)."""
    from .api import default_output

    pairs: list[tuple[Path, Path]] = []  # (file, path relative to where its output goes)
    folders = False
    for src in inputs:
        p = Path(src)
        if not p.is_dir():
            pairs.append((p, Path(p.name)))
            continue
        folders = True
        found = _walk(p, suffixes, recursive)
        if not found:
            what = f"{next(iter(suffixes))} files" if len(suffixes) == 1 else "images (" + ", ".join(sorted(suffixes)) + ")"
            raise InputError(f"{src}: a folder with no {what}" + ("" if recursive else "; -r looks in sub-folders too"))
        pairs += [(f, f.relative_to(p)) for f in found]
    if output is None:
        return [Job(f, None) for f, _ in pairs]
    out = Path(output)
    if len(pairs) == 1 and not folders and not out.is_dir():
        return [Job(pairs[0][0], out)]
    if not out.is_dir():
        if not recursive:
            raise UsageError(f"{out}: with several inputs, -o must be an existing folder (-r creates it)")
        if out.exists():
            raise UsageError(f"{out}: exists and is not a folder")
    return [Job(f, out / rel.parent / default_output(f, decompress).name) for f, rel in pairs]


def output_of(job: Job, decompress: bool) -> Path:
    """Where ``job`` writes."""
    from .api import default_output

    return job.dst if job.dst is not None else default_output(job.src, decompress)


def _prepare(dst: Path) -> None:
    """The output's folder made, and what a killed run left of this output (its temporary file) removed."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    for stale in dst.parent.glob(f".{glob_escape(dst.name)}.????????.tmp"):  # mkstemp: 8 random characters
        stale.unlink(missing_ok=True)


def glob_escape(name: str) -> str:
    """``name`` with glob's special characters matched literally."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def compress_job(job: Job, options: dict) -> dict:
    """Compress one image (:func:`nlc.api.compress` with ``options``); returns its report fields."""
    from . import api

    dst = output_of(job, False)
    _prepare(dst)
    path, stats = api.compress(job.src, dst, **options)
    n = stats["subpixels"]
    return {"output": str(path), "bytes": stats["bytes"], "input_bytes": stats["input_bytes"], "subpixels": n,
            "bits_per_subpixel": stats["bytes"] * 8 / n if n else None, "codec": stats["codec"], "stats": stats}


def decompress_job(job: Job, options: dict) -> dict:
    """Decompress one ``.nlc`` image file (:func:`nlc.api.decompress` with ``options``)."""
    from . import api

    dst = output_of(job, True)
    _prepare(dst)
    path = api.decompress(job.src, dst, **options)
    return {"output": str(path), "bytes": path.stat().st_size, "input_bytes": job.src.stat().st_size}


Work = Callable[[Job, dict], dict]


def _timed(work: Work, job: Job, options: dict) -> dict:
    t0 = time.perf_counter()
    try:
        result = dict(work(job, options), status="ok")
    except NlcError as e:
        result = {"status": "failed", "error": str(e), "usage": isinstance(e, UsageError)}
    return dict(result, input=str(job.src), seconds=round(time.perf_counter() - t0, 3))


def _worker_init(threads: int) -> None:
    from .threads import use_threads

    use_threads(threads)


def _results(jobs: list[Job], work: Work, options: dict, workers: int, threads: int) -> Iterator[dict]:
    """Each job's result in order, from this process or from ``workers`` processes of ``threads`` threads."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield _timed(work, job, options)
        return
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch thread pools
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init, initargs=(threads,)) as pool:
        futures = [pool.submit(_timed, work, job, options) for job in jobs]
        for f in futures:
            yield f.result()


def run(jobs: list[Job], work: Work, options: dict, *, decompress: bool = False, skip_existing: bool = False,
        report: str | Path | None = None, jobs_at_once: int = 1, threads: int = 0,
        on_result: Callable[[dict], Any] | None = None) -> list[dict]:
    """Run ``work(job, options)`` for every job; returns one result per job (the report's lines).

    ``skip_existing``: a job whose output exists is not run (``status: skipped``). ``report``: each result is
    appended to that file as a JSON line as soon as it is known. ``jobs_at_once`` > 1 runs the jobs in that
    many worker processes of ``threads`` torch threads each (the codec loads once per worker).
    ``on_result`` sees each result as it comes (the CLI prints it)."""
    sink = open(report, "a") if report else None  # kept open for the run, closed below
    results: list[dict] = []

    def emit(result: dict) -> None:
        results.append(result)
        if sink:
            sink.write(json.dumps({k: v for k, v in result.items() if k not in ("stats", "usage")}) + "\n")
            sink.flush()
        if on_result:
            on_result(result)

    try:
        todo = []
        for job in jobs:
            dst = output_of(job, decompress)
            if skip_existing and os.path.lexists(dst):
                emit({"input": str(job.src), "output": str(dst), "status": "skipped", "seconds": 0.0})
            else:
                todo.append(job)
        for result in _results(todo, work, options, jobs_at_once, threads):
            emit(result)
    finally:
        if sink:
            sink.close()
    return results
