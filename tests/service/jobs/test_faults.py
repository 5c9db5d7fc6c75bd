"""Faults with real processes: `matting worker` processes on a real redis-server; one is
SIGKILLed mid-job, or Redis restarts mid-queue. Every job must finish exactly once with the
output an uninterrupted run gives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from matting.checkpoint import save_checkpoint
from matting.models.network import build_model
from matting.runtime.torch_backend import TorchBackend
from service.jobs.queue import JobQueue
from service.jobs.redis_server import EmbeddedRedis
from service.jobs.schema import Job, JobState
from service.jobs.storage import LocalStorage, new_name
from service.jobs.worker import JobOptions, Worker
from tests.export.conftest import TINY
from tests.service.jobs import test_worker as clips

TTL_S = 2.0
CHUNK = 2


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fault-model") / "tiny.safetensors"
    save_checkpoint(path, build_model(TINY).eval())
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fault-clip") / "clip.mp4"
    clips.make_clip(path, frames=16)
    return path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path / "redis") as s:
        yield s


class Workers:
    def __init__(self, url: str, storage_dir: Path, checkpoint: Path, logs: Path) -> None:
        self.env = {
            **os.environ,
            "MATTING_REDIS_URL": url,
            "MATTING_STORAGE_DIR": str(storage_dir),
            "MATTING_MODEL": str(checkpoint),
            "MATTING_DEVICE": "cpu",
            "MATTING_HEARTBEAT_TTL_S": str(TTL_S),
            "MATTING_WORKER_METRICS_PORT": "0",
            "OMP_NUM_THREADS": "1",
        }
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "matting.cli", "worker", "--name", name],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def wait_for(what: str, check: object, timeout_s: float = 120) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = check()  # type: ignore[operator]
        if got:
            return got
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def submit_jobs(queue: JobQueue, storage: LocalStorage, clip: Path, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        name = new_name(".mp4")
        with storage.writer(name) as f:
            f.write(clip.read_bytes())
        ids.append(queue.submit(name, JobOptions(chunk_frames=CHUNK).to_dict()).id)
    return ids


def reference_alpha(checkpoint: Path, clip: Path, tmp: Path, url: str) -> np.ndarray:
    """The output of an uninterrupted in-process run, on a queue of its own."""
    queue = JobQueue.from_url(url, "reference")
    queue.ensure_group()
    storage = LocalStorage(tmp / "reference")
    (job_id,) = submit_jobs(queue, storage, clip, 1)
    worker = Worker(queue, storage, TorchBackend(checkpoint, device="cpu", precision="fp32"))
    claim = queue.claim_next(worker.name, block_ms=1000)
    assert claim is not None and worker.process(claim) == "succeeded"
    job = queue.get(job_id)
    assert job is not None and job.output_location
    return clips.alphas(storage.local_path(job.output_location))


def check_all_done_once(
    queue: JobQueue, storage: LocalStorage, ids: list[str], reference: np.ndarray
) -> list[Job]:
    jobs = []
    for job_id in ids:
        job = queue.get(job_id)
        assert job is not None and job.state == JobState.SUCCEEDED, job
        assert job.output_location and job.frames_done == job.frames_total == 16
        got = clips.alphas(storage.local_path(job.output_location))
        assert got.shape[0] == 16
        np.testing.assert_array_equal(got, reference)
        jobs.append(job)
    stats = queue.stats()
    assert stats["pending"] == 0 and stats["waiting"] == 0 and stats["dead_letter_length"] == 0
    return jobs


def set_up(
    server: EmbeddedRedis, checkpoint: Path, clip: Path, tmp_path: Path
) -> tuple[JobQueue, LocalStorage, np.ndarray, Workers]:
    """The queue and storage the worker processes share, the uninterrupted run's alpha,
    and the (not yet started) worker processes."""
    queue = JobQueue.from_url(server.url, heartbeat_ttl_s=TTL_S)
    queue.ensure_group()
    storage = LocalStorage(tmp_path / "jobs" / "objects")
    reference = reference_alpha(checkpoint, clip, tmp_path, server.url)
    return queue, storage, reference, Workers(server.url, tmp_path / "jobs", checkpoint, tmp_path)


def test_a_killed_worker_s_job_resumes_on_the_other_from_its_last_chunk(
    server: EmbeddedRedis, checkpoint: Path, clip: Path, tmp_path: Path
) -> None:
    queue, storage, reference, workers = set_up(server, checkpoint, clip, tmp_path)
    workers.start("alpha")
    workers.start("beta")
    try:
        ids = submit_jobs(queue, storage, clip, 4)

        def victim() -> Job | None:  # a job some worker has half done
            for job_id in ids:
                job = queue.get(job_id)
                if job and job.state == JobState.RUNNING and 2 <= job.chunks_done <= 5:
                    return job
            return None

        job = wait_for("a job half done", victim)
        assert isinstance(job, Job) and job.worker in ("alpha", "beta")
        killed, survivor = job.worker, ("beta" if job.worker == "alpha" else "alpha")
        workers.procs[killed].send_signal(signal.SIGKILL)
        workers.procs[killed].wait(timeout=10)
        at_kill = queue.get(job.id)
        assert at_kill is not None and at_kill.chunks_done >= 2

        def all_done() -> bool:
            states = [queue.get(i) for i in ids]
            return all(j is not None and j.state.is_terminal for j in states)

        wait_for("every job to finish", all_done)
        done = check_all_done_once(queue, storage, ids, reference)
        resumed = next(j for j in done if j.id == job.id)
        assert resumed.worker == survivor and resumed.attempts == 2
        # Every other job ran once, start to end: no double processing.
        assert all(j.attempts == 1 for j in done if j.id != job.id), done
        assert f"job {job.id}: resuming at chunk {at_kill.chunks_done}" in workers.log(survivor)
    finally:
        workers.stop_all()


def test_jobs_survive_a_redis_restart_mid_queue(
    server: EmbeddedRedis, checkpoint: Path, clip: Path, tmp_path: Path
) -> None:
    queue, storage, reference, workers = set_up(server, checkpoint, clip, tmp_path)
    workers.start("gamma")
    try:
        ids = submit_jobs(queue, storage, clip, 4)
        wait_for("the first job to start", lambda: (j := queue.get(ids[0])) and j.chunks_done)
        server.restart()  # AOF on: the queue, the job states and the resume points come back
        more = submit_jobs(queue, storage, clip, 1)

        def all_done() -> bool:
            return all((j := queue.get(i)) is not None and j.state.is_terminal for i in ids + more)

        wait_for("every job to finish", all_done, timeout_s=180)
        check_all_done_once(queue, storage, ids + more, reference)
        assert workers.procs["gamma"].poll() is None  # the worker rode the outage out
    finally:
        workers.stop_all()


def test_sigterm_stops_a_worker_after_its_chunk_and_hands_the_job_back(
    server: EmbeddedRedis, checkpoint: Path, clip: Path, tmp_path: Path
) -> None:
    queue, storage, reference, workers = set_up(server, checkpoint, clip, tmp_path)
    workers.start("delta")
    try:
        (job_id,) = submit_jobs(queue, storage, clip, 1)
        started = wait_for(
            "a chunk done", lambda: j if (j := queue.get(job_id)) and j.chunks_done >= 1 else None
        )
        assert isinstance(started, Job)
        workers.procs["delta"].send_signal(signal.SIGTERM)
        assert workers.procs["delta"].wait(timeout=60) == 0
        handed = queue.get(job_id)
        assert handed is not None and handed.state == JobState.QUEUED, handed
        # The chunk in hand was finished and recorded, not thrown away; nothing past it.
        assert started.chunks_done <= handed.chunks_done <= started.chunks_done + 1
        assert handed.releases == 1 and handed.chunks_done < 8
        assert "SIGTERM: stopping after the current chunk" in workers.log("delta")
        workers.start("epsilon")
        wait_for("the job to finish", lambda: (j := queue.get(job_id)) and j.state.is_terminal)
        (done,) = check_all_done_once(queue, storage, [job_id], reference)
        assert done.worker == "epsilon" and done.attempts == 1  # a hand-back is no try
        assert f"resuming at chunk {handed.chunks_done}" in workers.log("epsilon")
    finally:
        workers.stop_all()
