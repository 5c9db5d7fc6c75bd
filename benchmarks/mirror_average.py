"""What does mirror averaging of the coarse stage (ModelConfig.flip_average) cost?

Times one checkpoint (the shipped model by default) with and without mirror
averaging, on random images of the given sizes, plus the coarse stage alone at
the size it sees for a 16:9 photo served at coarse_long_side 256. Rounds
interleave the two settings, so the machine's noise hits them alike; medians and
their ratios are printed. No image decode or encode is included.

    python benchmarks/mirror_average.py --sizes 1920x1080 3840x2160 --rounds 7 --threads 2
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import torch

from matting.checkpoint import load_checkpoint
from matting.inference import default_checkpoint
from matting.models.network import flip_averaged


def _size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def _ms(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--checkpoint", default=None, help="default: the shipped model")
    ap.add_argument("--sizes", type=_size, nargs="+", default=[(1920, 1080), (3840, 2160)])
    ap.add_argument("--coarse-size", type=_size, default=(256, 144), help="WIDTHxHEIGHT")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model, _ = load_checkpoint(args.checkpoint or default_checkpoint())
    gen = torch.Generator().manual_seed(0)
    images = {f"{w}x{h}": torch.rand(1, 3, h, w, generator=gen) for w, h in args.sizes}
    cw, ch = args.coarse_size
    small = torch.rand(1, 3, ch, cw, generator=gen)

    runs: dict[str, Callable[[bool], object]] = {
        name: (lambda flip, x=x: model(x, None, flip_average=flip)) for name, x in images.items()
    }
    runs[f"coarse stage {cw}x{ch}"] = lambda flip: (
        flip_averaged(model.coarse, small) if flip else model.coarse(small)
    )
    times: dict[str, dict[bool, list[float]]] = {name: {False: [], True: []} for name in runs}
    with torch.inference_mode():
        for fn in runs.values():  # warm-up: allocator, kernels
            fn(False)
            fn(True)
        for _ in range(args.rounds):
            for name, fn in runs.items():
                for flip in (False, True):
                    times[name][flip].append(_ms(lambda: fn(flip)))  # noqa: B023

    report = {
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "rounds": args.rounds,
        "results": {},
    }
    print(f"median of {args.rounds} interleaved rounds, {torch.get_num_threads()} threads")
    for name, t in times.items():
        plain, mirrored = statistics.median(t[False]), statistics.median(t[True])
        report["results"][name] = {"plain_ms": plain, "mirrored_ms": mirrored}
        print(
            f"{name:>24}: plain {plain:8.1f} ms   mirror-averaged {mirrored:8.1f} ms"
            f"   x{mirrored / plain:.2f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
