"""How much do worker processes (`workers` in a training config) speed up training?

Two measurements on one training config (the default pre-training by default, so
../shared/data must be beside the project, or pass --config):

1. Making inputs alone: batches per second of drawing and augmenting, in the
   training process (workers = 0) and with each worker count asked for. This is
   the ceiling on steps per second that a fast accelerator would hit.
2. Whole training steps on this machine's device: the median seconds per step
   for each worker count, rounds interleaved so that the machine's noise hits
   them alike, and the ratio to workers = 0.

    python benchmarks/training_inputs.py --workers 0 1 2 --steps 15 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from training.config import TrainConfig, load_config
from training.inputs import step_inputs
from training.trainer import Run

ROOT = Path(__file__).resolve().parents[1]


def _inputs_rate(run: Run, workers: int, steps: int) -> tuple[float, float]:
    """(seconds to the first batch, batches per second after it)."""
    t0 = time.perf_counter()
    with step_inputs(run.make_inputs, 0, steps + 1, workers) as inputs:
        next(inputs)
        t1 = time.perf_counter()
        for _ in range(steps):
            next(inputs)
        t2 = time.perf_counter()
    return t1 - t0, steps / (t2 - t1)


def _step_times(cfg: TrainConfig, workers: int, steps: int, folder: Path) -> list[float]:
    """Seconds per step, the wait for inputs included, after one warm-up step."""
    run = Run(cfg.model_copy(update={"workers": workers, "output": folder}), progress=False)
    times = []
    with step_inputs(run.make_inputs, 0, steps + 1, workers) as inputs:
        for i in range(steps + 1):
            t0 = time.perf_counter()
            run.train_step(next(inputs))
            if i:
                times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=ROOT / "configs/default/pretrain.toml")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=15, help="timed steps per setting and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config).model_copy(update={"steps": 10**6, "device": "cpu"})
    report: dict = {
        "config": str(args.config),
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "batch_size": cfg.batch_size,
        "inputs": {},
        "steps": {},
    }

    probe = Run(cfg.model_copy(update={"output": Path(tempfile.mkdtemp())}), progress=False)
    print(f"making inputs ({cfg.batch_size} samples a batch, {args.steps * 2} batches):")
    for w in args.workers:
        first, rate = _inputs_rate(probe, w, args.steps * 2)
        report["inputs"][w] = {"first_s": first, "batches_per_s": rate}
        print(f"  workers={w}: first batch after {first:.2f} s, then {rate:.2f} batches/s")

    times: dict[int, list[float]] = {w: [] for w in args.workers}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for w in args.workers:
                times[w] += _step_times(cfg, w, args.steps, Path(tmp) / f"r{r}w{w}")
    base = statistics.median(times[args.workers[0]])
    print(f"training steps on the CPU ({torch.get_num_threads()} threads), median s/step:")
    for w in args.workers:
        med = statistics.median(times[w])
        report["steps"][w] = {"median_s": med, "n": len(times[w]), "ratio": med / base}
        print(f"  workers={w}: {med:.3f} s/step (x{med / base:.2f}, n={len(times[w])})")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
