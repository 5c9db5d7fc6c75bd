"""Queue metrics read from a real redis-server at scrape time, and a scrape that answers fast
when that server hangs (a worker's liveness probe scrapes them)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from service.jobs.metrics import QueueCollector
from service.jobs.queue import JobQueue
from service.jobs.redis_server import EmbeddedRedis


def _scrape(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def test_queue_metrics_and_a_hung_redis(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "redis") as server:
        queue = JobQueue.from_url(server.url)
        queue.ensure_group()
        for i in range(3):
            queue.submit(f"{i:032x}.mp4")
        registry = CollectorRegistry()
        registry.register(QueueCollector(queue))
        text = _scrape(registry)
        assert 'matting_jobs_queue{kind="waiting"} 3.0' in text
        assert server.pid is not None
        os.kill(server.pid, signal.SIGSTOP)  # accepts connections, answers nothing
        try:
            t0 = time.monotonic()
            text = _scrape(registry)
            took = time.monotonic() - t0
        finally:
            os.kill(server.pid, signal.SIGCONT)
        assert took < 4.0, f"a scrape waited {took:.1f} s on a hung Redis"
        assert "matting_jobs_queue{" not in text  # no samples, and no error
        assert 'matting_jobs_queue{kind="waiting"} 3.0' in _scrape(registry)  # back again
