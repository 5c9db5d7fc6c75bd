"""Wiring video jobs from settings: the queue (on MATTING_REDIS_URL, or on an embedded
redis-server), the storage, the worker backend, and in-process workers for `matting serve`.

The embedded Redis is the same code path as an external one: a real redis-server on a
loopback port, with AOF on, under storage_dir/redis. Only where it comes from differs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry

from matting.runtime import Backend
from service.jobs.metrics import WorkerMetrics
from service.jobs.queue import JobQueue
from service.jobs.redis_server import EmbeddedRedis
from service.jobs.storage import LocalStorage
from service.jobs.worker import Worker
from service.settings import Settings

log = logging.getLogger("matting.jobs")
Log = Callable[[str], None]


def open_queue(settings: Settings) -> tuple[JobQueue, EmbeddedRedis | None]:
    """The job queue the settings name; starts an embedded Redis when no URL is set."""
    embedded = None
    if settings.redis_url is None:
        embedded = EmbeddedRedis(settings.storage_dir / "redis")
        embedded.start()
        url = embedded.url
    else:
        url = settings.redis_url.get_secret_value()
    queue = JobQueue.from_url(
        url,
        settings.redis_prefix,
        max_deliveries=settings.max_deliveries,
        heartbeat_ttl_s=settings.heartbeat_ttl_s,
    )
    try:
        queue.ensure_group()
    except Exception:
        if embedded is not None:
            embedded.stop()
        raise
    return queue, embedded


def open_storage(settings: Settings) -> LocalStorage:
    return LocalStorage(settings.storage_dir / "objects")


def load_worker_backend(settings: Settings, log: Log = log.info) -> Backend:
    """A backend for video: PyTorch where the model is a checkpoint (it can limit refinement
    to the patches that changed), else whatever the service would run."""
    from matting.inference import default_checkpoint
    from matting.runtime.torch_backend import TorchBackend
    from service.model import load_service_backend

    model = Path(settings.model) if settings.model else default_checkpoint()
    if settings.backend in ("auto", "torch") and model.suffix == ".safetensors":
        return TorchBackend(
            model, device=settings.device, precision=settings.precision, tta=settings.tta
        )
    log("the worker's backend cannot skip unchanged patches; temporal sparsity only carries over")
    return load_service_backend(settings, log)


@dataclass
class JobsRuntime:
    """The queue, storage and in-process workers of one `matting serve`."""

    settings: Settings
    queue: JobQueue
    storage: LocalStorage
    redis: EmbeddedRedis | None = None
    workers: list[Worker] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    @classmethod
    def open(cls, settings: Settings) -> JobsRuntime:
        queue, embedded = open_queue(settings)
        return cls(settings, queue, open_storage(settings), embedded)

    @property
    def worker_count(self) -> int:
        s = self.settings
        return s.workers if s.workers is not None else (1 if self.redis is not None else 0)

    def start_workers(self, backend: Backend, registry: CollectorRegistry) -> None:
        if not self.worker_count:
            return
        metrics = WorkerMetrics(registry)
        for i in range(self.worker_count):
            worker = Worker(self.queue, self.storage, backend, metrics=metrics)
            thread = threading.Thread(target=worker.run, name=f"job-worker-{i}", daemon=True)
            self.workers.append(worker)
            self.threads.append(thread)
            thread.start()
            log.info("job worker %s started", worker.name)

    def stop_workers(self) -> None:
        """Ask the workers to stop after their current chunk; returns at once."""
        for worker in self.workers:
            worker.stop()

    def close(self, timeout_s: float = 300.0) -> None:
        """Stop workers after their current chunk (their jobs go back to the queue), waiting
        up to timeout_s for all of them together, then the embedded Redis."""
        self.stop_workers()
        deadline = time.monotonic() + timeout_s
        for thread in self.threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        busy = [t.name for t in self.threads if t.is_alive()]
        if busy:
            # Their chunk in hand is lost; the job resumes at its last recorded chunk once
            # the worker's heartbeat lapses.
            log.warning("job workers %s still busy after %.0f s; leaving them", busy, timeout_s)
        if self.redis is not None:
            self.redis.stop()
