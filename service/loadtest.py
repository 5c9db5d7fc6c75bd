"""A bounded, loopback-only load generator for the real matting server.

    python -m service.loadtest --compare-batching --clients 16 --size 512 --requests 2000

By default it starts `matting serve` as a subprocess on a free loopback port (and
stops it at the end); `--url` targets a server that is already running, but only
on a loopback address, so this cannot be pointed at someone else's service.
Latency is measured by the client over loopback HTTP, so it includes the upload,
JPEG decode, queueing, inference, PNG encode and the download.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

TIMING_PARTS = ("decode", "queue", "infer", "encode", "total")
WHAT = (
    "Latency is client-side over loopback HTTP: upload, JPEG decode, queue, inference, "
    "output encode and download. Server-Timing medians come from the server's headers."
)


def loopback_url(url: str) -> str:
    """The URL without a trailing slash; ValueError unless it names a loopback host."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"{url!r} is not an http(s) URL")
    try:
        ok = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name other than localhost: resolving it could leave the machine
        ok = False
    if not ok:
        raise ValueError(f"refusing {host}: the load test only targets loopback addresses")
    return url.rstrip("/")


def make_images(size: int, count: int = 4, seed: int = 0) -> list[bytes]:
    """Distinct JPEGs: a smooth colour field with a textured ellipse "subject"
    (flat noise would make JPEG decode and the refiner's work unrealistic)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        field = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        img = Image.fromarray(field).resize((size, size), Image.Resampling.BICUBIC)
        draw = ImageDraw.Draw(img)
        cx, cy = rng.uniform(0.35, 0.65, 2) * size
        rx, ry = rng.uniform(0.15, 0.3) * size, rng.uniform(0.25, 0.4) * size
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=color)
        img = img.filter(ImageFilter.GaussianBlur(size / 256))
        noisy = np.asarray(img, np.int16) + rng.normal(0, 6, (size, size, 3)).astype(np.int16)
        buf = io.BytesIO()
        Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def memory_mib(pid: int) -> dict[str, float]:
    """Peak (VmHWM) and current (VmRSS) resident memory of a process, in MiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            found[key] = int(value.split()[0]) / 1024  # kB
    return found


