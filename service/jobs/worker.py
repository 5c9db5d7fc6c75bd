"""A video job worker: claims jobs, mattes them chunk by chunk, and stores the result.

Each chunk of `chunk_frames` frames is decoded with PyAV, matted with temporal sparsity
(a fresh TemporalMatter per chunk, so a chunk depends on its own frames only) and encoded
as a segment in the job's output format, stored under a name derived from the job id and
the chunk number. Only then is the chunk recorded as done, atomically with the progress.
A worker that takes over a job (its first worker died or shut down) starts at the first
chunk not recorded, and the joined output is the same as an uninterrupted run's.

When all chunks are stored, the segments are joined by remuxing (no re-encode) with the
input's audio, checked, and stored as the output. Delivery is at-least-once: a worker that
dies after storing a chunk but before recording it makes the next worker redo that chunk,
which overwrites the segment with the same content.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, get_args

from matting.errors import InputError
from matting.imageio import read_image, resize_cover
from matting.runtime.base import Backend
from matting.temporal import TemporalMatter
from matting.videoio import Background, Kind, concat_segments, open_writer, probe, read_frames
from service.jobs.errors import JobCancelledError, JobInterruptedError, QueueUnavailableError
from service.jobs.heartbeat import Heartbeat
from service.jobs.metrics import WorkerMetrics
from service.jobs.queue import Claim, JobQueue, new_worker_name
from service.jobs.schema import Job
from service.jobs.storage import Storage, check_name, derived_name

log = logging.getLogger(__name__)
_T = TypeVar("_T")

EXTENSIONS: dict[str, str] = {
    "webm": ".webm",
    "prores": ".mov",
    "pngzip": ".zip",
    "composite": ".mp4",
}
MEDIA_TYPES: dict[str, str] = {
    "webm": "video/webm",
    "prores": "video/quicktime",
    "pngzip": "application/zip",
    "composite": "video/mp4",
}
TRIM_INTERVAL_S = 60.0
SWEEP_INTERVAL_S = 3600.0
_HEX_COLOR = re.compile(r"^#?([0-9a-fA-F]{6})$")


class InvalidJobError(InputError):
    """A job whose options no worker could ever run: it fails without retries."""


class StopRequested(Exception):  # noqa: N818 - a signal, not an error
    """The worker was asked to stop; the job goes back to the queue at its resume point."""


def parse_color(value: str) -> tuple[int, int, int]:
    """'#RRGGBB' or 'RRGGBB' -> (r, g, b)."""
    m = _HEX_COLOR.match(value.strip())
    if not m:
        raise InputError(f"colour {value[:20]!r} is not #RRGGBB")
    h = m.group(1)
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


@dataclass(frozen=True)
class JobOptions:
    """What a job asks for. Fixed at submission, so that every worker that touches the job
    cuts the same chunks and matte the same way, whatever its own settings."""

    output: Kind = "webm"
    background_color: str = "#00ff00"  # composite only
    chunk_frames: int = 48
    temporal_threshold: float = 0.03
    # composite only: a stored image (a storage name the service made) instead of the colour
    background_image: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "background_color": self.background_color,
            "chunk_frames": self.chunk_frames,
            "temporal_threshold": self.temporal_threshold,
            "background_image": self.background_image,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> JobOptions:
        """Validate stored options; InvalidJobError says what is wrong."""
        try:
            opts = cls(
                output=str(raw.get("output", "webm")),  # type: ignore[arg-type]
                background_color=str(raw.get("background_color", "#00ff00")),
                chunk_frames=int(raw.get("chunk_frames", 48)),
                temporal_threshold=float(raw.get("temporal_threshold", 0.03)),
                background_image=str(raw.get("background_image", "")),
            )
        except (TypeError, ValueError) as exc:
            raise InvalidJobError(f"invalid job options: {exc}") from None
        if opts.background_image:
            if opts.output != "composite":
                raise InvalidJobError("a background image applies only to output 'composite'")
            try:
                check_name(opts.background_image)
            except InputError as exc:
                raise InvalidJobError(f"background_image: {exc}") from None
        if opts.output not in get_args(Kind):
            raise InvalidJobError(f"output {opts.output!r} is not one of {get_args(Kind)}")
        if not 1 <= opts.chunk_frames <= 10_000:
            raise InvalidJobError(f"chunk_frames {opts.chunk_frames} is not in 1..10000")
        if not 0.0 <= opts.temporal_threshold <= 1.0:
            raise InvalidJobError(f"temporal_threshold {opts.temporal_threshold} not in [0, 1]")
        try:
            parse_color(opts.background_color)
        except InputError as exc:
            raise InvalidJobError(str(exc)) from None
        return opts


def segment_name(job: Job, chunk: int, opts: JobOptions) -> str:
    return derived_name(f"{job.id}:segment:{chunk}:{opts.chunk_frames}", EXTENSIONS[opts.output])


def output_name(job: Job, opts: JobOptions) -> str:
    return derived_name(f"{job.id}:output", EXTENSIONS[opts.output])


def count_frames(path: Path, kind: Kind) -> int:
    """Frames in a finished output, counted from the file itself."""
    if kind == "pngzip":
        with zipfile.ZipFile(path) as zf:
            return sum(1 for n in zf.namelist() if n.endswith(".png"))
    return probe(path).frame_count


class Worker:
    """Claims and runs jobs until stop() (SIGTERM in `matting worker`): the job in hand is
    stopped after its current chunk and handed back at its resume point."""

    def __init__(
        self,
        queue: JobQueue,
        storage: Storage,
        backend: Backend,
        *,
        name: str | None = None,
        metrics: WorkerMetrics | None = None,
        claim_block_ms: int = 1000,
        on_chunk: Callable[[Job, int], None] | None = None,
        outage_s: float = 300.0,
    ) -> None:
        self.queue, self.storage, self.backend = queue, storage, backend
        self.name = name or new_worker_name()
        self.metrics = metrics
        self.claim_block_ms = claim_block_ms
        self.on_chunk = on_chunk  # called after each recorded chunk (tests, progress bars)
        self.outage_s = outage_s  # how long a job in hand waits for Redis to come back
        self._lost: list[Claim] = []  # claims held through an outage longer than that
        self._stop = threading.Event()
        self._last_run: dict[str, float] = {}  # housekeeping task -> when it last ran

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """The main loop. Redis outages are waited out; nothing here ends it but stop()."""
        with Heartbeat(self.queue, self.name):
            while not self._stop.is_set():
                try:
                    while self._lost:
                        with contextlib.suppress(JobInterruptedError):  # cancelled meanwhile
                            self.queue.release(self._lost[0])
                        self._lost.pop(0)
                    claim = self.queue.claim_next(
                        self.name, block_ms=self.claim_block_ms, holds_none=True
                    )
                except QueueUnavailableError as exc:
                    log.warning("worker %s: %s; retrying", self.name, exc)
                    self._stop.wait(1.0)
                    continue
                if claim is not None:
                    self.process(claim)
                self._trim_now_and_then()
                self._sweep_now_and_then()

    def _trim_now_and_then(self) -> None:
        # Acked entries are dropped from the stream (the job hashes keep the history).
        self._now_and_then("trimming the stream", TRIM_INTERVAL_S, self.queue.trim)

    def _sweep_now_and_then(self) -> None:
        # Storage objects no job points to any more (their hashes expired, or a crash left
        # them) go once they are older than a finished job stays readable.
        ttl = float(self.queue.job_ttl_s)
        self._now_and_then(
            "sweeping the storage", SWEEP_INTERVAL_S, lambda: self.sweep_storage(ttl)
        )

    def _now_and_then(self, what: str, interval_s: float, task: Callable[[], object]) -> None:
        """Run a housekeeping task at most once per interval_s; its failure is only logged."""
        now = time.monotonic()
        if now - self._last_run.get(what, -math.inf) < interval_s:
            return
        self._last_run[what] = now
        try:
            task()
        except (QueueUnavailableError, OSError) as exc:
            log.warning("worker %s: %s failed: %s", self.name, what, exc)

    def sweep_storage(self, age_s: float) -> int:
        """Delete the objects older than age_s that no job hash refers to; returns how many.
        The names are listed before the hashes are read, so an object that a job starts to
        refer to in between is young and never listed."""
        old = self.storage.older_than(age_s)
        if not old:
            return 0
        keep = self.queue.referenced_objects()
        gone = [name for name in old if name not in keep]
        for name in gone:
            self.storage.delete(name)
        if gone:
            log.info("worker %s: swept %d unreferenced storage objects", self.name, len(gone))
        return len(gone)

    def _drop_inputs(self, job: Job) -> None:
        """A job that succeeded or was cancelled needs its upload no more."""
        names = [job.input_location, str(job.options.get("background_image") or "")]
        for name in filter(None, names):
            with contextlib.suppress(OSError, InputError):
                self.storage.delete(name)

    def process(self, claim: Claim) -> str:
        """Run one claimed job to an outcome: succeeded, retry, failed, released, cancelled,
        interrupted (another worker owns it now) or lost (Redis went away for good)."""
        started = time.monotonic()
        outcome = "interrupted"
        try:
            job = self._patiently(self.queue.start, claim)
            if job.chunks_done:
                log.info("job %s: resuming at chunk %d", job.id, job.chunks_done)
            outcome = self._run(claim, job)
        except JobCancelledError as exc:
            log.info("job %s: %s", claim.job.id, exc)
            self._drop_inputs(claim.job)
            outcome = "cancelled"
        except JobInterruptedError as exc:  # another worker owns it now
            log.info("job %s: %s", claim.job.id, exc)
        except StopRequested:
            self._patiently(self.queue.release, claim)
            outcome = "released"
        except InvalidJobError as exc:
            self._patiently(self.queue.fail, claim, str(exc), retryable=False)
            outcome = "failed"
        except QueueUnavailableError as exc:
            # Nothing can be recorded. The entry stays pending under this live worker's name,
            # so the worker hands it back as soon as Redis answers again.
            log.error("job %s: the queue went away for good: %s", claim.job.id, exc)
            self._lost.append(claim)
            outcome = "lost"
        except Exception as exc:
            log.exception("job %s failed on delivery %d", claim.job.id, claim.deliveries)
            error = f"{type(exc).__name__}: {exc}"
            ended = self._patiently(self.queue.fail, claim, error, retryable=True)
            outcome = "retry" if not ended.state.is_terminal else ended.state.value
        if self.metrics is not None:
            self.metrics.finished.labels(outcome).inc()
            self.metrics.duration.labels(outcome).observe(time.monotonic() - started)
        return outcome

    def _patiently(self, call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """A queue call retried through a Redis outage (a restart, a failover) of up to
        outage_s, so that the work done so far is kept rather than thrown away."""
        deadline = time.monotonic() + self.outage_s
        while True:
            try:
                return call(*args, **kwargs)
            except QueueUnavailableError as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("worker %s: %s; retrying", self.name, exc)
                time.sleep(1.0)

    def _run(self, claim: Claim, job: Job) -> str:
        opts = JobOptions.from_dict(job.options)
        source = self.storage.local_path(job.input_location)
        info = probe(source)
        total, n = info.frame_count, opts.chunk_frames
        if total < 1:
            raise InputError(f"{job.input_location}: the video has no frames")
        chunks = math.ceil(total / n)
        names = [segment_name(job, c, opts) for c in range(chunks)]
        background = self._background(opts, info.height, info.width)
        done_at_start, t0 = min(job.chunks_done, chunks) * n, time.monotonic()
        with self.storage.scratch() as scratch:
            for c in range(job.chunks_done, chunks):
                if self._stop.is_set():
                    raise StopRequested
                tick = time.monotonic()
                frames = self._chunk(source, c, opts, info, background, scratch / names[c])
                self.storage.put_file(names[c], scratch / names[c])
                done = min(total, (c + 1) * n)
                rate = (done - done_at_start) / max(1e-9, time.monotonic() - t0)
                eta = (total - done) / rate
                self._patiently(
                    self.queue.progress, job.id, c + 1, done, total, eta, worker=self.name
                )
                if self.metrics is not None:
                    self.metrics.fps.set(frames / max(1e-9, time.monotonic() - tick))
                if self.on_chunk is not None:
                    self.on_chunk(job, c)
            out = output_name(job, opts)
            joined = scratch / out
            segments = [self.storage.local_path(name) for name in names]
            written = concat_segments(opts.output, segments, joined, audio_from=source)
            counted = count_frames(joined, opts.output)
            if written != total or counted != total:
                raise RuntimeError(
                    f"joined output has {counted} frames ({written} written), expected {total}"
                )
            self.storage.put_file(out, joined)
        self._patiently(self.queue.succeed, claim, out)
        for name in names:
            with contextlib.suppress(OSError):
                self.storage.delete(name)
        self._drop_inputs(job)
        return "succeeded"

    def _background(self, opts: JobOptions, height: int, width: int) -> Background:
        """The composite's backdrop: the job's image scaled to cover the frame, or its colour."""
        if not opts.background_image:
            return parse_color(opts.background_color)
        rgb = read_image(self.storage.local_path(opts.background_image)).rgb
        return resize_cover(rgb, (height, width))

    def _chunk(
        self,
        source: Path,
        chunk: int,
        opts: JobOptions,
        info: Any,
        background: Background,
        path: Path,
    ) -> int:
        matter = TemporalMatter(self.backend, opts.temporal_threshold)
        bg = background if opts.output == "composite" else None
        frames = 0
        with open_writer(opts.output, path, info.width, info.height, info.fps, bg) as writer:
            for frame in read_frames(source, chunk * opts.chunk_frames, opts.chunk_frames):
                alpha, fg, stats = matter(frame)
                writer.write(alpha, fg)
                frames += 1
                if self.metrics is not None:
                    self.metrics.frames.inc()
                    self.metrics.cells.labels("all").inc(stats.cells)
                    self.metrics.cells.labels("refined").inc(stats.refined)
        if frames == 0:
            raise InputError(f"chunk {chunk} of the input decoded to no frames")
        return frames
