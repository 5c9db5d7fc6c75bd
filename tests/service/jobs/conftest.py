"""A real redis-server per test module (never the system one on 6379), flushed between tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.jobs.queue import JobQueue
from service.jobs.redis_server import EmbeddedRedis


def make_queue(client: redis.Redis, **overrides: Any) -> JobQueue:
    """A queue with short timings, which keep the tests fast; the logic does not depend on them."""
    options: dict[str, Any] = {"heartbeat_ttl_s": 1.0, "backoff_base_s": 0.1, "backoff_cap_s": 0.4}
    options.update(overrides)
    q = JobQueue(client, **options)
    q.ensure_group()
    return q


def make_client(url: str, *, decode: bool = True) -> redis.Redis:
    # No client retries: a test of a dead server should fail at once, not after backoffs.
    return redis.Redis.from_url(
        url, decode_responses=decode, socket_timeout=5, retry=Retry(NoBackoff(), 0)
    )


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A server of the test's own, for tests that restart or stop it."""
    with EmbeddedRedis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def client(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    c = make_client(redis_server.url)
    c.flushall()
    yield c
    c.close()


@pytest.fixture
def queue(client: redis.Redis) -> JobQueue:
    return make_queue(client)
