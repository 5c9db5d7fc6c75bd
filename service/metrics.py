"""Prometheus metrics of one app, in a registry of its own (several apps can
live in one process, as they do in the tests)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)

from matting.runtime.base import BackendInfo
from service import constants as c

# Latency buckets from 5 ms (a small image on a GPU) to 2 minutes (8K on a CPU).
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_BATCH = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            c.METRIC_REQUESTS, "HTTP requests answered", ["endpoint", "status"], registry=r
        )
        self.latency = Histogram(
            c.METRIC_REQUEST_SECONDS,
            "Time from request received to response ready",
            ["endpoint"],
            buckets=_SECONDS,
            registry=r,
        )
        self.queue_wait_s = Histogram(
            c.METRIC_QUEUE_WAIT_SECONDS,
            "Time a request waited in the batcher's queue",
            buckets=_SECONDS,
            registry=r,
        )
        self.inference_s = Histogram(
            c.METRIC_INFERENCE_SECONDS,
            "Backend time per batch",
            buckets=_SECONDS,
            registry=r,
        )
        self.batch_size = Histogram(
            c.METRIC_BATCH_SIZE, "Images per backend batch", buckets=_BATCH, registry=r
        )
        self.queue_depth = Gauge(c.METRIC_QUEUE_DEPTH, "Requests waiting for a batch", registry=r)
        self.in_flight = Gauge(
            c.METRIC_IN_FLIGHT, "Requests being handled", ["endpoint"], registry=r
        )
        self.ready = Gauge(c.METRIC_READY, "1 once the model is loaded and warm", registry=r)
        self.model = Info(c.METRIC_MODEL, "The model being served", registry=r)

    # BatchObserver
    def batch_done(self, size: int, inference_s: float) -> None:
        self.batch_size.observe(size)
        self.inference_s.observe(inference_s)

    def queue_wait(self, seconds: float) -> None:
        self.queue_wait_s.observe(seconds)

    def describe_model(self, info: BackendInfo) -> None:
        self.model.info(
            {
                "backend": info.name,
                "device": info.device,
                "precision": info.precision,
                "variant": info.variant,
                "source": info.source,
                "backbone": info.model.backbone,
            }
        )

    def watch_gpu_memory(self, device: str) -> None:
        """Expose the CUDA allocator's current and peak bytes for `device`."""
        import torch

        gauge = Gauge(
            c.METRIC_GPU_MEMORY,
            "CUDA memory held by the PyTorch allocator",
            ["kind"],
            registry=self.registry,
        )
        gauge.labels("allocated").set_function(lambda: torch.cuda.memory_allocated(device))
        gauge.labels("reserved").set_function(lambda: torch.cuda.memory_reserved(device))
        gauge.labels("peak").set_function(lambda: torch.cuda.max_memory_allocated(device))

        def used() -> float:
            # The whole device: also what ONNX Runtime or TensorRT hold outside
            # PyTorch's allocator.
            free, total = torch.cuda.mem_get_info(device)
            return float(total - free)

        gauge.labels("device_used").set_function(used)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
