"""A real uvicorn on a loopback port, serving a tiny random model exported to ONNX."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from matting.checkpoint import save_checkpoint
from matting.models.network import build_model
from service.app import create_app
from service.settings import Settings
from service.state import ServiceState
from tests.export.conftest import QUICK_CASES, TINY


@dataclass
class LiveServer:
    url: str
    app: FastAPI
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def state(self) -> ServiceState:
        state: ServiceState = self.app.state.matting
        return state

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)  # type: ignore[arg-type]

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)


def start_server(settings: Settings, wait_ready: bool = True) -> LiveServer:
    """Serve create_app(settings) on 127.0.0.1 (a free port) in a thread."""
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    live = LiveServer(f"http://127.0.0.1:{port}", app, server, thread)
    if wait_ready:
        with live.client() as c:
            while c.get("/readyz").status_code != 200:
                if live.state.load_error or time.monotonic() > deadline:
                    live.stop()
                    raise RuntimeError(f"not ready: {live.state.load_error}")
                time.sleep(0.05)
    return live


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random model exported to ONNX float32 (sparse)."""
    from export.onnx_export import export_onnx

    root = tmp_path_factory.mktemp("service-model")
    checkpoint = root / "tiny.safetensors"
    save_checkpoint(checkpoint, build_model(TINY).eval())
    export_onnx(checkpoint, root / "onnx", precisions=("fp32",), cases=QUICK_CASES)
    return root / "onnx"


def tiny_settings(model: Path, tmp: Path, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "model": str(model),
        "cache_dir": tmp / "cache",
        "warmup_sizes": ["64x64"],
        "max_delay_ms": 2.0,
        # The image tests need no queue; the video tests turn it on.
        "video_jobs": False,
        "storage_dir": tmp / "jobs",
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def live(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The default configuration (auth off) on the tiny model."""
    server = start_server(tiny_settings(tiny_model, tmp_path_factory.mktemp("live")))
    yield server
    server.stop()
