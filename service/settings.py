"""Service settings, read from the environment (prefix MATTING_) once per process.

Every field maps to an upper-case variable: `max_batch_size` is
MATTING_MAX_BATCH_SIZE. Lists (warm-up sizes) are JSON, e.g.
MATTING_WARMUP_SIZES='["512x512", "1920x1080"]'.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from matting.errors import InputError

_SIZE = re.compile(r"^(\d+)x(\d+)$")


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "matting"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MATTING_", extra="ignore")

    # The model: a checkpoint (.safetensors) or an export directory with a
    # manifest. Unset: the shipped default model, exported once to ONNX under
    # cache_dir when it will run on ONNX Runtime.
    model: str | None = None
    backend: Literal["auto", "torch", "onnxruntime", "tensorrt"] = "auto"
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: Literal["auto", "fp32", "fp16"] = "auto"  # auto: fp16 on a GPU
    threads: int | None = Field(None, ge=1)  # ONNX Runtime intra-op threads
    # The model's test-time augmentation (the default model averages mirrored and
    # rescaled coarse passes: x1.0-2.6 the time). False serves one pass; an export
    # directory must then have been exported with --no-tta.
    tta: bool = True
    cache_dir: Path = Field(default_factory=default_cache_dir)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)

    # Dynamic batching
    max_batch_size: int = Field(8, ge=1, le=64)
    max_delay_ms: float = Field(5.0, ge=0, le=1000)
    max_queue: int = Field(64, ge=1)
    bucket: int = Field(64, ge=1)
    # zlib level of PNG answers: 1 costs about a quarter of Pillow's default 6
    # in CPU for a few percent more bytes
    png_level: int = Field(1, ge=0, le=9)
    # Threads that decode and encode images (off the event loop)
    codec_threads: int = Field(default_factory=lambda: max(2, os.cpu_count() or 2), ge=1)
    request_timeout_s: float = Field(60.0, gt=0)  # per-request deadline
    drain_timeout_s: float = Field(30.0, ge=0)  # shutdown waits this long for work

    # Limits on what a request may carry
    max_request_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    max_pixels: int = Field(40_000_000, ge=1)  # 8K UHD is 33.2 MP
    max_side: int = Field(16384, ge=1)

    # API keys: comma-separated in MATTING_API_KEYS and/or one per line in the
    # file MATTING_API_KEYS_FILE (a mounted secret). Auth is on when any is set.
    api_keys: SecretStr | None = None
    api_keys_file: Path | None = None

    warmup_sizes: list[str] = ["512x512"]

    # Video jobs. No redis_url: `matting serve` starts its own redis-server (AOF on) under
    # storage_dir and runs `workers` job workers in its own process.
    video_jobs: bool = True  # false: no /v1/videos, no queue, no workers
    redis_url: SecretStr | None = None  # may carry a password: redis://:PASS@host:6379/0
    redis_prefix: str = "matting"
    storage_dir: Path = Field(default_factory=lambda: default_cache_dir() / "jobs")
    workers: int | None = Field(None, ge=0)  # in-process workers; None: 1 if embedded, else 0
    video_max_bytes: int = Field(4 * 1024**3, ge=1024)
    video_max_duration_s: float = Field(3 * 3600.0, gt=0)
    video_max_pixels: int = Field(7680 * 4320, ge=1)  # per frame; 8K UHD
    chunk_frames: int = Field(48, ge=1, le=10_000)  # the resume unit of a job
    # A 4x4 patch is refined again only when a pixel moved more than this (0-1) since it
    # was last computed (seed 000 temporal sparsity); 0 turns temporal sparsity off.
    temporal_threshold: float = Field(0.03, ge=0, le=1)
    max_deliveries: int = Field(3, ge=1, le=100)  # then the job goes to the dead letters
    # A worker silent this long is dead and its job is taken over (at its last chunk)
    heartbeat_ttl_s: float = Field(15.0, gt=0.5, le=3600)
    worker_metrics_port: int = Field(9100, ge=0, le=65535)  # `matting worker`'s /metrics; 0: off
    # How long `matting serve`'s shutdown waits for its in-process job workers to finish
    # the chunk in hand (their jobs then go back to the queue at the resume point).
    worker_drain_timeout_s: float = Field(300.0, ge=0)

    @field_validator("warmup_sizes")
    @classmethod
    def _sizes(cls, value: list[str]) -> list[str]:
        for s in value:
            if not _SIZE.match(s):
                raise ValueError(f"warm-up size {s!r} is not WIDTHxHEIGHT, e.g. 1920x1080")
        return value

    def warmup_shapes(self) -> list[tuple[int, int]]:
        """(height, width) pairs."""
        out = []
        for s in self.warmup_sizes:
            m = _SIZE.match(s)
            assert m is not None  # checked by the validator
            out.append((int(m.group(2)), int(m.group(1))))
        return out

    def keys(self) -> list[bytes]:
        """The accepted API keys (empty: auth off). Raises InputError when the
        key file cannot be read, so a misconfigured secret stops the start-up
        instead of silently turning auth off."""
        keys = []
        if self.api_keys is not None:
            keys += [k.strip() for k in self.api_keys.get_secret_value().split(",")]
        if self.api_keys_file is not None:
            try:
                text = self.api_keys_file.read_text(encoding="utf-8")
            except OSError as e:
                raise InputError(
                    f"cannot read MATTING_API_KEYS_FILE {self.api_keys_file}: {e}"
                ) from None
            keys += [line.strip() for line in text.splitlines()]
        keys = [k for k in keys if k]
        if not keys and (self.api_keys is not None or self.api_keys_file is not None):
            # Asked for auth but given no key (an empty secret, a blank line): refuse to
            # start rather than serve with auth silently off.
            where = "MATTING_API_KEYS_FILE" if self.api_keys_file else "MATTING_API_KEYS"
            raise InputError(f"{where} is set but holds no API key; unset it to turn auth off")
        return [k.encode() for k in keys]


@lru_cache
def get_settings() -> Settings:
    return Settings()
