"""A worker's heartbeat, refreshed from a daemon thread."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from service.jobs import constants as C
from service.jobs.errors import QueueUnavailableError

if TYPE_CHECKING:
    from service.jobs.queue import JobQueue

log = logging.getLogger(__name__)


class Heartbeat:
    """Refreshes a worker's heartbeat from a daemon thread, so that a chunk that takes longer
    than the TTL does not make a live worker look dead. Use as a context manager."""

    def __init__(self, queue: JobQueue, worker: str, interval_s: float | None = None) -> None:
        if interval_s is None:  # a third of the TTL: two beats may be lost before it lapses
            interval_s = min(C.HEARTBEAT_INTERVAL_S, queue.heartbeat_ttl_s / 3)
        if interval_s >= queue.heartbeat_ttl_s:
            raise ValueError("the heartbeat interval must be shorter than its TTL")
        self._queue, self._worker, self._interval_s = queue, worker, interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        self._queue.heartbeat(self._worker)
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-{self._worker}", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._interval_s + 5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._queue.heartbeat(self._worker)
            except QueueUnavailableError as exc:  # keep trying; Redis may come back
                log.warning("heartbeat of %s failed: %s", self._worker, exc)
