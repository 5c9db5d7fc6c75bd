"""The dynamic batcher against a real (tiny, random) torch backend on the CPU.

A wrapper backend records every batch the model saw and can hold a batch in flight
(a threading.Event gate) so a queue fills deterministically; it still runs the real
model underneath.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from matting.checkpoint import save_checkpoint
from matting.errors import InputError, MattingError
from matting.models.network import build_model
from matting.runtime import Backend, BatchResult, load_backend
from service.batcher import (
    Batcher,
    BatcherConfig,
    DeadlineExceededError,
    InferenceError,
    QueueFullError,
    ServiceClosedError,
)
from tests.export.conftest import TINY

T = TypeVar("T")


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Backend:
    path = tmp_path_factory.mktemp("tiny") / "tiny.safetensors"
    save_checkpoint(path, build_model(TINY).eval())
    return load_backend(path)


@pytest.fixture(scope="module")
def bg_backend(tmp_path_factory: pytest.TempPathFactory) -> Backend:
    path: Path = tmp_path_factory.mktemp("tiny-bg") / "tiny-bg.safetensors"
    save_checkpoint(path, build_model(TINY.model_copy(update={"background_input": True})).eval())
    return load_backend(path)


class Wrapped(Backend):
    """The real backend behind a gate, recording each batch; `fail` raises instead."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.info = inner.info
        self.gate = threading.Event()
        self.gate.set()
        self.calls: list[np.ndarray] = []
        self.fail: Exception | None = None

    def _infer(
        self, images: np.ndarray, backgrounds: np.ndarray | None, num_patches: int
    ) -> BatchResult:
        self.calls.append(images.copy())
        assert self.gate.wait(10), "test gate never opened"
        if self.fail is not None:
            raise self.fail
        return self.inner._infer(images, backgrounds, num_patches)

    def saw(self, image: np.ndarray) -> bool:
        h, w = image.shape[:2]
        return any(np.array_equal(b[:h, :w], image) for batch in self.calls for b in batch)


class Recorder:
    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.waits: list[float] = []

    def batch_done(self, size: int, inference_s: float) -> None:
        self.sizes.append(size)

    def queue_wait(self, seconds: float) -> None:
        self.waits.append(seconds)


