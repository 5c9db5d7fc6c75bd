"""Dynamic batching between the asyncio HTTP routes and one inference backend.

Routes `await submit(image)`; a single collector task groups waiting requests into
batches of up to `max_batch_size`, waiting at most `max_delay_ms` after the oldest
request arrived for company. A backend runs a batch of one size, so requests only
share a batch when their sides round up to the same multiple of `bucket`: if they
are all exactly the same size they run as they are (the result equals a batch of
one), otherwise each is edge-padded at the bottom/right to the largest size in the
batch and its mattes are cropped back. Requests that do not fit stay queued in
FIFO order, and the oldest always leads the next batch, so none starves.

The backend runs in one dedicated worker thread: `Backend.infer` is blocking and
not thread-safe (one CUDA stream, one ONNX Runtime session), and a GPU gains
nothing from two batches at once; batch assembly and cropping run there too, to
keep the event loop free for I/O. The queue is bounded: when full, `submit` fails
at once with a Retry-After estimate (the route's 503) instead of queueing work that
would miss its deadline anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from matting.errors import InputError, MattingError
from matting.runtime.base import Backend


class QueueFullError(MattingError):
    """The queue holds `max_queue` requests; retry after `retry_after_s` seconds."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, retry_after_s)


class DeadlineExceededError(MattingError):
    """A request's deadline passed before its result was ready."""


class ServiceClosedError(MattingError):
    """The batcher is stopping or stopped and takes no more work."""


class InferenceError(MattingError):
    """The backend failed on a batch with an error that is not a MattingError."""


@dataclass(frozen=True)
class BatcherConfig:
    max_batch_size: int = 8  # 1 disables batching
    max_delay_ms: float = 5.0  # how long the first queued request waits for company
    max_queue: int = 64  # requests waiting (not counting the batch in flight)
    bucket: int = 64  # side multiple for padded buckets of mixed sizes

    def __post_init__(self) -> None:
        if self.max_batch_size < 1 or self.max_queue < 1 or self.bucket < 1:
            raise ValueError(f"max_batch_size, max_queue and bucket must be >= 1: {self}")
        if self.max_delay_ms < 0:
            raise ValueError(f"max_delay_ms must be >= 0, got {self.max_delay_ms}")


@dataclass(frozen=True)
class MatteResult:
    alpha: np.ndarray  # (H, W) float32, the request's own size
    foreground: np.ndarray  # (H, W, 3) float32
    queue_wait_s: float  # submit -> batch start
    inference_s: float  # wall time of the backend call for its batch
    batch_size: int
    num_patches: int


class BatchObserver(Protocol):
    def batch_done(self, size: int, inference_s: float) -> None: ...
    def queue_wait(self, seconds: float) -> None: ...


class _NoObserver:
    def batch_done(self, size: int, inference_s: float) -> None:
        pass

    def queue_wait(self, seconds: float) -> None:
        pass


@dataclass(eq=False)  # identity equality: deque.remove must find this very request
class _Request:
    image: np.ndarray
    background: np.ndarray | None
    bucket: tuple[int, int]
    arrival: float  # loop.time() at submit
    future: asyncio.Future[MatteResult] = field(repr=False)


_Mattes = tuple[list[tuple[np.ndarray, np.ndarray]], int, float]


def _infer_batch(backend: Backend, reqs: list[_Request]) -> _Mattes:
    """Worker thread: pad to the batch's largest size (a no-op when all sizes are
    equal), run the backend, crop each matte back. -> (mattes, num_patches, seconds)"""
    sizes = [r.image.shape[:2] for r in reqs]
    height, width = max(h for h, _ in sizes), max(w for _, w in sizes)

    def fit(a: np.ndarray) -> np.ndarray:
        pad = ((0, height - a.shape[0]), (0, width - a.shape[1]), (0, 0))
        return a if a.shape[:2] == (height, width) else np.pad(a, pad, mode="edge")

    images = np.stack([fit(r.image) for r in reqs])
    bgs = None
    if reqs[0].background is not None:
        bgs = np.stack([fit(r.background) for r in reqs if r.background is not None])
    start = time.perf_counter()
    out = backend.infer(images, bgs)
    seconds = time.perf_counter() - start
    mattes = [
        (
            np.ascontiguousarray(out.alpha[i, :h, :w]),
            np.ascontiguousarray(out.foreground[i, :h, :w]),
        )
        for i, (h, w) in enumerate(sizes)
    ]
    return mattes, out.num_patches, seconds


