"""nlc.distributed on a local Dask cluster of 2 worker processes: 200 images compressed and decoded back
exactly, a manifest line per file, a second run that skips them all, a bad file reported, not retried
forever."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from tests.conftest import gradient_image, same_pixels

pytest.importorskip("distributed")


def test_a_local_two_worker_cluster_codes_200_images_and_resumes(tiny_home, tmp_path):
    from nlc.distributed import run

    src = tmp_path / "photos"
    for i in range(200):
        path = src / f"part{i % 4}" / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        gradient_image(6 + i % 5, 5 + i % 3, "RGB" if i % 2 else "L", seed=i).save(path)
    (src / "part0" / "bad.png").write_bytes(b"not a png")
    archive, back = tmp_path / "archive", tmp_path / "back"
    results = run([str(src)], str(archive), workers=2, manifest=str(tmp_path / "m.jsonl"))
    by_status: dict[str, list] = {}
    for r in results:
        by_status.setdefault(r["status"], []).append(r)
    assert len(by_status["ok"]) == 200 and [r["input"] for r in by_status["failed"]] == [str(src / "part0" / "bad.png")]
    assert len({r["worker"] for r in by_status["ok"]}) == 2  # both workers took files
    lines = [json.loads(x) for x in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert len(lines) == 201 and all("input" in x and "status" in x for x in lines)

    again = run([str(src)], str(archive), workers=2)  # resumed: every output exists
    assert sum(r["status"] == "skipped" for r in again) == 200

    decoded = run([str(archive)], str(back), action="decompress", workers=2)
    assert sum(r["status"] == "ok" for r in decoded) == 200
    for i in range(200):
        rel = f"part{i % 4}/{i:03d}.png"
        assert same_pixels(Image.open(back / rel), Image.open(src / rel)), rel
