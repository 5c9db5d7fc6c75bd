"""The video worker on a real redis-server and real PyAV files: chunks, resume, outputs,
cancellation and poison jobs (in-process workers; test_faults.py kills real processes)."""

from __future__ import annotations

import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import redis
import torch

from matting.checkpoint import save_checkpoint
from matting.errors import InputError
from matting.models.network import build_model
from matting.runtime.torch_backend import TorchBackend
from matting.videoio import probe, read_back
from service.jobs.queue import JobQueue
from service.jobs.schema import Job, JobState
from service.jobs.storage import LocalStorage, new_name
from service.jobs.worker import JobOptions, Worker, segment_name
from tests.export.conftest import TINY
from tests.service.jobs.conftest import make_queue

W, H, FRAMES = 96, 64, 10


def make_clip(path: Path, frames: int = FRAMES, audio: bool = True) -> None:
    """H.264 (+ AAC) with a static textured background and a square moving right."""
    rng = np.random.default_rng(3)
    bg = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=Fraction(12))
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        v.options = {"crf": "18", "preset": "ultrafast"}
        a = out.add_stream("aac", rate=16000) if audio else None
        for t in range(frames):
            f = bg.copy()
            f[16:48, 8 + 5 * t : 40 + 5 * t] = (240, 200, 170)
            for p in v.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)
        if a is not None:
            n = 1024
            for i in range(int(16000 * frames / 12) // n):
                x = 0.1 * np.sin(np.arange(i * n, (i + 1) * n) / 10.0)
                af = av.AudioFrame.from_ndarray(x.astype(np.float32)[None], "fltp", "mono")
                af.sample_rate, af.pts = 16000, i * n
                for p in a.encode(af):
                    out.mux(p)
            for p in a.encode(None):
                out.mux(p)


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> TorchBackend:
    path = tmp_path_factory.mktemp("worker-model") / "tiny.safetensors"
    torch.manual_seed(0)  # the same random model whichever tests ran before
    save_checkpoint(path, build_model(TINY).eval())
    return TorchBackend(path, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    make_clip(path)
    return path


def submit(queue: JobQueue, storage: LocalStorage, clip: Path, **options: object) -> Job:
    name = new_name(".mp4")
    with storage.writer(name) as f:
        f.write(clip.read_bytes())
    opts = {**JobOptions(chunk_frames=3).to_dict(), **options}
    return queue.submit(name, opts)


def run_one(worker: Worker) -> str:
    claim = worker.queue.claim_next(worker.name, block_ms=1000)
    assert claim is not None
    return worker.process(claim)


def alphas(path: Path, kind: str = "webm") -> np.ndarray:
    return np.stack([a for _, a in read_back(path, kind)])  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["webm", "prores", "pngzip", "composite"])
def test_every_output_reads_back_with_the_models_alpha(
    kind: str, queue: JobQueue, tmp_path: Path, clip: Path, backend: TorchBackend
) -> None:
    storage = LocalStorage(tmp_path / "objects")
    job = submit(queue, storage, clip, output=kind, temporal_threshold=0.0)
    assert run_one(Worker(queue, storage, backend)) == "succeeded"
    done = queue.get(job.id)
    assert done is not None and done.state == JobState.SUCCEEDED and done.progress == 1.0
    assert done.frames_done == done.frames_total == FRAMES and done.output_location
    out = storage.local_path(done.output_location)
    frames = list(read_back(out, kind))  # type: ignore[arg-type]
    assert len(frames) == FRAMES
    assert frames[0][0].shape == (H, W, 3)
    if kind != "pngzip":
        info = probe(out)
        assert (info.width, info.height, info.frame_count) == (W, H, FRAMES)
        assert info.has_audio
    # The model's own alpha for the decoded input frames, quantised as the writers do.
    from matting.videoio import read_frames

    want = [np.rint(backend.infer(f[None]).alpha[0] * 255) for f in read_frames(clip)]
    for (rgb, alpha), ref in zip(frames, want, strict=True):
        err = np.abs(alpha.astype(np.float64) - ref)
        if kind == "composite":  # no alpha channel: composited over green, lossy H.264
            assert rgb.shape == (H, W, 3)
            continue
        assert err.max() <= 2, f"{kind}: alpha off by {err.max()} levels"
    # The segments and the upload are gone once the output is stored.
    opts = JobOptions.from_dict(done.options)
    assert not any(storage.exists(segment_name(done, c, opts)) for c in range(4))
    assert not storage.exists(job.input_location) and storage.exists(done.output_location)


def test_a_composite_over_an_image_job(
    queue: JobQueue, tmp_path: Path, clip: Path, backend: TorchBackend
) -> None:
    from matting.imageio import ImageLimits, resize_cover
    from matting.videoio import read_frames
    from service.video_upload import store_background

    storage = LocalStorage(tmp_path / "objects")
    yy, xx = np.mgrid[:90, :160]  # another aspect than the clip's: scaled to cover
    image = np.dstack([xx * 1.5, yy * 2.5, 255 - xx]).astype(np.uint8)
    png = tmp_path / "bg.png"
    from PIL import Image

    Image.fromarray(image).save(png)
    name, _ = store_background(storage, png.read_bytes(), ImageLimits())
    job = submit(
        queue, storage, clip, output="composite", background_image=name, temporal_threshold=0.0
    )
    assert run_one(Worker(queue, storage, backend)) == "succeeded"
    done = queue.get(job.id)
    assert done is not None and done.output_location
    back = list(read_back(storage.local_path(done.output_location), "composite"))
    assert len(back) == FRAMES
    bg = resize_cover(image, (H, W)).astype(np.float64)
    green = np.array([0.0, 255.0, 0.0])
    for (rgb, _), frame in zip(back, read_frames(clip), strict=True):
        out = backend.infer(frame[None])
        a = out.alpha[0][..., None].astype(np.float64)
        fg = out.foreground[0].astype(np.float64) * 255
        want = np.clip(np.rint(fg * a + bg * (1 - a)), 0, 255).astype(np.uint8)
        # 4:2:0 itself smears chroma wherever the colour changes fast (the random model's
        # foreground does, everywhere): compare with F*a+B*(1-a) through that conversion,
        # so what is left is H.264's own loss at crf 16.
        ideal = av.VideoFrame.from_ndarray(want, format="rgb24").reformat(format="yuv420p")
        got = rgb.astype(np.float64)
        assert np.abs(got - ideal.to_ndarray(format="rgb24")).mean() < 3
        assert np.abs(got - (fg * a + green * (1 - a))).mean() > 20  # not the colour


def test_a_background_image_needs_a_composite(queue: JobQueue, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="only to output 'composite'"):
        JobOptions.from_dict({"output": "webm", "background_image": "0" * 32 + ".png"})
    with pytest.raises(InputError, match="background_image"):
        JobOptions.from_dict({"output": "composite", "background_image": "../../etc/passwd"})


def test_a_resumed_job_equals_an_uninterrupted_one(
    queue: JobQueue, tmp_path: Path, clip: Path, backend: TorchBackend
) -> None:
    storage = LocalStorage(tmp_path / "objects")
    whole = submit(queue, storage, clip)
    assert run_one(Worker(queue, storage, backend)) == "succeeded"

    job = submit(queue, storage, clip, output="webm", chunk_frames=3, background_color="#00ff01")
    first = Worker(queue, storage, backend)
    first.on_chunk = lambda _job, chunk: first.stop() if chunk == 1 else None
    assert run_one(first) == "released"
    held = queue.get(job.id)
    assert held is not None and held.chunks_done == 2 and held.state == JobState.QUEUED
    resumed_chunks: list[int] = []
    second = Worker(queue, storage, backend, on_chunk=lambda _j, c: resumed_chunks.append(c))
    assert run_one(second) == "succeeded"
    assert resumed_chunks == [2, 3]  # started at the recorded chunk, not from 0
    a = queue.get(whole.id)
    b = queue.get(job.id)
    assert a is not None and b is not None and a.output_location and b.output_location
    np.testing.assert_array_equal(
        alphas(storage.local_path(a.output_location)), alphas(storage.local_path(b.output_location))
    )


def test_a_cancelled_running_job_stops_within_one_chunk(
    queue: JobQueue, tmp_path: Path, clip: Path, backend: TorchBackend
) -> None:
    storage = LocalStorage(tmp_path / "objects")
    job = submit(queue, storage, clip, chunk_frames=2)
    chunks: list[int] = []

    def on_chunk(_job: Job, chunk: int) -> None:
        chunks.append(chunk)
        if chunk == 0:
            queue.cancel(job.id)

    assert run_one(Worker(queue, storage, backend, on_chunk=on_chunk)) == "cancelled"
    assert chunks == [0]
    done = queue.get(job.id)
    assert done is not None and done.state == JobState.CANCELLED and done.output_location is None
    assert queue.stats()["pending"] == 0
    assert not storage.exists(job.input_location)  # the upload is of no more use


class SlowBackend:
    """A backend that takes its time per frame, so a cancel lands mid-chunk."""

    def __init__(self, backend: TorchBackend, delay_s: float) -> None:
        self.backend, self.delay_s = backend, delay_s

    def __getattr__(self, name: str) -> object:
        return getattr(self.backend, name)

    def infer(self, *args: object, **kwargs: object) -> object:
        time.sleep(self.delay_s)
        return self.backend.infer(*args, **kwargs)  # type: ignore[arg-type]


def test_a_cancel_from_a_client_mid_chunk_stops_the_job_within_that_chunk(
    queue: JobQueue, tmp_path: Path, clip: Path, backend: TorchBackend
) -> None:
    storage = LocalStorage(tmp_path / "objects")
    job = submit(queue, storage, clip, chunk_frames=2)
    chunks: list[int] = []
    at_cancel: list[int] = []

    def client() -> None:  # another process's DELETE, while the worker is inside a chunk
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            j = queue.get(job.id)
            if j is not None and j.chunks_done >= 1:
                at_cancel.append(j.chunks_done)
                queue.cancel(job.id)
                return
            time.sleep(0.005)

    worker = Worker(
        queue, storage, SlowBackend(backend, 0.1), on_chunk=lambda _j, c: chunks.append(c)
    )  # type: ignore[arg-type]
    t = threading.Thread(target=client)
    t.start()
    assert run_one(worker) == "cancelled"
    t.join()
    # The chunk in hand when the cancel came was finished but not recorded; no other began.
    assert at_cancel and len(chunks) <= at_cancel[0] + 1 < FRAMES // 2
    done = queue.get(job.id)
    assert done is not None and done.state == JobState.CANCELLED
    assert done.chunks_done in (at_cancel[0], at_cancel[0] + 1)


def test_a_poisoned_job_ends_in_the_dead_letters_after_n_tries(
    client: redis.Redis, tmp_path: Path, backend: TorchBackend
) -> None:
    queue = make_queue(client, max_deliveries=3, backoff_base_s=0.05, backoff_cap_s=0.1)
    storage = LocalStorage(tmp_path / "objects")
    name = new_name(".mp4")
    with storage.writer(name) as f:
        f.write(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)  # a header, then junk
    job = queue.submit(name, JobOptions(chunk_frames=3).to_dict())
    worker = Worker(queue, storage, backend, claim_block_ms=200)
    outcomes = []
    deadline = time.monotonic() + 30
    while len(outcomes) < 3 and time.monotonic() < deadline:
        claim = queue.claim_next(worker.name, block_ms=200)
        if claim is not None:
            outcomes.append(worker.process(claim))
    assert outcomes == ["retry", "retry", "failed"]
    done = queue.get(job.id)
    assert done is not None and done.state == JobState.FAILED
    assert done.error and "not a readable video" in done.error
    letters = queue.dead_letters()
    assert [entry["job"] for entry in letters] == [job.id]
    assert letters[0]["deliveries"] == "3"


def test_invalid_options_fail_at_once(
    queue: JobQueue, tmp_path: Path, clip: Path, backend: TorchBackend
) -> None:
    storage = LocalStorage(tmp_path / "objects")
    job = submit(queue, storage, clip, output="gif")
    assert run_one(Worker(queue, storage, backend)) == "failed"
    done = queue.get(job.id)
    assert done is not None and done.state == JobState.FAILED and "gif" in (done.error or "")


def test_the_run_loop_stops_on_request(
    queue: JobQueue, tmp_path: Path, clip: Path, backend: TorchBackend
) -> None:
    storage = LocalStorage(tmp_path / "objects")
    job = submit(queue, storage, clip)
    worker = Worker(queue, storage, backend, claim_block_ms=100)
    thread = threading.Thread(target=worker.run)
    thread.start()
    deadline = time.monotonic() + 60
    while (j := queue.get(job.id)) is not None and not j.state.is_terminal:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    worker.stop()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert j is not None and j.state == JobState.SUCCEEDED
    assert queue.stats()["stream_length"] == 0  # the finished entry was trimmed


def test_the_storage_sweep_keeps_what_jobs_point_to(
    queue: JobQueue, tmp_path: Path, clip: Path, backend: TorchBackend
) -> None:
    import os

    storage = LocalStorage(tmp_path / "objects")
    waiting = submit(queue, storage, clip)  # its input is old but still needed
    png = new_name(".png")
    composite = submit(queue, storage, clip, output="composite", background_image=png)
    with storage.writer(png) as f:
        f.write(b"png")
    orphan, young = new_name(".mov"), new_name(".mov")
    for name in (orphan, young):
        with storage.writer(name) as f:
            f.write(b"x")
    (storage.root / ".part-crashed").write_bytes(b"half")
    week = time.time() - 8 * 24 * 3600
    for name in (waiting.input_location, composite.input_location, png, orphan, ".part-crashed"):
        os.utime(storage.root / name, (week, week))
    worker = Worker(queue, storage, backend)
    assert worker.sweep_storage(7 * 24 * 3600) == 1
    assert not storage.exists(orphan) and not (storage.root / ".part-crashed").exists()
    for name in (waiting.input_location, composite.input_location, png, young):
        assert storage.exists(name), name