class Server:
    """`matting serve` in a subprocess on a free loopback port; its log goes to a file."""

    def __init__(self, env: dict[str, str], start_timeout_s: float) -> None:
        with socket.socket() as s:  # a free port; the tiny race with other binders is fine
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        fd, self.log = tempfile.mkstemp(prefix="matting-serve-", suffix=".log")
        cmd = [sys.executable, "-m", "matting.cli", "serve", "--host", "127.0.0.1"]
        with os.fdopen(fd, "wb") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [*cmd, "--port", str(self.port)], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            self._wait_ready(start_timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}):\n{self.tail()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return
                live = httpx.get(f"{self.url}/livez", timeout=5)
                if live.status_code == 503:  # loading failed: waiting will not help
                    raise RuntimeError(f"the server failed to load: {live.text}\n{self.tail()}")
            time.sleep(0.5)
        raise RuntimeError(f"the server was not ready after {timeout_s:g} s:\n{self.tail()}")

    def tail(self, lines: int = 20) -> str:
        text = Path(self.log).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # graceful: uvicorn drains in-flight work
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        Path(self.log).unlink(missing_ok=True)


async def drive(
    url: str,
    images: list[bytes],
    args: argparse.Namespace,
    label: str,
    pid: int | None = None,
) -> dict[str, Any]:
    """Run the warm-up, then the measured load; -> the report for one server."""
    latencies: list[float] = []
    batch_sizes: list[int] = []
    timings: dict[str, list[float]] = {k: [] for k in TIMING_PARTS}
    errors: Counter[str] = Counter()
    memory: list[dict[str, Any]] = []
    checkpoints = sorted(args.memory_checkpoints) if pid else []
    params = {"output": args.output, "format": args.format}
    headers = {"Content-Type": "image/jpeg"}
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)

    def record(r: httpx.Response | None, status: str, ms: float) -> None:
        if r is not None and r.status_code == 200:
            latencies.append(ms)
            batch_sizes.append(int(r.headers.get("X-Matting-Batch-Size", 0)))
            for part in r.headers.get("Server-Timing", "").split(","):
                name, _, dur = part.strip().partition(";dur=")
                if name in timings:
                    timings[name].append(float(dur))
        else:
            errors[status] += 1
        done = len(latencies) + sum(errors.values())
        while pid and checkpoints and done >= checkpoints[0]:
            memory.append({"after": checkpoints.pop(0), **memory_mib(pid)})
        if done % args.progress_every == 0:
            rate, failed = done / (time.monotonic() - t0), sum(errors.values())
            msg = f"{done}/{args.requests} requests, {rate:.2f} req/s, {failed} errors"
            print(f"[{label}] {msg}", file=sys.stderr, flush=True)

    async def worker(
        client: httpx.AsyncClient, tickets: Iterator[int], deadline: float, counted: bool
    ) -> None:
        for i in tickets:  # shared by all workers: each ticket is one request
            if time.monotonic() >= deadline:
                return
            start = time.perf_counter()
            try:
                r = await client.post(
                    "/v1/matte", content=images[i % len(images)], params=params, headers=headers
                )
                status = str(r.status_code)
            except httpx.HTTPError as e:  # timeouts, resets: counted, not fatal
                r, status = None, type(e).__name__
            if counted:
                record(r, status, (time.perf_counter() - start) * 1e3)

    async with httpx.AsyncClient(base_url=url, timeout=args.timeout, limits=limits) as client:
        for total, counted in ((args.warmup, False), (args.requests, True)):
            t0, tickets = time.monotonic(), iter(range(total))
            jobs = (
                worker(client, tickets, t0 + args.duration, counted) for _ in range(args.clients)
            )
            await asyncio.gather(*jobs)
        wall = time.monotonic() - t0

    sent = len(latencies) + sum(errors.values())
    lat = np.array(latencies) if latencies else np.array([np.nan])
    p50, p90, p99 = (float(v) for v in np.percentile(lat, [50, 90, 99]))
    return {
        "label": label,
        "completed": len(latencies),
        "errors": dict(errors),
        "stopped_by": "requests" if sent >= args.requests else "duration",
        "wall_s": wall,
        "throughput_rps": len(latencies) / wall if wall > 0 else 0.0,
        "latency_ms": {"p50": p50, "p90": p90, "p99": p99, "max": float(np.max(lat))},
        "mean_batch_size": float(np.mean(batch_sizes)) if batch_sizes else float("nan"),
        "server_timing_median_ms": {
            k: float(np.median(v)) if v else float("nan") for k, v in timings.items()
        },
        "memory_mib": memory + ([{"after": "end", **memory_mib(pid)}] if pid else []),
    }