def images(n: int, h: int = 48, w: int = 64, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def run(
    backend: Backend,
    body: Callable[[Batcher], Awaitable[T]],
    observer: Recorder | None = None,
    **config: Any,
) -> T:
    """Start a batcher, run body(batcher), stop it (the stop is part of the test)."""

    async def main() -> T:
        batcher = Batcher(backend, BatcherConfig(**config), observer)
        await batcher.start()
        try:
            return await body(batcher)
        finally:
            await batcher.stop(timeout_s=10)

    return asyncio.run(main())


async def until(cond: Callable[[], bool], timeout_s: float = 5.0) -> None:
    end = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < end, "condition never became true"
        await asyncio.sleep(0.002)


def spawn(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    return asyncio.get_running_loop().create_task(coro)


def test_same_size_requests_batch_and_match_a_batch_of_one(backend: Backend) -> None:
    imgs, seen = images(4), Recorder()

    async def body(b: Batcher) -> list[Any]:
        return await asyncio.gather(*(b.submit(i) for i in imgs))

    results = run(backend, body, seen, max_batch_size=4, max_delay_ms=500)
    assert seen.sizes == [4] and len(seen.waits) == 4
    for img, res in zip(imgs, results, strict=True):
        alone = backend.infer(img[None])
        assert res.batch_size == 4 and res.num_patches == alone.num_patches
        assert res.inference_s > 0 and res.queue_wait_s >= 0
        assert np.abs(res.alpha - alone.alpha[0]).max() <= 1e-5
        assert np.abs(res.foreground - alone.foreground[0]).max() <= 1e-5


def test_mixed_sizes_in_one_bucket_are_padded_and_cropped(backend: Backend) -> None:
    sizes = [(48, 64), (40, 60), (64, 33)]  # all in the (64, 64) bucket
    imgs = [images(1, h, w, seed=i)[0] for i, (h, w) in enumerate(sizes)]
    wrapped, seen = Wrapped(backend), Recorder()

    async def body(b: Batcher) -> list[Any]:
        return await asyncio.gather(*(b.submit(i) for i in imgs))

    results = run(wrapped, body, seen, max_batch_size=8, max_delay_ms=200)
    assert seen.sizes == [3] and [c.shape for c in wrapped.calls] == [(3, 64, 64, 3)]
    # The reference: the same edge padding by hand, one backend call, cropped.
    padded = np.stack(
        [np.pad(i, ((0, 64 - i.shape[0]), (0, 64 - i.shape[1]), (0, 0)), "edge") for i in imgs]
    )
    ref = backend.infer(padded)
    for k, ((h, w), res) in enumerate(zip(sizes, results, strict=True)):
        assert res.alpha.shape == (h, w) and res.foreground.shape == (h, w, 3)
        assert res.alpha.dtype == np.float32 and res.batch_size == 3
        assert np.abs(res.alpha - ref.alpha[k, :h, :w]).max() <= 1e-5
        assert np.abs(res.foreground - ref.foreground[k, :h, :w]).max() <= 1e-5


def test_different_buckets_run_apart_oldest_first(backend: Backend) -> None:
    small, large = images(2, 48, 64), images(2, 96, 64, seed=1)  # buckets 64x64, 128x64
    wrapped, seen = Wrapped(backend), Recorder()

    async def body(b: Batcher) -> list[Any]:
        order = [small[0], large[0], small[1], large[1]]
        return await asyncio.gather(*(b.submit(i) for i in order))

    results = run(wrapped, body, seen, max_batch_size=8, max_delay_ms=100)
    assert seen.sizes == [2, 2]
    assert [c.shape[:3] for c in wrapped.calls] == [(2, 48, 64), (2, 96, 64)]
    assert [r.alpha.shape for r in results] == [(48, 64), (96, 64), (48, 64), (96, 64)]


def test_max_batch_size_one_never_batches(backend: Backend) -> None:
    seen = Recorder()

    async def body(b: Batcher) -> list[Any]:
        return await asyncio.gather(*(b.submit(i) for i in images(3)))

    results = run(backend, body, seen, max_batch_size=1, max_delay_ms=100)
    assert seen.sizes == [1, 1, 1] and all(r.batch_size == 1 for r in results)


def test_full_queue_answers_retry_after(backend: Backend) -> None:
    wrapped = Wrapped(backend)
    wrapped.gate.clear()
    imgs = images(4)

    async def body(b: Batcher) -> None:
        try:
            first = spawn(b.submit(imgs[0]))
            await until(lambda: b.in_flight == 1)
            queued = [spawn(b.submit(i)) for i in imgs[1:3]]
            await until(lambda: b.depth == 2)
            with pytest.raises(QueueFullError) as err:
                await b.submit(imgs[3])
            assert isinstance(err.value.retry_after_s, int) and err.value.retry_after_s >= 1
        finally:
            wrapped.gate.set()
        await asyncio.gather(first, *queued)
        assert b.depth == 0 and not wrapped.saw(imgs[3])

    run(wrapped, body, max_batch_size=1, max_queue=2)


def test_deadline_passes_in_queue_and_the_image_never_runs(backend: Backend) -> None:
    wrapped = Wrapped(backend)
    wrapped.gate.clear()
    held, late, after = images(3)

    async def body(b: Batcher) -> None:
        try:
            first = spawn(b.submit(held))
            await until(lambda: b.in_flight == 1)
            start = time.monotonic()
            with pytest.raises(DeadlineExceededError, match="queue"):
                await b.submit(late, deadline_s=0.1)
            assert time.monotonic() - start < 2 and b.depth == 0
        finally:
            wrapped.gate.set()
        await first
        assert (await b.submit(after)).alpha.shape == (48, 64)
        assert not wrapped.saw(late) and wrapped.saw(after)

    run(wrapped, body, max_batch_size=1)


def test_deadline_passes_during_inference(backend: Backend) -> None:
    wrapped = Wrapped(backend)
    wrapped.gate.clear()
    slow, after = images(2)

    async def body(b: Batcher) -> None:
        try:
            with pytest.raises(DeadlineExceededError, match="inference"):
                await b.submit(slow, deadline_s=0.2)
            assert wrapped.saw(slow) and b.in_flight == 1  # the batch goes on
        finally:
            wrapped.gate.set()
        await until(lambda: b.in_flight == 0)
        assert (await b.submit(after)).batch_size == 1

    run(wrapped, body, max_batch_size=1)


def test_cancelled_submit_leaves_no_queue_entry(backend: Backend) -> None:
    wrapped = Wrapped(backend)
    wrapped.gate.clear()
    held, gone, after = images(3)

    async def body(b: Batcher) -> None:
        try:
            first = spawn(b.submit(held))
            await until(lambda: b.in_flight == 1)
            task = spawn(b.submit(gone))
            await until(lambda: b.depth == 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert b.depth == 0
        finally:
            wrapped.gate.set()
        await first
        await b.submit(after)
        assert not wrapped.saw(gone)

    run(wrapped, body, max_batch_size=1)


def test_backend_error_reaches_the_whole_batch_and_the_next_batch_works(
    backend: Backend,
) -> None:
    wrapped, seen = Wrapped(backend), Recorder()
    wrapped.fail = RuntimeError("boom")
    imgs = images(3)

    async def body(b: Batcher) -> None:
        got = await asyncio.gather(*(b.submit(i) for i in imgs[:2]), return_exceptions=True)
        assert all(isinstance(e, InferenceError) and "boom" in str(e) for e in got), got
        wrapped.fail = InputError("as is")
        with pytest.raises(InputError, match="as is"):
            await b.submit(imgs[2])
        wrapped.fail = None
        assert (await b.submit(imgs[2])).alpha.shape == (48, 64)

    run(wrapped, body, seen, max_batch_size=2, max_delay_ms=500)
    assert [c.shape[0] for c in wrapped.calls] == [2, 1, 1] and seen.sizes == [1]


def test_stop_with_drain_finishes_queued_work(backend: Backend) -> None:
    wrapped = Wrapped(backend)
    wrapped.gate.clear()
    imgs = images(4)

    async def main() -> None:
        b = Batcher(wrapped, BatcherConfig(max_batch_size=1))
        await b.start()
        tasks = [spawn(b.submit(imgs[0]))]
        await until(lambda: b.in_flight == 1)
        tasks += [spawn(b.submit(i)) for i in imgs[1:3]]
        await until(lambda: b.depth == 2)
        stopping = spawn(b.stop(drain=True, timeout_s=10))
        await asyncio.sleep(0.01)
        with pytest.raises(ServiceClosedError):
            await b.submit(imgs[3])
        wrapped.gate.set()
        await stopping
        results = [t.result() for t in tasks]  # all done before stop returned
        assert [r.alpha.shape for r in results] == [(48, 64)] * 3
        with pytest.raises(ServiceClosedError):
            await b.submit(imgs[3])

    try:
        asyncio.run(main())
    finally:
        wrapped.gate.set()
    assert len(wrapped.calls) == 3


def test_stop_without_drain_fails_queued_work(backend: Backend) -> None:
    wrapped = Wrapped(backend)
    wrapped.gate.clear()
    imgs = images(3)

    async def main() -> None:
        b = Batcher(wrapped, BatcherConfig(max_batch_size=1))
        await b.start()
        first = spawn(b.submit(imgs[0]))
        await until(lambda: b.in_flight == 1)
        queued = [spawn(b.submit(i)) for i in imgs[1:]]
        await until(lambda: b.depth == 2)
        stopping = spawn(b.stop(drain=False, timeout_s=10))
        got = await asyncio.gather(*queued, return_exceptions=True)
        assert all(isinstance(e, ServiceClosedError) for e in got), got
        assert not stopping.done()  # still waiting for the batch in flight
        wrapped.gate.set()
        await stopping
        assert first.result().alpha.shape == (48, 64)

    try:
        asyncio.run(main())
    finally:
        wrapped.gate.set()
    assert len(wrapped.calls) == 1


def test_bad_inputs_are_refused(backend: Backend, bg_backend: Backend) -> None:
    img = images(1)[0]

    async def plain(b: Batcher) -> None:
        bad: list[tuple[Any, Any, str]] = [
            (img.astype(np.float32), None, "uint8"),
            (img[..., 0], None, "uint8"),
            (np.zeros((48, 64, 4), np.uint8), None, "uint8"),
            ([[0, 0, 0]], None, "uint8"),
            (img, img, "without a background"),
        ]
        for image, background, match in bad:
            with pytest.raises(InputError, match=match):
                await b.submit(image, background)
        assert b.depth == 0

    async def with_bg(b: Batcher) -> None:
        with pytest.raises(InputError, match="needs a background"):
            await b.submit(img)
        with pytest.raises(InputError, match="background must be"):
            await b.submit(img, img[:40])
        with pytest.raises(InputError, match="background must be"):
            await b.submit(img, img.astype(np.float32))
        res = await b.submit(img, img[::-1].copy())
        assert res.alpha.shape == (48, 64)

    run(backend, plain)
    run(bg_backend, with_bg)
    assert issubclass(QueueFullError, MattingError)


@pytest.mark.parametrize(("delay_ms", "sizes"), [(2000, [2]), (0, [1, 1])])
def test_first_request_waits_max_delay_for_company(
    backend: Backend, delay_ms: float, sizes: list[int]
) -> None:
    seen, (a, b2) = Recorder(), images(2)

    async def body(b: Batcher) -> None:
        first = spawn(b.submit(a))
        await asyncio.sleep(0.05)
        await asyncio.gather(first, b.submit(b2))

    start = time.monotonic()
    run(backend, body, seen, max_batch_size=2, max_delay_ms=delay_ms)
    assert seen.sizes == sizes and time.monotonic() - start < 1.5  # a full batch goes at once
