"""Prometheus metrics of video jobs: worker-side counts and speeds, and queue gauges that
are read from Redis when scraped (so every API replica reports the same numbers)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from service import constants as c
from service.jobs.errors import QueueUnavailableError
from service.jobs.queue import JobQueue

log = logging.getLogger(__name__)

# A job runs from seconds (a short clip on a GPU) to hours (a long 4K film on a CPU).
_JOB_SECONDS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.finished = Counter(
            c.METRIC_JOBS_FINISHED,
            "Job runs that ended, by outcome (retry: failed, will be redelivered)",
            ["outcome"],
            registry=r,
        )
        self.duration = Histogram(
            c.METRIC_JOB_SECONDS,
            "Wall time of one worker's run of a job, by outcome",
            ["outcome"],
            buckets=_JOB_SECONDS,
            registry=r,
        )
        self.frames = Counter(c.METRIC_JOB_FRAMES, "Video frames matted", registry=r)
        self.fps = Gauge(
            c.METRIC_JOB_FPS,
            "Frames per second of the last chunk (decode, model, encode)",
            registry=r,
        )
        self.cells = Counter(
            c.METRIC_JOB_PATCHES,
            "Patch cells of matted frames: all of them, and those the refiner ran on",
            ["kind"],
            registry=r,
        )


class QueueCollector(Collector):
    """Waiting (not yet delivered), pending (delivered, not finished) and dead-lettered jobs,
    read from Redis at scrape time. A Redis that is down yields no samples, not an error."""

    def __init__(self, queue: JobQueue) -> None:
        # A client of its own with short timeouts: a scrape (a worker's liveness probe) must
        # answer within seconds even when Redis hangs, or the pod is killed mid-chunk.
        self.queue = queue.with_timeouts(connect_s=1.0, read_s=2.0)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            c.METRIC_JOBS_QUEUE, "Jobs in the queue by kind", labels=["kind"]
        )
        try:
            stats = self.queue.stats()
        except QueueUnavailableError as exc:
            log.warning("job queue metrics unavailable: %s", exc)
            yield family
            return
        family.add_metric(["waiting"], stats["waiting"])
        family.add_metric(["pending"], stats["pending"])
        family.add_metric(["dead_letter"], stats["dead_letter_length"])
        family.add_metric(["consumers"], stats["consumers"])
        yield family