def table(report: dict[str, Any], args: argparse.Namespace) -> str:
    results = report["results"]
    rows: list[tuple[str, list[str]]] = []

    def row(name: str, cell: Callable[[dict[str, Any]], str]) -> None:
        rows.append((name, [cell(r) for r in results]))

    row("completed (200)", lambda r: str(r["completed"]))
    row("errors", lambda r: ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "none")
    row("stopped by", lambda r: r["stopped_by"])
    row("wall time (s)", lambda r: f"{r['wall_s']:.1f}")
    row("throughput (req/s)", lambda r: f"{r['throughput_rps']:.2f}")

    def pick(part: str, key: str, spec: str) -> Callable[[dict[str, Any]], str]:
        return lambda r: format(r[part][key], spec)

    for p in ("p50", "p90", "p99", "max"):
        row(f"latency {p} (ms)", pick("latency_ms", p, ".0f"))
    row("mean batch size", lambda r: f"{r['mean_batch_size']:.2f}")
    for k in TIMING_PARTS:
        row(f"server {k} p50 (ms)", pick("server_timing_median_ms", k, ".1f"))

    def memory(i: int, key: str) -> Callable[[dict[str, Any]], str]:
        return lambda r: f"{r['memory_mib'][i][key]:.0f}" if i < len(r["memory_mib"]) else "-"

    for i, point in enumerate(results[0]["memory_mib"]):
        row(f"peak RSS @{point['after']} (MiB)", memory(i, "VmHWM"))
        row(f"RSS @{point['after']} (MiB)", memory(i, "VmRSS"))
    head = [
        f"matting load test: {args.clients} clients, {args.size}x{args.size} JPEG -> "
        f"{args.output} {args.format}, {args.requests} requests (+{args.warmup} warm-up) "
        f"or {args.duration:g} s",
        WHAT,
        "",
    ]
    lines = [f"{'':26}" + "".join(f"{r['label']:>18}" for r in results)]
    lines += [f"{name:26}" + "".join(f"{c:>18}" for c in cells) for name, cells in rows]
    if "throughput_ratio_on_off" in report:
        lines.append(f"{'throughput on/off':26}{report['throughput_ratio_on_off']:>36.2f}x")
    return "\n".join(head + lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m service.loadtest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--url", help="a running server on loopback (default: start one)")
    p.add_argument("--model", help="MATTING_MODEL for the started server")
    p.add_argument("--max-batch-size", type=int, help="MATTING_MAX_BATCH_SIZE for the server")
    p.add_argument("--compare-batching", action="store_true", help="max batch size 1, then 8")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--size", type=int, default=512, help="image side in pixels")
    p.add_argument("--requests", type=int, default=400, help="measured requests per run")
    p.add_argument("--duration", type=float, default=300.0, help="seconds per run at most")
    p.add_argument("--warmup", type=int, default=16, help="requests sent first, not counted")
    p.add_argument("--timeout", type=float, default=120.0, help="per-request seconds")
    p.add_argument("--start-timeout", type=float, default=600.0, help="server start seconds")
    p.add_argument("--output", default="rgba", choices=["rgba", "alpha", "foreground"])
    p.add_argument("--format", default="png", choices=["png", "webp"])
    p.add_argument("--memory-checkpoints", default="", help="e.g. 200,2000: read server memory")
    p.add_argument("--progress-every", type=int, default=50)
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    if args.url is not None:
        try:
            args.url = loopback_url(args.url)
        except ValueError as e:
            p.error(str(e))
        if args.compare_batching or args.model or args.max_batch_size or args.memory_checkpoints:
            p.error(
                "--compare-batching, --model, --max-batch-size and --memory-checkpoints "
                "need the server this script starts (leave out --url)"
            )
    if args.compare_batching and args.max_batch_size is not None:
        p.error("--compare-batching sets the max batch size itself (1, then 8)")
    try:
        args.memory_checkpoints = [int(c) for c in args.memory_checkpoints.split(",") if c]
    except ValueError:
        p.error(f"--memory-checkpoints takes counts like 200,2000: {args.memory_checkpoints}")
    if min(args.clients, args.size, args.requests, args.progress_every) < 1 or args.warmup < 0:
        p.error("--clients, --size, --requests and --progress-every must be positive")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    images = make_images(args.size)
    results = []
    if args.url is not None:
        results.append(asyncio.run(drive(args.url, images, args, "as running")))
    else:
        env = dict(os.environ)
        if args.model:
            env["MATTING_MODEL"] = args.model
        sizes = [1, 8] if args.compare_batching else [args.max_batch_size]
        for size in sizes:
            run_env = env if size is None else {**env, "MATTING_MAX_BATCH_SIZE": str(size)}
            label = {None: "server env", 1: "batching off", 8: "batching on"}.get(size, str(size))
            print(f"[{label}] starting the server...", file=sys.stderr, flush=True)
            server = Server(run_env, args.start_timeout)
            try:
                results.append(asyncio.run(drive(server.url, images, args, label, server.proc.pid)))
            finally:
                server.stop()
    report: dict[str, Any] = {"clients": args.clients, "size": args.size, "what": WHAT}
    report["results"] = results
    if len(results) == 2 and results[0]["throughput_rps"] > 0:
        report["throughput_ratio_on_off"] = (
            results[1]["throughput_rps"] / results[0]["throughput_rps"]
        )
    print(table(report, args))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    # A background job ignores SIGINT, so SIGTERM is how it gets stopped: leave through
    # the `finally` that stops the server instead of orphaning it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