class Batcher:
    def __init__(
        self,
        backend: Backend,
        config: BatcherConfig = BatcherConfig(),  # frozen, so sharing the default is safe
        observer: BatchObserver | None = None,
    ) -> None:
        self.backend = backend
        self.config = config
        self.observer: BatchObserver = observer or _NoObserver()
        self._queue: deque[_Request] = deque()
        self._in_flight: list[_Request] = []
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="matting-infer")
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._per_image_s = 0.0  # EMA of inference seconds per image, for Retry-After

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def retry_after_s(self) -> int:
        """Seconds until the present backlog is likely worked off (at least 1)."""
        backlog = len(self._queue) + len(self._in_flight)
        return max(1, math.ceil(backlog * self._per_image_s))

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._collect())

    async def submit(
        self,
        image: np.ndarray,
        background: np.ndarray | None = None,
        *,
        deadline_s: float | None = None,
    ) -> MatteResult:
        if self._closing:
            raise ServiceClosedError("the service is shutting down")
        if self._task is None:
            raise RuntimeError("Batcher.start() was not called")
        self._check(image, background)
        if len(self._queue) >= self.config.max_queue:
            raise QueueFullError(
                f"the inference queue is full ({len(self._queue)} waiting)", self.retry_after_s()
            )
        if deadline_s is not None and deadline_s <= 0:
            raise DeadlineExceededError("the request's deadline had passed before it queued")
        loop = asyncio.get_running_loop()
        b = self.config.bucket
        h, w = image.shape[:2]
        bucket = (-(-h // b) * b, -(-w // b) * b)
        req = _Request(image, background, bucket, loop.time(), loop.create_future())
        self._queue.append(req)
        self._wakeup.set()
        try:
            # On timeout or cancellation wait_for cancels the future, so the
            # collector skips it and drops its result.
            return await asyncio.wait_for(req.future, deadline_s)
        except asyncio.TimeoutError:
            where = "in the queue" if req in self._queue else "during inference"
            raise DeadlineExceededError(
                f"the deadline of {deadline_s:g} s passed {where}"
            ) from None
        finally:
            if req in self._queue:
                self._queue.remove(req)

    async def stop(self, drain: bool = True, timeout_s: float = 30.0) -> None:
        self._closing = True
        if not drain:
            self._fail_queued()
        self._wakeup.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
            except asyncio.TimeoutError:
                self._task.cancel()  # fails the in-flight requests (see _run)
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        self._fail_queued()  # whatever a timed-out drain left behind
        # wait=False: after a timeout the thread may still be inside infer
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _check(self, image: np.ndarray, background: np.ndarray | None) -> None:
        ok = isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
        if not ok or image.shape[2] != 3 or image.size == 0:
            raise InputError(f"image must be an (H, W, 3) uint8 array, got {_describe(image)}")
        h, w = image.shape[:2]
        needs = self.backend.info.model.background_input
        if needs and background is None:
            raise InputError("this model needs a background plate with every image")
        if not needs and background is not None:
            raise InputError("this model was built without a background input")
        if background is not None and (
            not isinstance(background, np.ndarray)
            or background.dtype != np.uint8
            or background.shape != image.shape
        ):
            raise InputError(
                f"background must be a uint8 array of the image's shape {image.shape}, "
                f"got {_describe(background)}"
            )
        if not self.backend.info.accepts(1, h, w):
            raise InputError(f"{h}x{w} is outside the sizes this model was built for")

    def _select(self) -> list[_Request]:
        """The next batch: the oldest live request plus later ones in its bucket."""
        live = [r for r in self._queue if not r.future.done()]
        if not live:
            return []
        batch, (h, w) = [live[0]], live[0].image.shape[:2]
        for r in live[1:]:
            if len(batch) >= self.config.max_batch_size:
                break
            nh, nw = max(h, r.image.shape[0]), max(w, r.image.shape[1])
            if r.bucket == batch[0].bucket and self.backend.info.accepts(len(batch) + 1, nh, nw):
                batch.append(r)
                h, w = nh, nw
        return batch

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self.config.max_delay_ms / 1000
        while True:
            batch = self._select()
            if not batch:
                if self._closing:
                    return
                await self._wait(None)
                continue
            # Wait for company until the batch is full or its oldest request has
            # waited max_delay; a draining batcher gets no new requests, so go now.
            remaining = batch[0].arrival + delay - loop.time()
            if len(batch) < self.config.max_batch_size and remaining > 0 and not self._closing:
                await self._wait(remaining)
                continue
            await self._run(batch)

    async def _wait(self, timeout_s: float | None) -> None:
        """Sleep until a submit (or stop) sets the event, or timeout_s passes."""
        self._wakeup.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout_s)

    async def _run(self, batch: list[_Request]) -> None:
        loop = asyncio.get_running_loop()
        for r in batch:
            self._queue.remove(r)
        self._in_flight = batch
        start = loop.time()
        try:  # observer calls inside too: whatever fails, the collector must go on
            for r in batch:
                self.observer.queue_wait(start - r.arrival)
            mattes, num_patches, seconds = await loop.run_in_executor(
                self._executor, _infer_batch, self.backend, batch
            )
            self.observer.batch_done(len(batch), seconds)
        except asyncio.CancelledError:
            _fail(batch, ServiceClosedError("the service stopped before this request finished"))
            raise
        except MattingError as e:
            _fail(batch, e)
            return
        except Exception as e:
            _fail(batch, InferenceError(f"inference failed: {type(e).__name__}: {e}"))
            return
        finally:
            self._in_flight = []
        per_image = seconds / len(batch)
        self._per_image_s = (
            per_image if not self._per_image_s else (0.8 * self._per_image_s + 0.2 * per_image)
        )
        for r, (alpha, fg) in zip(batch, mattes, strict=True):
            if not r.future.done():  # done: its deadline passed or the client left
                r.future.set_result(
                    MatteResult(alpha, fg, start - r.arrival, seconds, len(batch), num_patches)
                )

    def _fail_queued(self) -> None:
        queued, self._queue = list(self._queue), deque()
        _fail(queued, ServiceClosedError("the service is shutting down"))


def _fail(reqs: list[_Request], error: BaseException) -> None:
    for r in reqs:
        if not r.future.done():
            r.future.set_exception(error)


def _describe(a: object) -> str:
    if isinstance(a, np.ndarray):
        return f"{a.dtype} array of shape {a.shape}"
    return type(a).__name__
