"""/v1/videos through a real uvicorn: upload, progress (JSON and server-sent events), ranged
download, cancel, and bad uploads; the app's own embedded redis-server and worker run it."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from matting.checkpoint import save_checkpoint
from matting.models.network import build_model
from matting.videoio import probe, read_back
from tests.export.conftest import TINY
from tests.service.conftest import LiveServer, start_server, tiny_settings
from tests.service.jobs.test_worker import FRAMES, make_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("http-clip") / "clip.mp4"
    make_clip(path)
    return path.read_bytes()


@pytest.fixture(scope="module")
def live(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("videos-http")
    checkpoint = tmp / "tiny.safetensors"
    torch.manual_seed(0)  # the same random model whichever tests ran before
    save_checkpoint(checkpoint, build_model(TINY).eval())
    # Images on the ONNX export; the in-process worker runs the checkpoint on torch.
    settings = tiny_settings(
        tiny_model, tmp, video_jobs=True, chunk_frames=3, video_max_duration_s=60
    )
    server = start_server(settings)
    server.state.settings.model = str(checkpoint)  # what the worker loads (after start)
    yield server
    server.stop()


def wait_done(c: httpx.Client, job_id: str, timeout_s: float = 120) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body: dict[str, object] = c.get(f"/v1/videos/{job_id}").json()
        if body["state"] in ("succeeded", "failed", "cancelled"):
            return body
        time.sleep(0.1)
    raise AssertionError("the job did not finish")


def test_submit_follow_and_download_with_ranges(
    live: LiveServer, clip: bytes, tmp_path: Path
) -> None:
    with live.client() as c:
        r = c.post("/v1/videos", content=clip, headers={"Content-Type": "video/mp4"})
        assert r.status_code == 202, r.text
        job = r.json()
        assert r.headers["location"] == f"/v1/videos/{job['id']}"
        # The answer reads the job back after queueing it: the app's own worker may
        # already have claimed it.
        assert job["state"] in ("queued", "running") and job["result_url"] is None
        # The same bytes again: the same job (content hash), not a second one.
        again = c.post("/v1/videos", content=clip, headers={"Content-Type": "video/mp4"})
        assert again.status_code == 202 and again.json()["id"] == job["id"]
        with c.stream("GET", f"/v1/videos/{job['id']}/events") as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            seen = [
                json.loads(line[6:]) for line in events.iter_lines() if line.startswith("data: ")
            ]
        assert seen[-1]["state"] == "succeeded" and seen[-1]["progress"] == 1.0
        progress = [e["progress"] for e in seen]
        assert progress == sorted(progress)
        done = wait_done(c, job["id"])
        assert done["frames_done"] == done["frames_total"] == FRAMES
        url = str(done["result_url"])
        full = c.get(url)
        assert full.status_code == 200 and full.headers["content-type"] == "video/webm"
        part = c.get(url, headers={"Range": "bytes=10-99"})
        assert part.status_code == 206 and part.content == full.content[10:100]
        out = tmp_path / "out.webm"
        out.write_bytes(full.content)
        assert probe(out).frame_count == FRAMES
        assert len(list(read_back(out, "webm"))) == FRAMES
        metrics = c.get("/metrics").text
        assert "matting_jobs_submitted_total 1.0" in metrics
        assert 'matting_jobs_queue{kind="waiting"}' in metrics
        assert "matting_job_frames_total" in metrics


def test_multipart_upload_and_options(live: LiveServer, clip: bytes) -> None:
    with live.client() as c:
        r = c.post(
            "/v1/videos",
            params={"output": "composite", "background_color": "#102030"},
            files={"video": ("clip.mp4", clip, "video/mp4")},
            headers={"Idempotency-Key": "multipart-1"},
        )
        assert r.status_code == 202, r.text
        done = wait_done(c, r.json()["id"])
        assert done["state"] == "succeeded" and done["output"] == "composite"
        got = c.get(str(done["result_url"]))
        assert got.headers["content-type"] == "video/mp4"


def test_composite_over_an_uploaded_image(live: LiveServer, clip: bytes) -> None:
    red = io.BytesIO()
    Image.new("RGB", (40, 30), (250, 10, 10)).save(red, format="PNG")
    objects = live.state.settings.storage_dir / "objects"
    with live.client() as c:
        files = {
            "video": ("clip.mp4", clip, "video/mp4"),
            "background": ("red.png", red.getvalue(), "image/png"),
        }
        r = c.post("/v1/videos", params={"output": "composite"}, files=files)
        assert r.status_code == 202, r.text
        again = c.post("/v1/videos", params={"output": "composite"}, files=files)
        assert again.json()["id"] == r.json()["id"]  # same video, same image: the same job
        done = wait_done(c, r.json()["id"])
        assert done["state"] == "succeeded", done
        out = c.get(str(done["result_url"]))
        path = objects.parent / "check.mp4"
        path.write_bytes(out.content)
        rgb = np.stack([f for f, _ in read_back(path, "composite")]).astype(np.float64)
        # The tiny model's alpha is far from 1 on the clip: the red shows through.
        assert rgb[..., 0].mean() > rgb[..., 1].mean() + 40
        # An image background makes no sense for other outputs, and must be an image.
        before = set(objects.iterdir())
        bad = c.post("/v1/videos", params={"output": "webm"}, files=files)
        assert bad.status_code == 400 and "only to output=composite" in bad.text
        files["background"] = ("x.png", b"not an image", "image/png")
        bad = c.post("/v1/videos", params={"output": "composite"}, files=files)
        assert bad.status_code in (400, 415), bad.text
        assert set(objects.iterdir()) <= before  # nothing of the refused uploads is kept


def test_cancel_and_unknown_jobs(live: LiveServer, clip: bytes) -> None:
    with live.client() as c:
        assert c.get("/v1/videos/" + "0" * 32).status_code == 404
        assert c.get("/v1/videos/nope").status_code == 404
        assert c.delete("/v1/videos/" + "f" * 32).status_code == 404
        r = c.post(
            "/v1/videos",
            content=clip,
            headers={"Content-Type": "video/mp4", "Idempotency-Key": "to-cancel"},
        )
        job_id = r.json()["id"]
        cancelled = c.delete(f"/v1/videos/{job_id}").json()
        done = wait_done(c, job_id)
        # Queued: cancelled at once; running: at its worker's next chunk; it may have finished.
        assert cancelled["state"] in ("cancelled", "running", "succeeded")
        assert done["state"] in ("cancelled", "succeeded")
        if cancelled["state"] != "running":
            assert done["state"] == cancelled["state"]
        if done["state"] == "cancelled":
            r = c.get(f"/v1/videos/{job_id}/result")
            assert r.status_code == 409 and r.json()["error"]["type"] == "JobNotReadyError"


@pytest.mark.parametrize(
    ("body", "ctype", "status", "words"),
    [
        (b"", "video/mp4", 400, "empty"),
        (b"GIF89a" + b"\0" * 100, "video/mp4", 415, "not an MP4"),
        (b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 4000, "video/mp4", 400, "not a readable"),
        (b"hello", "text/plain", 415, "not accepted"),
    ],
)
def test_bad_uploads_get_clear_errors_and_leave_nothing(
    live: LiveServer, body: bytes, ctype: str, status: int, words: str
) -> None:
    objects = live.state.settings.storage_dir / "objects"
    before = set(objects.iterdir())
    with live.client() as c:
        r = c.post("/v1/videos", content=body, headers={"Content-Type": ctype})
    assert r.status_code == status, r.text
    assert words in r.json()["error"]["message"]
    assert set(objects.iterdir()) <= before  # no new object (a job may still drop its own)


def test_truncated_upload_is_refused(live: LiveServer, clip: bytes) -> None:
    with live.client() as c:
        r = c.post(
            "/v1/videos", content=clip[: len(clip) // 3], headers={"Content-Type": "video/mp4"}
        )
    assert r.status_code in (400, 415), r.text


def test_limits(tiny_model: Path, tmp_path: Path, clip: bytes) -> None:
    settings = tiny_settings(
        tiny_model, tmp_path, video_jobs=True, workers=0, video_max_pixels=1000
    )
    server = start_server(settings)
    try:
        with server.client() as c:
            r = c.post("/v1/videos", content=clip, headers={"Content-Type": "video/mp4"})
            assert r.status_code == 413 and "pixels" in r.json()["error"]["message"]
            server.state.settings.video_max_bytes = 2048
            r = c.post("/v1/videos", content=clip, headers={"Content-Type": "video/mp4"})
            assert r.status_code == 413
    finally:
        server.stop()


def test_idempotency_keys_are_per_api_key(tiny_model: Path, tmp_path: Path, clip: bytes) -> None:
    settings = tiny_settings(tiny_model, tmp_path, video_jobs=True, workers=0, api_keys="k1,k2")
    server = start_server(settings)
    try:
        ids = {}
        for key in ("k1", "k2", "k1"):
            headers = {
                "Authorization": f"Bearer {key}",
                "Content-Type": "video/mp4",
                "Idempotency-Key": "order-42",
            }
            with server.client() as c:
                r = c.post("/v1/videos", content=clip, headers=headers)
            assert r.status_code == 202, r.text
            ids.setdefault(key, set()).add(r.json()["id"])
        # k1's repeat is its own job again; k2 never gets k1's job for the same key.
        assert len(ids["k1"]) == 1 and len(ids["k2"]) == 1 and ids["k1"] != ids["k2"]
    finally:
        server.stop()
