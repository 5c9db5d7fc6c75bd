"""The job queue against a real redis-server: delivery, takeover, retries, cancel, persistence."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from service.jobs.errors import (
    ClaimLostError,
    JobCancelledError,
    JobNotFoundError,
    JobQueueFullError,
    QueueUnavailableError,
)
from service.jobs.heartbeat import Heartbeat
from service.jobs.queue import Claim, JobQueue, backoff_s
from service.jobs.redis_server import EmbeddedRedis
from service.jobs.schema import Job, JobState, MalformedJobError, is_job_id
from tests.service.jobs.conftest import make_client, make_queue


def _job_hashes(client: redis.Redis, q: JobQueue) -> list[str]:
    return [k for k in client.scan_iter(f"{q.keys.prefix}:job:*") if len(str(k).split(":")) == 3]


def _pending(client: redis.Redis, q: JobQueue) -> int:
    return int(client.xpending(q.keys.stream, q.keys.group)["pending"])


def _claim(q: JobQueue, worker: str) -> Claim:
    claim = q.claim_next(worker, block_ms=0)
    assert claim is not None, f"{worker} got no job"
    return claim


def _kill(client: redis.Redis, q: JobQueue, worker: str) -> None:
    """A worker dies: its heartbeat goes, then its entry must sit idle for one TTL."""
    client.delete(q.keys.worker(worker))
    time.sleep(q.heartbeat_ttl_s + 0.05)


@pytest.mark.parametrize("decode", [True, False], ids=["str-client", "bytes-client"])
def test_round_trip_and_ttl_after_finish(redis_server: EmbeddedRedis, decode: bool) -> None:
    client = make_client(redis_server.url, decode=decode)
    client.flushall()
    q = make_queue(client)
    job = q.submit("uploads/a.mp4", {"format": "mov", "composite": False})
    assert is_job_id(job.id) and job.state is JobState.QUEUED
    assert job.options == {"format": "mov", "composite": False} and job.entry_id

    claim = _claim(q, "w1")
    assert (claim.job.id, claim.deliveries, claim.entry_id) == (job.id, 1, job.entry_id)
    running = q.start(claim)
    assert (running.state, running.worker, running.attempts) == (JobState.RUNNING, "w1", 1)

    q.progress(job.id, 2, 48, 96, 3.5, worker="w1")
    mid = q.get(job.id)
    assert mid is not None
    assert (mid.chunks_done, mid.frames_done, mid.frames_total) == (2, 48, 96)
    assert (mid.progress, mid.eta_s) == (0.5, 3.5)
    assert client.ttl(q.keys.job(job.id)) == -1  # no TTL while the job is live

    done = q.succeed(claim, "results/a.mov")
    assert done.state is JobState.SUCCEEDED and done.output_location == "results/a.mov"
    assert done.progress == 1.0 and done.error is None and done.finished_at is not None
    assert 0 < client.ttl(q.keys.job(job.id)) <= q.job_ttl_s
    raw = client.hgetall(q.keys.job(job.id))
    assert Job.from_hash(raw) == done
    assert _pending(client, q) == 0
    assert q.claim_next("w1", block_ms=0) is None
    assert q.stats()["pending"] == 0
    client.close()


def test_claim_blocks_until_a_job_arrives(queue: JobQueue) -> None:
    started = time.monotonic()
    assert queue.claim_next("w1", block_ms=200) is None
    assert time.monotonic() - started >= 0.15
    timer = threading.Timer(0.2, lambda: queue.submit("uploads/late.mp4"))
    timer.start()
    claim = queue.claim_next("w1", block_ms=5000)
    timer.join()
    assert claim is not None and claim.job.input_location == "uploads/late.mp4"


def test_idempotent_submit_same_key(client: redis.Redis, queue: JobQueue) -> None:
    first = queue.submit("uploads/a.mp4", {"format": "webm"}, idempotency_key="client-key-1")
    again = queue.submit("uploads/a.mp4", {"format": "webm"}, idempotency_key="client-key-1")
    assert again.id == first.id
    assert client.xlen(queue.keys.stream) == 1 and len(_job_hashes(client, queue)) == 1
    other = queue.submit("uploads/a.mp4", idempotency_key="client-key-2")
    keyless = [queue.submit("uploads/a.mp4").id for _ in range(2)]
    assert len({first.id, other.id, *keyless}) == 4
    assert client.xlen(queue.keys.stream) == 4


def test_a_repeat_of_a_failed_or_cancelled_job_runs_anew(queue: JobQueue) -> None:
    first = queue.submit("uploads/a.mp4", idempotency_key="k")
    assert queue.cancel(first.id).state is JobState.CANCELLED
    second = queue.submit("uploads/b.mp4", idempotency_key="k")
    assert second.id != first.id and second.state is JobState.QUEUED
    claim = _claim(queue, "w1")
    queue.start(claim)
    queue.fail(claim, "broken", retryable=False)
    third = queue.submit("uploads/c.mp4", idempotency_key="k")
    assert third.id not in (first.id, second.id)
    claim = _claim(queue, "w1")
    queue.start(claim)
    queue.succeed(claim, "results/c.webm")
    # A success is the answer: repeats get it back.
    assert queue.submit("uploads/d.mp4", idempotency_key="k").id == third.id


def test_idempotent_submit_concurrent(client: redis.Redis, queue: JobQueue) -> None:
    barrier = threading.Barrier(8)

    def submit(_: int) -> str:
        barrier.wait()
        return queue.submit("uploads/b.mp4", idempotency_key="sha256:abc").id

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(submit, range(8)))
    assert len(ids) == 1
    assert client.xlen(queue.keys.stream) == 1 and len(_job_hashes(client, queue)) == 1


def test_submit_rejects_bad_input(queue: JobQueue) -> None:
    with pytest.raises(ValueError, match="input_location"):
        queue.submit("")
    with pytest.raises(ValueError, match="JSON"):
        queue.submit("uploads/a.mp4", {"bad": {1, 2}})
    with pytest.raises(ValueError, match="idempotency key"):
        queue.submit("uploads/a.mp4", idempotency_key="k" * 1000)
    with pytest.raises(ValueError, match="worker name"):
        queue.claim_next("bad name with spaces", block_ms=0)


def test_live_worker_keeps_its_job_dead_worker_loses_it(
    client: redis.Redis, queue: JobQueue
) -> None:
    job = queue.submit("uploads/long.mp4")
    claim = _claim(queue, "w1")
    queue.start(claim)
    queue.progress(job.id, 3, 72, 240, worker="w1")

    with Heartbeat(queue, "w1", interval_s=0.2):
        time.sleep(queue.heartbeat_ttl_s + 0.3)  # the entry is idle past the TTL...
        [pending] = client.xpending_range(queue.keys.stream, queue.keys.group, "-", "+", 10)
        assert int(pending["time_since_delivered"]) > queue.heartbeat_ttl_s * 1000
        assert queue.claim_next("w2", block_ms=0) is None  # ...but its worker is alive
    assert queue.get(job.id).worker == "w1"  # type: ignore[union-attr]

    deadline = time.monotonic() + 5  # now w1 stops beating; its heartbeat lapses
    while client.exists(queue.keys.worker("w1")) and time.monotonic() < deadline:
        time.sleep(0.05)
    taken = _claim(queue, "w2")
    assert (taken.job.id, taken.deliveries, taken.entry_id) == (job.id, 2, claim.entry_id)
    assert taken.job.chunks_done == 3 and taken.job.frames_done == 72  # the resume point
    resumed = queue.start(taken)
    assert (resumed.worker, resumed.attempts, resumed.chunks_done) == ("w2", 2, 3)

    # The old worker, back from its pause, is fenced off at its next call.
    with pytest.raises(ClaimLostError):
        queue.progress(job.id, 4, 96, 240, worker="w1")
    with pytest.raises(ClaimLostError):
        queue.succeed(claim, "results/stale.mov")
    assert queue.succeed(taken, "results/long.mov").state is JobState.SUCCEEDED
    assert _pending(client, queue) == 0


def test_two_claimers_race_for_an_abandoned_job(client: redis.Redis, queue: JobQueue) -> None:
    queue.submit("uploads/a.mp4")
    _claim(queue, "w0")
    _kill(client, queue, "w0")
    barrier = threading.Barrier(4)

    def claim(i: int) -> Claim | None:
        barrier.wait()
        return queue.claim_next(f"racer{i}", block_ms=0)

    with ThreadPoolExecutor(4) as pool:
        winners = [c for c in pool.map(claim, range(4)) if c is not None]
    assert len(winners) == 1 and winners[0].deliveries == 2


def test_new_jobs_are_delivered_once(client: redis.Redis, queue: JobQueue) -> None:
    submitted = {queue.submit(f"uploads/{i}.mp4").id for i in range(12)}

    def drain(i: int) -> list[str]:
        got = []
        while (c := queue.claim_next(f"w{i}", block_ms=0)) is not None:
            got.append(c.job.id)
        return got

    with ThreadPoolExecutor(4) as pool:
        delivered = [job_id for ids in pool.map(drain, range(4)) for job_id in ids]
    assert sorted(delivered) == sorted(submitted)


def test_retry_with_backoff_then_dead_letter(client: redis.Redis) -> None:
    now = [1_000.0]
    q = make_queue(client, backoff_base_s=10.0, backoff_cap_s=15.0, clock=lambda: now[0])
    job = q.submit("uploads/bad.mp4")
    for delivery, wait in ((1, 10.0), (2, 15.0)):
        claim = _claim(q, "w1")
        assert claim.deliveries == delivery
        q.start(claim)
        failed = q.fail(claim, f"decode error {delivery}")
        assert failed.state is JobState.QUEUED and failed.error == f"decode error {delivery}"
        assert failed.retry_at == now[0] + wait
        assert _pending(client, q) == 1  # still pending, not acked: nothing is lost
        now[0] += wait - 0.5
        assert q.claim_next("w1", block_ms=0) is None  # the backoff is respected...
        assert q.claim_next("w2", block_ms=0) is None
        now[0] += 0.5  # ...and over
    claim = _claim(q, "w2")
    assert claim.deliveries == 3 and claim.job.error == "decode error 2"
    q.start(claim)
    final = q.fail(claim, "decode error 3")
    assert final.state is JobState.FAILED and final.error == "decode error 3"
    assert final.retry_at is None and 0 < client.ttl(q.keys.job(job.id)) <= q.job_ttl_s
    assert _pending(client, q) == 0 and q.claim_next("w1", block_ms=0) is None
    [letter] = q.dead_letters()
    assert (letter["job"], letter["error"], letter["deliveries"]) == (
        job.id,
        "decode error 3",
        "3",
    )
    assert letter["worker"] == "w2" and q.stats()["dead_letter_length"] == 1


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff_s(n, 5.0, 30.0) for n in (1, 2, 3, 4, 5)] == [5.0, 10.0, 20.0, 30.0, 30.0]


def test_non_retryable_failure_goes_straight_to_dead_letter(
    client: redis.Redis, queue: JobQueue
) -> None:
    job = queue.submit("uploads/corrupt.mp4")
    claim = _claim(queue, "w1")
    queue.start(claim)
    failed = queue.fail(claim, "not a video", retryable=False)
    assert failed.state is JobState.FAILED and failed.error == "not a video"
    assert queue.dead_letters()[0]["job"] == job.id and _pending(client, queue) == 0


def test_workers_that_keep_dying_dead_letter_the_job(client: redis.Redis) -> None:
    q = make_queue(client, heartbeat_ttl_s=0.3, max_deliveries=2)
    job = q.submit("uploads/oom.mp4")
    for delivery, worker in ((1, "w1"), (2, "w2")):
        claim = _claim(q, worker)
        assert claim.deliveries == delivery
        q.start(claim)
        _kill(client, q, worker)
    assert q.claim_next("w3", block_ms=0) is None
    dead = q.get(job.id)
    assert dead is not None and dead.state is JobState.FAILED
    assert dead.error is not None and "gave up on try 3" in dead.error
    assert q.dead_letters()[0]["job"] == job.id and _pending(client, q) == 0


def test_release_hands_the_job_over_at_once(client: redis.Redis, queue: JobQueue) -> None:
    job = queue.submit("uploads/a.mp4")
    claim = _claim(queue, "w1")
    queue.start(claim)
    queue.progress(job.id, 5, 120, worker="w1")
    queue.heartbeat("w1")  # w1 stays alive: it is shutting down, not dead
    released = queue.release(claim)
    assert released.state is JobState.QUEUED and released.error is None
    taken = _claim(queue, "w2")
    assert taken.job.chunks_done == 5 and taken.deliveries == 2


def test_hand_backs_are_not_tries(client: redis.Redis) -> None:
    """Rolling restarts hand a long job back again and again; it must never dead-letter."""
    q = make_queue(client, max_deliveries=2)
    job = q.submit("uploads/long.mp4")
    for n in range(1, 5):
        claim = _claim(q, f"w{n}")
        assert (claim.deliveries, claim.tries) == (n, 1)
        assert q.start(claim).attempts == 1
        q.progress(job.id, n, 24 * n, worker=f"w{n}")
        q.heartbeat(f"w{n}")
        assert q.release(claim).state is JobState.QUEUED
    claim = _claim(q, "w9")
    assert claim.job.releases == 4 and claim.job.chunks_done == 4
    q.start(claim)
    assert q.fail(claim, "a real failure").state is JobState.QUEUED  # try 1 of 2: retried
    assert q.get(job.id).state is JobState.QUEUED  # type: ignore[union-attr]


def test_a_worker_gets_back_a_delivery_it_never_received(
    client: redis.Redis, queue: JobQueue
) -> None:
    """XREADGROUP delivered the entry to w1, but the reply was lost: w1 is alive and idle, so
    the entry is an orphan in its own pending list, which only w1 may and must pick up."""
    job = queue.submit("uploads/a.mp4")
    queue.heartbeat("w1")
    client.xreadgroup(queue.keys.group, "w1", {queue.keys.stream: ">"}, count=1)
    assert _pending(client, queue) == 1
    assert queue.claim_next("w2", block_ms=0) is None  # w1's heartbeat is alive
    assert queue.claim_next("w1", block_ms=0) is None  # w1 may hold it: it does not say
    claim = queue.claim_next("w1", block_ms=0, holds_none=True)
    assert claim is not None
    assert claim.job.id == job.id and claim.deliveries == 2
    assert queue.start(claim).state is JobState.RUNNING


def test_cancel_queued_job_is_never_delivered(client: redis.Redis, queue: JobQueue) -> None:
    job = queue.submit("uploads/a.mp4")
    cancelled = queue.cancel(job.id)
    assert cancelled.state is JobState.CANCELLED and cancelled.finished_at is not None
    assert 0 < client.ttl(queue.keys.job(job.id)) <= queue.job_ttl_s
    assert queue.claim_next("w1", block_ms=0) is None
    assert client.xlen(queue.keys.stream) == 0 and _pending(client, queue) == 0
    assert queue.cancel(job.id).state is JobState.CANCELLED  # again: a no-op


def test_cancel_between_claim_and_start(client: redis.Redis, queue: JobQueue) -> None:
    job = queue.submit("uploads/a.mp4")
    claim = _claim(queue, "w1")
    assert queue.cancel(job.id).state is JobState.CANCELLED
    with pytest.raises(JobCancelledError):
        queue.start(claim)
    assert _pending(client, queue) == 0


def test_cancel_running_job_stops_at_next_progress(client: redis.Redis, queue: JobQueue) -> None:
    job = queue.submit("uploads/a.mp4")
    claim = _claim(queue, "w1")
    queue.start(claim)
    queue.progress(job.id, 1, 24, 240, worker="w1")
    asked = queue.cancel(job.id)
    assert asked.state is JobState.RUNNING  # the worker has not seen it yet
    with pytest.raises(JobCancelledError):
        queue.progress(job.id, 2, 48, 240, worker="w1")
    after = queue.get(job.id)
    assert after is not None and after.state is JobState.CANCELLED and after.chunks_done == 1
    assert _pending(client, queue) == 0 and not client.exists(queue.keys.cancel(job.id))
    assert 0 < client.ttl(queue.keys.job(job.id)) <= queue.job_ttl_s
    assert queue.claim_next("w1", block_ms=0) is None


def test_cancel_running_job_whose_worker_died(client: redis.Redis) -> None:
    q = make_queue(client, heartbeat_ttl_s=0.3)
    job = q.submit("uploads/a.mp4")
    q.start(_claim(q, "w1"))
    q.cancel(job.id)
    _kill(client, q, "w1")
    assert q.claim_next("w2", block_ms=0) is None  # taken over only to be closed
    after = q.get(job.id)
    assert after is not None and after.state is JobState.CANCELLED
    assert _pending(client, q) == 0


def test_cancel_finished_or_unknown(queue: JobQueue) -> None:
    job = queue.submit("uploads/a.mp4")
    claim = _claim(queue, "w1")
    queue.start(claim)
    queue.succeed(claim, "results/a.mov")
    assert queue.cancel(job.id).state is JobState.SUCCEEDED
    with pytest.raises(JobNotFoundError):
        queue.cancel("0" * 32)
    with pytest.raises(JobNotFoundError):
        queue.cancel("../../etc")
    assert queue.get("../../etc") is None and queue.get("0" * 32) is None


def test_jobs_survive_a_restart_through_the_aof(fresh_server: EmbeddedRedis) -> None:
    client = make_client(fresh_server.url)
    q = make_queue(client)
    ids = [q.submit(f"uploads/{i}.mp4").id for i in range(5)]
    done = _claim(q, "w1")
    q.start(done)
    q.succeed(done, "results/0.mov")
    running = _claim(q, "w1")
    q.start(running)
    q.progress(running.job.id, 2, 48, worker="w1")
    pid = fresh_server.pid

    fresh_server.restart()
    assert fresh_server.pid != pid
    client.close()
    client = make_client(fresh_server.url)
    q = make_queue(client)
    states = {job_id: q.get(job_id).state for job_id in ids}  # type: ignore[union-attr]
    assert list(states.values()).count(JobState.QUEUED) == 3
    assert states[done.job.id] is JobState.SUCCEEDED
    assert states[running.job.id] is JobState.RUNNING

    client.delete(q.keys.worker("w1"))  # w1 did not survive the outage
    time.sleep(q.heartbeat_ttl_s + 0.05)
    claimed = {_claim(q, "w2").job.id for _ in range(4)}
    assert claimed == set(ids) - {done.job.id}
    resumed = q.get(running.job.id)
    assert resumed is not None and resumed.chunks_done == 2
    client.close()


def test_redis_gone_raises_queue_unavailable(fresh_server: EmbeddedRedis) -> None:
    client = make_client(fresh_server.url)
    q = make_queue(client)
    job = q.submit("uploads/a.mp4")
    fresh_server.stop()
    port = fresh_server.port
    for call in (
        lambda: q.submit("uploads/b.mp4"),
        lambda: q.get(job.id),
        lambda: q.claim_next("w1", block_ms=0),
        lambda: q.cancel(job.id),
        q.stats,
    ):
        with pytest.raises(QueueUnavailableError, match=rf"redis://127\.0\.0\.1:{port}/0"):
            call()
    client.close()


def test_stream_stays_bounded(client: redis.Redis) -> None:
    q = make_queue(client, stream_maxlen=4)
    for round_ in range(3):  # finished jobs' entries are trimmed to make room
        for i in range(4):
            q.submit(f"uploads/{round_}-{i}.mp4")
        for _ in range(4):
            claim = _claim(q, "w1")
            q.start(claim)
            q.succeed(claim, "results/x.mov")
        assert client.xlen(q.keys.stream) <= 4
    waiting = [q.submit(f"uploads/wait-{i}.mp4", idempotency_key=f"k{i}") for i in range(4)]
    with pytest.raises(JobQueueFullError, match="full"):
        q.submit("uploads/one-too-many.mp4")
    again = q.submit("uploads/wait-0.mp4", idempotency_key="k0")  # known key: answered, not full
    assert again.id == waiting[0].id
    held = _claim(q, "w1")
    assert q.trim() == 0  # nothing waiting or pending is ever dropped
    assert client.xlen(q.keys.stream) == 4
    q.start(held)
    q.succeed(held, "results/x.mov")
    assert q.trim() == 1 and client.xlen(q.keys.stream) == 3
    claimed = {_claim(q, "w1").job.id for _ in range(3)}
    assert claimed == {job.id for job in waiting[1:]}


def test_trim_forgets_dead_consumers_only(client: redis.Redis, queue: JobQueue) -> None:
    for worker in ("alive", "dead"):
        queue.submit("uploads/a.mp4")
        claim = _claim(queue, worker)
        queue.start(claim)
        queue.succeed(claim, "results/a.mov")
    client.delete(queue.keys.worker("dead"))
    queue.trim()
    names = {c["name"] for c in client.xinfo_consumers(queue.keys.stream, queue.keys.group)}
    assert names == {"alive"} and queue.stats()["consumers"] == 1


def test_malformed_job_hash_is_a_clear_error(client: redis.Redis, queue: JobQueue) -> None:
    job = queue.submit("uploads/a.mp4")
    client.hset(queue.keys.job(job.id), "state", "exploded")
    with pytest.raises(MalformedJobError, match="'state'"):
        queue.get(job.id)
    client.hset(queue.keys.job(job.id), "state", "queued")
    client.hdel(queue.keys.job(job.id), "created_at")
    with pytest.raises(MalformedJobError, match="'created_at' is missing"):
        Job.from_hash(client.hgetall(queue.keys.job(job.id)))
    for field, value in (("chunks_done", "-1"), ("options", "[1]"), ("progress", "2")):
        good = job.to_hash()
        good[field] = value
        with pytest.raises(MalformedJobError, match=field):
            Job.from_hash(good)
