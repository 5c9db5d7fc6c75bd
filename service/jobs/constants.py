"""Redis key names and the queue's default timings, in one place (arq keeps its keys the same way).

Every key starts with a prefix (default "matting") so that several deployments, or the tests,
can share one Redis. For Redis Cluster, use a prefix with a hash tag such as "{matting}": the
Lua scripts touch the stream and job keys together, so they must live in one slot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_PREFIX = "matting"

# Timings. A worker refreshes its heartbeat every HEARTBEAT_INTERVAL_S from a thread of its own,
# so one slow chunk never lets it look dead; a worker silent for HEARTBEAT_TTL_S is dead.
HEARTBEAT_TTL_S = 15.0
HEARTBEAT_INTERVAL_S = 5.0
JOB_TTL_S = 7 * 24 * 3600  # how long a finished job (and an idempotency key) stays readable
MAX_DELIVERIES = 3  # deliveries of one job before it goes to the dead-letter stream
BACKOFF_BASE_S = 5.0  # retry n waits BACKOFF_BASE_S * 2**(n-1), capped
BACKOFF_CAP_S = 300.0
CLAIM_BLOCK_MS = 5_000  # how long claim_next waits for new work
STREAM_MAXLEN = 10_000  # jobs waiting or running at once; submit answers "full" beyond
DEAD_LETTER_MAXLEN = 10_000  # dead letters kept (approximate trim; the job hash keeps its error)
IDEMPOTENCY_KEY_MAX_CHARS = 256
ERROR_MAX_CHARS = 2_000  # a traceback is for the logs; the job hash keeps a readable message

STREAM_FIELD_JOB = "job"  # the one field of a jobs stream entry: the job id

_PREFIX_RE = re.compile(r"[A-Za-z0-9_.{}-]{1,64}")
# Worker names become parts of key names and consumer names: no spaces, no colons.
WORKER_NAME_RE = re.compile(r"[A-Za-z0-9_.@-]{1,128}")


@dataclass(frozen=True)
class Keys:
    """The names of every Redis key, stream and group the job queue uses under one prefix."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not _PREFIX_RE.fullmatch(self.prefix):
            raise ValueError(
                f"key prefix {self.prefix!r} must be 1-64 letters, digits, '_', '.', '-', '{{}}'"
            )

    @property
    def stream(self) -> str:
        """The jobs stream: one entry {job: id} per submitted job."""
        return f"{self.prefix}:jobs"

    @property
    def group(self) -> str:
        """The consumer group every worker reads the jobs stream through."""
        return f"{self.prefix}:workers"

    @property
    def dead_letter(self) -> str:
        """Jobs that failed for good: {job, error, deliveries, worker, at}."""
        return f"{self.prefix}:jobs:dead"

    @property
    def job_prefix(self) -> str:
        return f"{self.prefix}:job:"

    def job(self, job_id: str) -> str:
        """The hash holding a job's state and progress."""
        return f"{self.job_prefix}{job_id}"

    def idempotency(self, digest: str) -> str:
        """Maps the sha256 of a client's idempotency key to the job it created."""
        return f"{self.prefix}:idem:{digest}"

    def worker(self, name: str) -> str:
        """A worker's heartbeat; it expires when the worker stops refreshing it."""
        return f"{self.prefix}:worker:{name}"

    def cancel(self, job_id: str) -> str:
        """Set when a running job is to be cancelled; the worker sees it at its next chunk."""
        return f"{self.prefix}:cancel:{job_id}"
