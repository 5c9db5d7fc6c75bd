"""Video jobs on a Redis stream with a consumer group: at-least-once, resumable, dead-lettered.

The life of a job:
  submit -> one job hash (state queued) + one stream entry {job: id}
  claim_next -> the entry is pending for one worker (its delivery count goes up by one)
  start -> running; progress per chunk records the resume point (chunks_done)
  succeed -> succeeded, acked; fail -> pending again after a backoff, or dead-lettered
A worker whose heartbeat lapses loses its pending entry to the next claim_next, which resumes
from chunks_done. Every state change that reads before it writes runs as one Lua script, so two
workers (or a worker and a cancel) never interleave inside one. Delivery is at-least-once: a
chunk may be processed twice (after a crash, or by a worker that lost its claim and has not yet
noticed at its next progress call), so chunk outputs must be written idempotently (same name,
overwrite).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import redis

from service.jobs import constants as C
from service.jobs.errors import (
    ClaimLostError,
    JobCancelledError,
    JobInterruptedError,
    JobNotFoundError,
    JobQueueFullError,
    QueueUnavailableError,
)
from service.jobs.schema import (
    Job,
    JobState,
    encode_options,
    is_job_id,
    new_job_id,
)
from service.jobs.scripts import (
    CANCEL,
    CLAIM_PENDING,
    FINISH,
    PROGRESS,
    PRUNE_CONSUMER,
    SETTLE,
    START,
    SUBMIT,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    """One delivery of a job to one worker; pass it back to start, succeed and fail."""

    entry_id: str
    job: Job
    deliveries: int  # 1 on the first delivery
    worker: str

    @property
    def tries(self) -> int:
        """Deliveries that were tries: hand-backs by workers shutting down do not count. The
        job is dead-lettered past max_deliveries tries."""
        return max(1, self.deliveries - self.job.releases)


def backoff_s(deliveries: int, base_s: float, cap_s: float) -> float:
    """Wait before redelivering a job that failed on delivery number `deliveries` (>= 1)."""
    return float(min(cap_s, base_s * 2.0 ** max(0, deliveries - 1)))


def new_worker_name() -> str:
    """A unique worker name (host, pid, random): a restarted worker must not reuse the old one."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:64] or "host"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def redis_url(client: redis.Redis) -> str:
    """Where a client points, for error messages (never includes a password)."""
    kw = client.connection_pool.connection_kwargs
    if kw.get("path"):
        return f"unix://{kw['path']}"
    return f"redis://{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"


