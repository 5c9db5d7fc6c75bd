"""`matting bench`: median latency and throughput per backend, size, batch,
precision and refinement (sparse top-k against dense).

What a figure includes: one `Backend.infer` call on a uint8 (B, H, W, 3) batch
already in host memory, i.e. the copy to the device, the uint8 -> float cast,
padding, the coarse stage, patch selection and refinement (or the dense
refinement), the crop, and the copy of alpha and foreground back to host
float32 arrays. Image decode and encode are not included. Each configuration
is warmed up once; the rounds then visit the configurations in turn, so the
machine's noise falls on all of them alike, and medians are reported.
"""

from __future__ import annotations

import functools
import json
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from matting.runtime import Backend, load_backend

SIZES: tuple[tuple[int, int], ...] = ((512, 512), (1080, 1920), (2160, 3840))  # (h, w)


@dataclass(frozen=True)
class Config:
    backend: str  # torch | onnxruntime | tensorrt
    precision: str  # fp32 | fp16
    refine: str  # sparse | dense
    height: int
    width: int
    batch: int

    @property
    def label(self) -> str:
        return (
            f"{self.backend} {self.precision} {self.refine} "
            f"{self.width}x{self.height} b{self.batch}"
        )


@dataclass
class Result:
    config: Config
    num_patches: int
    seconds: list[float] = field(default_factory=list)
    skipped: str | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None

    def summary(self) -> dict[str, object]:
        med = self.median
        return {
            **asdict(self.config),
            "num_patches": self.num_patches,
            "runs": len(self.seconds),
            "median_seconds": med,
            "images_per_second": None if med is None else self.config.batch / med,
            "seconds": self.seconds,
            "skipped": self.skipped,
        }


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_bench(
    backends: dict[tuple[str, str, str], Backend],
    sizes: Sequence[tuple[int, int]],
    batches: Sequence[int],
    *,
    fraction: float | None,
    rounds: int,
    max_seconds: float,
    log: Callable[[str], None] = lambda _m: None,
) -> list[Result]:
    """Time every (backend, precision, refine) x size x batch.

    fraction: share of the 4x4 patches refined in sparse mode (None: the
    model's own budget). A configuration whose warm-up takes longer than
    max_seconds is measured once, and larger batches of it are skipped.
    """
    rng = np.random.default_rng(0)
    results: list[Result] = []
    runners: list[tuple[Result, Callable[[], object]]] = []
    for (name, precision, refine), backend in backends.items():
        too_slow_at: tuple[int, int] | None = None
        for h, w in sizes:
            for b in sorted(batches):
                cfg = Config(name, precision, refine, h, w, b)
                grid = (-(-h // 4)) * (-(-w // 4))
                k = 0 if refine == "dense" else None
                if refine == "sparse" and fraction is not None:
                    k = max(1, round(fraction * grid))
                result = Result(cfg, k if k is not None else -1)
                results.append(result)
                if too_slow_at == (h, w):
                    result.skipped = f"warm-up of a smaller batch took over {max_seconds:g} s"
                    continue
                if not backend.info.accepts(b, h, w):
                    result.skipped = "outside the engine's profiles"
                    continue
                images = rng.integers(0, 256, (b, h, w, 3), dtype=np.uint8)

                call = functools.partial(backend.infer, images, num_patches=k)

                log(f"warm-up {cfg.label}")
                t0 = time.perf_counter()
                out = call()
                warm = time.perf_counter() - t0
                result.num_patches = out.num_patches
                if warm > max_seconds:
                    result.seconds.append(warm)  # one timed run is all it gets
                    too_slow_at = (h, w)
                    continue
                runners.append((result, call))
    for r in range(rounds):
        log(f"round {r + 1}/{rounds}")
        for result, run in runners:
            result.seconds.append(_timed(run))
    return results


def describe_machine() -> dict[str, str]:
    import os

    import torch

    info = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": str(os.cpu_count()),
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return info


def sparse_dense_ratios(results: Sequence[Result]) -> list[dict[str, object]]:
    """Sparse median / dense median for each (backend, precision, size, batch)."""
    med = {
        (r.config.backend, r.config.precision, r.config.refine, r.config.height,
         r.config.width, r.config.batch): r
        for r in results
        if r.median is not None
    }  # fmt: skip
    out = []
    for (backend, precision, refine, h, w, b), r in med.items():
        dense = med.get((backend, precision, "dense", h, w, b))
        if refine == "sparse" and dense is not None:
            assert r.median is not None and dense.median is not None
            out.append(
                {
                    "backend": backend,
                    "precision": precision,
                    "height": h,
                    "width": w,
                    "batch": b,
                    "num_patches": r.num_patches,
                    "sparse_median_seconds": r.median,
                    "dense_median_seconds": dense.median,
                    "ratio": r.median / dense.median,
                }
            )
    return out


def write_report(
    results: Sequence[Result], path: Path, extra: dict[str, object] | None = None
) -> None:
    report = {
        "includes": __doc__.split("\n\n")[1].replace("\n", " "),
        "machine": describe_machine(),
        "results": [r.summary() for r in results],
        "sparse_vs_dense": sparse_dense_ratios(results),
        **(extra or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def plot(results: Sequence[Result], path: Path) -> None:
    """Throughput (images/s, log scale) per configuration, grouped by size."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    done = [r for r in results if r.median is not None]
    fig, ax = plt.subplots(figsize=(10, max(3.0, 0.32 * len(done) + 1)))
    labels = [r.config.label for r in done]
    values = [r.config.batch / r.median for r in done if r.median is not None]
    colors = ["tab:blue" if r.config.refine == "sparse" else "tab:orange" for r in done]
    ax.barh(range(len(done)), values, color=colors)
    ax.set_yticks(range(len(done)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("images per second (median; blue: sparse top-k, orange: dense)")
    ax.set_title("matting bench: Backend.infer on host uint8 batches (no decode/encode)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def load_for_bench(
    export_dir: Path | None,
    checkpoint: Path | None,
    names: Sequence[str],
    precisions: Sequence[str],
    refines: Sequence[str],
    threads: int | None,
) -> dict[tuple[str, str, str], Backend]:
    """Every available (backend, precision, refine) combination asked for."""
    import torch

    loaded: dict[tuple[str, str, str], Backend] = {}
    for name in names:
        for precision in precisions:
            for refine in refines:
                if name == "torch":
                    if precision == "fp16" and not torch.cuda.is_available():
                        continue  # float16 convolutions on the CPU are not a serving path
                    loaded[name, precision, refine] = load_backend(
                        checkpoint,
                        "torch",
                        precision=precision,
                        variant=refine,  # type: ignore[arg-type]
                    )
                elif export_dir is not None:
                    loaded[name, precision, refine] = load_backend(
                        export_dir, name, precision=precision, variant=refine,  # type: ignore[arg-type]
                        threads=threads,
                    )  # fmt: skip
    return loaded
