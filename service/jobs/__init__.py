"""Video jobs: a Redis Streams queue (queue.py), the job record (schema.py), key names and
timings (constants.py), and an embedded redis-server for laptops and tests (redis_server.py)."""

from service.jobs.errors import (
    ClaimLostError,
    JobCancelledError,
    JobInterruptedError,
    JobNotFoundError,
    JobQueueFullError,
    QueueError,
    QueueUnavailableError,
)
from service.jobs.heartbeat import Heartbeat
from service.jobs.queue import Claim, JobQueue, new_worker_name
from service.jobs.schema import Job, JobState, MalformedJobError

__all__ = [
    "Claim",
    "ClaimLostError",
    "Heartbeat",
    "Job",
    "JobCancelledError",
    "JobInterruptedError",
    "JobNotFoundError",
    "JobQueue",
    "JobQueueFullError",
    "JobState",
    "MalformedJobError",
    "QueueError",
    "QueueUnavailableError",
    "new_worker_name",
]
