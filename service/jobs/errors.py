"""What the job queue raises; all are MattingErrors, so the HTTP layer can map them."""

from __future__ import annotations

from matting.errors import MattingError


class QueueError(MattingError):
    """Base class of the job queue's errors."""


class QueueUnavailableError(QueueError):
    """Redis cannot be reached (down, restarting, loading its AOF, or timing out): answer 503."""


class JobQueueFullError(QueueError):
    """The jobs stream holds STREAM_MAXLEN jobs that are waiting or running: answer 503."""


class JobNotFoundError(QueueError):
    """No job has this id (never existed, or its hash expired after it finished)."""


class JobInterruptedError(QueueError):
    """The worker must stop working on this job now (it was cancelled or taken over)."""


class JobCancelledError(JobInterruptedError):
    """The job was cancelled; the queue has already marked it cancelled and acked it."""


class ClaimLostError(JobInterruptedError):
    """Another worker owns the job now (this one's heartbeat lapsed), or it already finished."""
