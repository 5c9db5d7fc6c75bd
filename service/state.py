"""What one app instance holds: settings, metrics, and once loaded, the backend
and its batcher."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import anyio
from prometheus_client import Counter

from matting.imageio import ImageLimits
from matting.runtime import Backend
from service.batcher import Batcher
from service.jobs.runtime import JobsRuntime
from service.metrics import Metrics
from service.settings import Settings


@dataclass
class ServiceState:
    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    keys: list[bytes] = field(default_factory=list)
    backend: Backend | None = None
    batcher: Batcher | None = None
    ready: bool = False
    load_error: str | None = None
    # Decode and encode threads, made in the lifespan (they need a loop). Two pools:
    # a finished batch's encodes must not hold up the decodes that fill the next.
    decode_limiter: anyio.CapacityLimiter | None = None
    encode_limiter: anyio.CapacityLimiter | None = None
    loop: asyncio.AbstractEventLoop | None = None  # the server's, for calls from other threads
    # Video jobs: the queue, storage and in-process workers (None: off, or failed to open)
    jobs: JobsRuntime | None = None
    jobs_error: str | None = None
    job_metrics: Counter | None = None  # jobs submitted

    @property
    def limits(self) -> ImageLimits:
        s = self.settings
        return ImageLimits(
            max_bytes=s.max_request_bytes, max_pixels=s.max_pixels, max_side=s.max_side
        )
