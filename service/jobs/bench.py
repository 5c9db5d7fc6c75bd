"""Video benchmark: temporal sparsity against refining every frame, and whole-job throughput.

    python -m service.jobs.bench --size 1920x1080 --frames 48

Generates an H.264 clip (a static textured background, a subject moving across it), then
1. mattes its frames with temporal sparsity on and off, alternating chunk by chunk so both
   see the same machine load, and reports the refined fraction of patch cells per frame,
   the median model time per frame of each, their ratio, and the alpha difference;
2. runs the whole job (decode, model, encode, join, through the real queue on an embedded
   redis-server) for each setting and reports frames per second end to end.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def make_clip(path: Path, width: int, height: int, frames: int, fps: int = 30) -> None:
    """A static background (gradient and texture) and a rigid ellipse with a ragged edge
    moving across it at about a tenth of the width per second."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    bg = np.stack([xx / width, yy / height, 0.5 + 0.0 * xx], axis=2) * 200
    bg += (
        rng.normal(0, 12, (height // 8 + 1, width // 8 + 1, 3))
        .repeat(8, 0)
        .repeat(8, 1)[:height, :width]
    )
    bg_u8 = np.clip(bg, 0, 255).astype(np.uint8)
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=Fraction(fps))
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.options = {"crf": "18", "preset": "veryfast"}
        for t in range(frames):
            cx = width * (0.3 + 0.1 * t / fps)
            cy, rx, ry = height * 0.55, width * 0.12, height * 0.35
            angle = np.arctan2(yy - cy, xx - cx)
            ragged = 1.0 + 0.04 * np.sin(40 * angle)  # a rigid subject: its edge moves with it
            inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < ragged
            frame = bg_u8.copy()
            frame[inside] = (200, 150, 120)
            for p in v.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)


def compare_sparsity(backend: object, clip: Path, chunk: int, threshold: float) -> None:
    from matting.temporal import TemporalMatter
    from matting.videoio import read_frames

    frames = list(read_frames(clip))
    times: dict[str, list[float]] = {"sparse": [], "every": []}
    fractions: list[float] = []
    diffs: list[np.ndarray] = []
    flicker: list[np.ndarray] = []
    for start in range(0, len(frames), chunk):
        part = frames[start : start + chunk]
        results = {}
        order = ("sparse", "every") if (start // chunk) % 2 == 0 else ("every", "sparse")
        for mode in order:
            matter = TemporalMatter(backend, threshold if mode == "sparse" else 0.0)  # type: ignore[arg-type]
            alphas = []
            for i, f in enumerate(part):
                t0 = time.perf_counter()
                alpha, _, stats = matter(f)
                dt = time.perf_counter() - t0
                if i:  # the first frame of a chunk is matted in full by both
                    times[mode].append(dt)
                    if mode == "sparse":
                        fractions.append(stats.refined / stats.cells)
                alphas.append(alpha)
            results[mode] = alphas
        for a, b in zip(results["sparse"], results["every"], strict=True):
            diffs.append(np.abs(a - b))
        # The model's own flicker: how much the every-frame alpha moves between consecutive
        # frames where the input pixels did not move (what temporal sparsity holds still).
        for i in range(1, len(part)):
            still = np.abs(part[i].astype(np.int16) - part[i - 1]).max(axis=2) == 0
            flicker.append(np.abs(results["every"][i] - results["every"][i - 1])[still])
    every = statistics.median(times["every"])
    sparse = statistics.median(times["sparse"])
    d = np.stack(diffs)
    print(f"frames: {len(frames)}, chunk {chunk}, threshold {threshold}")
    print(
        f"refined cells per frame (sparse, after each chunk's first): median "
        f"{statistics.median(fractions):.4f}, max {max(fractions):.4f}"
    )
    print(f"model time per frame: every frame {every * 1000:.0f} ms, sparse {sparse * 1000:.0f} ms")
    print(f"speed-up (median every / median sparse): {every / sparse:.2f}x")
    print(
        f"alpha |sparse - every|: mean {d.mean():.5f}, max {d.max():.4f}, "
        f"pixels over 2/255: {(d > 2 / 255).mean():.5f}"
    )
    fl = np.concatenate(flicker)
    print(
        f"every-frame alpha change between frames at pixels whose input did not change: "
        f"mean {fl.mean():.5f}, over 2/255: {(fl > 2 / 255).mean():.5f} ({fl.size} pixels)"
    )


def job_fps(backend: object, clip: Path, chunk: int, threshold: float, output: str) -> float:
    from service.jobs.queue import JobQueue
    from service.jobs.redis_server import EmbeddedRedis
    from service.jobs.storage import LocalStorage, new_name
    from service.jobs.worker import JobOptions, Worker

    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as server:
        queue = JobQueue.from_url(server.url)
        queue.ensure_group()
        storage = LocalStorage(Path(tmp) / "objects")
        name = new_name(".mp4")
        with storage.writer(name) as f:
            f.write(clip.read_bytes())
        job = queue.submit(name, JobOptions(output, "#00ff00", chunk, threshold).to_dict())  # type: ignore[arg-type]
        worker = Worker(queue, storage, backend)  # type: ignore[arg-type]
        claim = queue.claim_next(worker.name, block_ms=1000)
        assert claim is not None
        t0 = time.perf_counter()
        outcome = worker.process(claim)
        elapsed = time.perf_counter() - t0
        done = queue.get(job.id)
        assert outcome == "succeeded" and done is not None, (outcome, done)
        return (done.frames_total or 0) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--chunk", type=int, default=24)
    parser.add_argument("--threshold", type=float, default=0.03)
    parser.add_argument("--output", default="webm")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default=None, help="checkpoint (default: the shipped one)")
    parser.add_argument("--skip-job", action="store_true")
    parser.add_argument("--job-rounds", type=int, default=2)
    args = parser.parse_args()
    width, height = (int(x) for x in args.size.split("x"))

    from matting.inference import default_checkpoint
    from matting.runtime.torch_backend import TorchBackend

    backend = TorchBackend(args.model or default_checkpoint(), device=args.device)
    print(f"backend: {backend.info.name} {backend.info.precision} on {backend.info.device}")
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        make_clip(clip, width, height, args.frames)
        backend.warmup([(height, width)])
        compare_sparsity(backend, clip, args.chunk, args.threshold)
        if args.skip_job:
            return
        runs: dict[float, list[float]] = {args.threshold: [], 0.0: []}
        for r in range(args.job_rounds):  # whole jobs, alternating which goes first
            order = (args.threshold, 0.0) if r % 2 == 0 else (0.0, args.threshold)
            for threshold in order:
                runs[threshold].append(job_fps(backend, clip, args.chunk, threshold, args.output))
        for threshold, fps in runs.items():
            label = "temporal sparsity" if threshold else "every frame refined"
            print(
                f"whole job ({args.output}, {label}): median {statistics.median(fps):.2f} "
                f"frames/s at {args.size} over {len(fps)} runs"
            )


if __name__ == "__main__":
    main()