# --- the queue --------------------------------------------------------------------------------
class JobQueue:
    """Submit, claim, report on and cancel video jobs in one Redis.

    The client may use decode_responses or not. Its socket timeout must exceed claim_next's
    block_ms (from_url sees to that). Methods raise QueueUnavailableError when Redis is down.
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = C.DEFAULT_PREFIX,
        *,
        heartbeat_ttl_s: float = C.HEARTBEAT_TTL_S,
        job_ttl_s: int = C.JOB_TTL_S,
        max_deliveries: int = C.MAX_DELIVERIES,
        backoff_base_s: float = C.BACKOFF_BASE_S,
        backoff_cap_s: float = C.BACKOFF_CAP_S,
        stream_maxlen: int = C.STREAM_MAXLEN,
        dead_letter_maxlen: int = C.DEAD_LETTER_MAXLEN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if heartbeat_ttl_s <= 0 or job_ttl_s <= 0 or max_deliveries < 1 or stream_maxlen < 1:
            raise ValueError("TTLs, max_deliveries and stream_maxlen must be positive")
        self._r = client
        self.keys = C.Keys(prefix)
        self.url = redis_url(client)
        self.heartbeat_ttl_s = heartbeat_ttl_s
        self.job_ttl_s = int(job_ttl_s)
        self.max_deliveries = max_deliveries
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.stream_maxlen = stream_maxlen
        self.dead_letter_maxlen = dead_letter_maxlen
        self._clock = clock
        # register_script only hashes the text; Redis sees a script on its first call.
        self._submit = client.register_script(SUBMIT)
        self._claim_pending = client.register_script(CLAIM_PENDING)
        self._settle = client.register_script(SETTLE)
        self._start = client.register_script(START)
        self._progress = client.register_script(PROGRESS)
        self._finish = client.register_script(FINISH)
        self._cancel = client.register_script(CANCEL)
        self._prune = client.register_script(PRUNE_CONSUMER)

    @classmethod
    def from_url(cls, url: str, prefix: str = C.DEFAULT_PREFIX, **kwargs: Any) -> JobQueue:
        """A queue on a new client whose timeouts suit claim_next's default block."""
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=5,
            socket_timeout=C.CLAIM_BLOCK_MS / 1000 + 10,
            health_check_interval=30,
        )
        return cls(client, prefix, **kwargs)

    def with_timeouts(self, connect_s: float, read_s: float) -> JobQueue:
        """The same queue on a new client that gives up after these timeouts, without
        retries (for metrics scrapes, which must answer fast whatever Redis does)."""
        kwargs = dict(self._r.connection_pool.connection_kwargs)
        kwargs.update(socket_connect_timeout=connect_s, socket_timeout=read_s, retry=None)
        kwargs.pop("retry_on_error", None)
        pool = redis.ConnectionPool(
            connection_class=self._r.connection_pool.connection_class, **kwargs
        )
        return JobQueue(
            redis.Redis(connection_pool=pool),
            self.keys.prefix,
            heartbeat_ttl_s=self.heartbeat_ttl_s,
            job_ttl_s=self.job_ttl_s,
            max_deliveries=self.max_deliveries,
        )

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise QueueUnavailableError(
                f"the job queue's Redis at {self.url} is unavailable: {exc}"
            ) from exc

    # --- setup and submission ---------------------------------------------------------------
    def ensure_group(self) -> None:
        """Create the jobs stream and its consumer group if missing (safe to call often)."""
        with self._guard():
            self._ensure_group()

    def _ensure_group(self) -> None:
        try:
            # From id 0, so jobs submitted before the group existed are delivered too.
            self._r.xgroup_create(self.keys.stream, self.keys.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def submit(
        self,
        input_location: str,
        options: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Queue a job, or return the job an earlier submit with the same key created.

        Without a client key, pass a content hash of the input and options as the key to make
        resubmitting the same upload harmless. Raises JobQueueFullError when the stream is full.
        """
        if not isinstance(input_location, str) or not input_location:
            raise ValueError("input_location must be a non-empty storage name")
        try:
            encode_options(options or {})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"job options must be a JSON object: {exc}") from exc
        now = self._clock()
        job = Job(
            id=new_job_id(),
            state=JobState.QUEUED,
            created_at=now,
            updated_at=now,
            input_location=input_location,
            options=dict(options or {}),
        )
        keys = [self.keys.job(job.id), self.keys.stream]
        if idempotency_key is not None:
            keys.append(self.keys.idempotency(_idempotency_digest(idempotency_key)))
        fields = {k: v for k, v in job.to_hash().items() if k != "entry_id"}
        args: list[str | int] = [
            job.id,
            self.job_ttl_s,
            self.stream_maxlen,
            self.keys.job_prefix,
            *_flat(fields),
        ]
        with self._guard():
            for attempt in range(2):
                job_id_raw, created = self._submit(keys=keys, args=args)
                if created != -1:
                    break
                if attempt == 0:
                    self._trim()  # acked entries may be all that fills it
            else:
                raise JobQueueFullError(
                    f"the job queue is full ({self.stream_maxlen} jobs waiting or running); "
                    "try again later"
                )
            found = self._get(_s(job_id_raw))
        if found is None:
            raise JobNotFoundError(f"job {_s(job_id_raw)} vanished right after submission")
        return found

    # --- worker side ------------------------------------------------------------------------
    def heartbeat(self, worker: str) -> None:
        """Mark `worker` alive for heartbeat_ttl_s. Call it every HEARTBEAT_INTERVAL_S."""
        _check_worker(worker)
        with self._guard():
            self._r.set(
                self.keys.worker(worker),
                repr(self._clock()),
                px=max(1, int(self.heartbeat_ttl_s * 1000)),
            )

    def claim_next(
        self, worker: str, block_ms: int = C.CLAIM_BLOCK_MS, *, holds_none: bool = False
    ) -> Claim | None:
        """The next job for `worker`: first one a dead worker left or whose backoff is over,
        then a new one, waiting up to block_ms (0: do not wait). None when there is none.

        holds_none: the caller holds no claim, so entries pending under its own name are
        deliveries it never received (a reply lost to a dropped connection or a Redis
        restart); they are taken back first instead of waiting for a heartbeat that never
        lapses while the worker lives.
        """
        _check_worker(worker)
        deadline = time.monotonic() + max(0, block_ms) / 1000
        with self._guard():
            self.heartbeat(worker)  # a claimer must look alive, or others could take its claim
            try:
                return self._claim_next(worker, deadline, holds_none)
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                self._ensure_group()  # the stream was deleted (FLUSHALL, a lost AOF)
                return self._claim_next(worker, deadline, holds_none)

    def _claim_next(self, worker: str, deadline: float, holds_none: bool) -> Claim | None:
        claim = self._claim_abandoned(worker, holds_none)
        if claim is not None:
            return claim
        while True:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            entry = self._read_new(worker, remaining_ms)
            if entry is None:
                return None
            claim = self._accept(entry[0], entry[1], worker, deliveries=1)
            if claim is not None:
                return claim

    def _read_new(self, worker: str, block_ms: int) -> tuple[str, str] | None:
        """(entry id, job id) of the next never-delivered entry, now pending for `worker`."""
        reply = self._r.xreadgroup(
            self.keys.group,
            worker,
            {self.keys.stream: ">"},
            count=1,
            block=block_ms if block_ms > 0 else None,  # BLOCK 0 would wait forever
        )
        entries = _stream_entries(reply)
        if not entries:
            return None
        entry_id, fields = entries[0]
        return entry_id, fields.get(C.STREAM_FIELD_JOB, "")

    def _pending(self) -> Iterator[list[dict[str, Any]]]:
        """The group's pending entries (id, owner, idle, deliveries), a page at a time."""
        start = "-"
        while True:
            page = self._r.xpending_range(self.keys.stream, self.keys.group, start, "+", 100)
            if not page:
                return
            yield page
            if len(page) < 100:
                return
            start = "(" + _s(page[-1]["message_id"])

    def _claim_abandoned(self, worker: str, holds_none: bool = False) -> Claim | None:
        """Take over an entry whose worker died or whose retry backoff is over, oldest first.

        XAUTOCLAIM picks entries by idle time alone and would take one from a live worker busy
        with a long chunk, so the owner's heartbeat is checked first and the claim is an XCLAIM
        of that one id, with MIN-IDLE so that two claimers cannot both win.
        """
        now = self._clock()
        min_idle_ms = int(self.heartbeat_ttl_s * 1000)
        for page in self._pending():
            ids = [_s(p["message_id"]) for p in page]
            owners = [_s(p["consumer"]) for p in page]
            pipe = self._r.pipeline(transaction=False)
            for entry_id, owner in zip(ids, owners, strict=True):
                pipe.xrange(self.keys.stream, entry_id, entry_id)
                pipe.exists(self.keys.worker(owner))
            replies = pipe.execute()
            job_ids: list[str] = []
            for i, entry_id in enumerate(ids):
                found = _stream_entries([[self.keys.stream, replies[2 * i]]])
                job_ids.append(found[0][1].get(C.STREAM_FIELD_JOB, "") if found else "")
                if not found:  # deleted from the stream while pending: nothing left to run
                    self._r.xack(self.keys.stream, self.keys.group, entry_id)
            pipe = self._r.pipeline(transaction=False)
            for job_id in job_ids:
                pipe.hget(self.keys.job(job_id), "retry_at")
            retry_ats = pipe.execute()
            for i, p in enumerate(page):
                if not job_ids[i]:
                    continue
                retry_at = _s(retry_ats[i]) if retry_ats[i] is not None else ""
                # A cheap first look; the script decides again, atomically.
                if retry_at:
                    if float(retry_at) > now:
                        continue
                elif not (holds_none and owners[i] == worker) and (
                    replies[2 * i + 1] or int(p["time_since_delivered"]) < min_idle_ms
                ):
                    continue  # a live worker holds it
                orphan = holds_none and owners[i] == worker
                claim = self._take_over(
                    ids[i], owners[i], job_ids[i], worker, min_idle_ms, now, orphan
                )
                if claim is not None:
                    return claim
        return None

    def _take_over(
        self,
        entry_id: str,
        owner: str,
        job_id: str,
        worker: str,
        min_idle_ms: int,
        now: float,
        orphan: bool = False,
    ) -> Claim | None:
        deliveries = int(
            self._claim_pending(
                keys=[self.keys.stream, self.keys.worker(owner), self.keys.job(job_id)],
                args=[self.keys.group, worker, entry_id, min_idle_ms, repr(now), int(orphan)],
            )
        )
        return self._accept(entry_id, job_id, worker, deliveries) if deliveries > 0 else None

    def _accept(self, entry_id: str, job_id: str, worker: str, deliveries: int) -> Claim | None:
        """A Claim for a delivered entry, or None after acking one that needs no work."""
        if not is_job_id(job_id):
            log.warning("acking stream entry %s with no valid job id (%r)", entry_id, job_id)
            self._r.xack(self.keys.stream, self.keys.group, entry_id)
            return None
        reply = self._settle(
            keys=[self.keys.job(job_id), self.keys.cancel(job_id), self.keys.stream],
            args=[self.keys.group, entry_id, worker, repr(self._clock()), self.job_ttl_s],
        )
        if _s(reply[0]) != "ok":
            return None
        job = Job.from_hash(_pairs(reply[1]), self.keys.job(job_id))
        claim = Claim(entry_id=entry_id, job=job, deliveries=deliveries, worker=worker)
        if claim.tries > self.max_deliveries:
            # Its workers kept dying without a word (OOM, a crash on this input): stop here.
            last = f"; last error: {job.error}" if job.error else ""
            error = (
                f"gave up on try {claim.tries}: the workers before stopped without "
                f"finishing it (crashed, killed or lost their heartbeat){last}"
            )
            with suppress(JobInterruptedError):  # cancelled or taken meanwhile: not ours
                self._end(claim, "dead", error=error[: C.ERROR_MAX_CHARS])
            return None
        return claim

    def start(self, claim: Claim) -> Job:
        """Mark the claimed job running. JobCancelledError / ClaimLostError: skip it."""
        with self._guard():
            reply = self._start(
                keys=self._job_keys(claim.job.id),
                args=[
                    self.keys.group,
                    claim.entry_id,
                    claim.worker,
                    claim.tries,
                    repr(self._clock()),
                    self.job_ttl_s,
                ],
            )
        return self._job_or_raise(reply, claim.job.id)

    def progress(
        self,
        job_id: str,
        chunks_done: int,
        frames_done: int,
        frames_total: int | None = None,
        eta_s: float | None = None,
        *,
        worker: str | None = None,
    ) -> None:
        """Record the resume point after a chunk is stored, atomically with the progress.

        Raises JobCancelledError when a cancel was requested (the job is then already marked
        cancelled), ClaimLostError when `worker` (if given) no longer holds the job.
        """
        if min(chunks_done, frames_done) < 0 or (frames_total is not None and frames_total < 0):
            raise ValueError("chunk and frame counts must not be negative")
        if eta_s is not None and not (math.isfinite(eta_s) and eta_s >= 0):
            raise ValueError(f"eta_s must be a finite number >= 0, not {eta_s}")
        fraction = min(1.0, frames_done / frames_total) if frames_total else 0.0
        now = self._clock()
        fields = {
            "chunks_done": str(chunks_done),
            "frames_done": str(frames_done),
            "frames_total": "" if frames_total is None else str(frames_total),
            "progress": repr(fraction),
            "eta_s": "" if eta_s is None else repr(float(eta_s)),
            "updated_at": repr(now),
        }
        with self._guard():
            status = _s(
                self._progress(
                    keys=self._job_keys(job_id),
                    args=[self.keys.group, worker or "", repr(now), self.job_ttl_s, *_flat(fields)],
                )
            )
        if status != "ok":
            raise _interruption(status, job_id)

    def succeed(self, claim: Claim, output_location: str) -> Job:
        """Mark the job succeeded with its output, ack it, start its hash's TTL."""
        if not output_location:
            raise ValueError("output_location must be a non-empty storage name")
        with self._guard():
            return self._end(claim, "succeed", output_location=output_location)

    def fail(self, claim: Claim, error: str, retryable: bool = True) -> Job:
        """Record a failure. Retryable and deliveries left: redelivered after a backoff (the
        entry stays pending). Otherwise: failed, dead-lettered, acked. A pending cancel request
        turns a retry into cancelled."""
        error = (error or "unknown error")[: C.ERROR_MAX_CHARS]
        with self._guard():
            if retryable and claim.tries < self.max_deliveries:
                wait = backoff_s(claim.tries, self.backoff_base_s, self.backoff_cap_s)
                return self._end(claim, "retry", error=error, retry_at=self._clock() + wait)
            return self._end(claim, "dead", error=error)

    def release(self, claim: Claim) -> Job:
        """Hand a job back unfinished (a worker shutting down): any worker may take it at once
        and resumes from chunks_done. The hand-back does not count as a try, so rolling
        restarts never dead-letter a long job."""
        with self._guard():
            return self._end(claim, "release", retry_at=self._clock())

    def _end(
        self,
        claim: Claim,
        mode: str,
        *,
        error: str = "",
        retry_at: float = 0.0,
        output_location: str = "",
    ) -> Job:
        reply = self._finish(
            keys=[*self._job_keys(claim.job.id), self.keys.dead_letter],
            args=[
                self.keys.group,
                claim.worker,
                repr(self._clock()),
                self.job_ttl_s,
                mode,
                repr(retry_at),
                error,
                claim.deliveries,
                self.dead_letter_maxlen,
                output_location,
            ],
        )
        if mode == "retry" and _s(reply[0]) == "cancelled":
            job = self._get(claim.job.id)  # the cancel request won; that is an outcome, too
            if job is not None:
                return job
        return self._job_or_raise(reply, claim.job.id)

    # --- client side ------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        """The job, or None for an unknown (or malformed, or expired) id."""
        with self._guard():
            return self._get(job_id)

    def _get(self, job_id: str) -> Job | None:
        if not is_job_id(job_id):
            return None
        raw = self._r.hgetall(self.keys.job(job_id))
        return Job.from_hash(raw, self.keys.job(job_id)) if raw else None

    def referenced_objects(self) -> set[str]:
        """Every storage name a job hash still points to (its input, output and background
        image): what a storage sweep must keep. One SCAN over the job hashes."""
        names: set[str] = set()
        with self._guard():
            keys = [
                k
                for k in self._r.scan_iter(match=f"{self.keys.job_prefix}*", count=500)
                if is_job_id(_s(k).removeprefix(self.keys.job_prefix))
            ]
            pipe = self._r.pipeline(transaction=False)
            for key in keys:
                pipe.hmget(key, "input_location", "output_location", "options")
            for values in pipe.execute():
                inp, out, options = (_s(v) if v is not None else "" for v in values)
                names.update(n for n in (inp, out) if n)
                with suppress(ValueError, AttributeError):
                    image = json.loads(options).get("background_image")
                    if isinstance(image, str) and image:
                        names.add(image)
        return names

    def cancel(self, job_id: str) -> Job:
        """Cancel a job: a queued one at once (it is never delivered), a running one at its
        worker's next progress call. A finished job is returned unchanged."""
        if not is_job_id(job_id):
            raise JobNotFoundError(f"no job {job_id[:64]!r}")
        with self._guard():
            reply = self._cancel(
                keys=self._job_keys(job_id),
                args=[self.keys.group, repr(self._clock()), self.job_ttl_s],
            )
        if not reply:
            raise JobNotFoundError(f"no job {job_id}")
        return Job.from_hash(_pairs(reply), self.keys.job(job_id))

    def stats(self) -> dict[str, int]:
        """Stream length, waiting (never delivered), pending (delivered, not acked), dead
        letters and consumers."""
        with self._guard():
            pipe = self._r.pipeline(transaction=False)
            pipe.xlen(self.keys.stream)
            pipe.xlen(self.keys.dead_letter)
            stream_len, dead_len = pipe.execute()
            group = self._group_info()
            return {
                "stream_length": int(stream_len),
                "waiting": self._waiting(group, int(stream_len)),
                "pending": int(group.get("pending", 0)) if group else 0,
                "dead_letter_length": int(dead_len),
                "consumers": int(group.get("consumers", 0)) if group else 0,
            }

    def dead_letters(self, count: int = 100) -> list[dict[str, str]]:
        """The newest dead letters: {id, job, error, deliveries, worker, at}."""
        with self._guard():
            reply = self._r.xrevrange(self.keys.dead_letter, "+", "-", count=count)
        return [
            {"id": entry_id, **fields}
            for entry_id, fields in _stream_entries([[self.keys.dead_letter, reply]])
        ]

    def trim(self) -> int:
        """Drop stream entries that are delivered and acked, and forget dead consumers that
        hold nothing. Returns the number of entries dropped. Never drops a waiting or pending
        job, which a plain MAXLEN trim would do to a long backlog."""
        with self._guard():
            return self._trim()

    def _trim(self) -> int:
        group = self._group_info()
        if group is None:
            return 0  # without the group nothing tells delivered from waiting
        oldest_pending = self._r.xpending(self.keys.stream, self.keys.group).get("min")
        if oldest_pending:
            min_id = _s(oldest_pending)
        else:
            ms, seq = _s(group["last-delivered-id"]).split("-")
            min_id = f"{ms}-{int(seq) + 1}"  # everything up to the last delivery is acked
        removed = int(self._r.xtrim(self.keys.stream, minid=min_id, approximate=False))
        for consumer in self._r.xinfo_consumers(self.keys.stream, self.keys.group):
            if int(consumer["pending"]) == 0:
                name = _s(consumer["name"])
                self._prune(
                    keys=[self.keys.stream, self.keys.worker(name)],
                    args=[self.keys.group, name],
                )
        return removed

    def _waiting(self, group: dict[str, Any] | None, stream_len: int) -> int:
        if group is None:
            return stream_len
        if group.get("lag") is not None:  # Redis >= 7 counts it for us
            return int(group["lag"])
        last = _s(group["last-delivered-id"])
        entries = self._r.xrange(self.keys.stream, f"({last}", "+", count=self.stream_maxlen)
        return len(entries or [])

    def _group_info(self) -> dict[str, Any] | None:
        try:
            groups = self._r.xinfo_groups(self.keys.stream)
        except redis.ResponseError:
            return None  # no stream yet
        for g in groups:
            if _s(g["name"]) == self.keys.group:
                return dict(g)
        return None

    def _job_keys(self, job_id: str) -> list[str]:
        return [self.keys.job(job_id), self.keys.cancel(job_id), self.keys.stream]

    def _job_or_raise(self, reply: Sequence[Any], job_id: str) -> Job:
        status = _s(reply[0])
        if status != "ok":
            raise _interruption(status, job_id)
        return Job.from_hash(_pairs(reply[1]), self.keys.job(job_id))


# --- helpers ----------------------------------------------------------------------------------
def _interruption(status: str, job_id: str) -> JobInterruptedError:
    if status == "cancelled":
        return JobCancelledError(f"job {job_id} was cancelled")
    if status == "gone":
        return ClaimLostError(f"job {job_id} no longer exists")
    return ClaimLostError(f"job {job_id} is held by another worker or already finished")


def _idempotency_digest(key: str) -> str:
    if not isinstance(key, str) or not key or len(key) > C.IDEMPOTENCY_KEY_MAX_CHARS:
        raise ValueError(
            f"an idempotency key must be 1 to {C.IDEMPOTENCY_KEY_MAX_CHARS} characters"
        )
    # Hashed, so that any client string makes a short, safe key name.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _check_worker(worker: str) -> None:
    if not C.WORKER_NAME_RE.fullmatch(worker):
        raise ValueError(f"worker name {worker!r} must match {C.WORKER_NAME_RE.pattern}")


def _s(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _flat(fields: Mapping[str, str]) -> list[str]:
    return [item for pair in fields.items() for item in pair]


def _pairs(flat: Sequence[Any]) -> dict[str, str]:
    """A Lua HGETALL reply (a flat list) as a dict of strings."""
    return {_s(flat[i]): _s(flat[i + 1]) for i in range(0, len(flat), 2)}


def _stream_entries(reply: Any) -> list[tuple[str, dict[str, str]]]:
    """[(entry id, fields)] from an XREADGROUP reply (RESP2 list or RESP3 dict) or from
    [[stream, XRANGE reply]]."""
    if not reply:
        return []
    streams = reply.values() if isinstance(reply, dict) else [item[1] for item in reply]
    out: list[tuple[str, dict[str, str]]] = []
    for entries in streams:
        for entry in entries or []:
            entry_id, fields = entry[0], entry[1]
            if fields is None:  # deleted while pending (Redis 6.2 still lists it)
                continue
            if not isinstance(fields, dict):
                fields = _pairs(fields)
            out.append((_s(entry_id), {_s(k): _s(v) for k, v in fields.items()}))
    return out
