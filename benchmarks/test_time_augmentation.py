"""What does test-time augmentation of the coarse stage cost?

Times one checkpoint (the shipped model by default) on random images of the
given sizes in three settings: one plain coarse pass; mirror averaging
(ModelConfig.flip_average); and mirror averaging at several coarse scales
(ModelConfig.coarse_scales, the checkpoint's own or --scales). Rounds
interleave the settings, so the machine's noise hits them alike; medians and
their ratios to the plain pass are printed. No image decode or encode is included.
With the shipped scales (0.75, 1, 1.5) at a 256 px side, 1280x720 and 2560x1440
get a second coarse pass; 1920x1080 and 3840x2160 do not (their 0.75x pass would
be 120 px, below the 128 px floor), so there the third setting equals the second.

    python benchmarks/test_time_augmentation.py --rounds 9 --threads 2
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
    sizes = [(1280, 720), (1920, 1080), (2560, 1440), (3840, 2160)]
    ap.add_argument("--sizes", type=_size, nargs="+", default=sizes)
    ap.add_argument(
        "--scales", type=float, nargs="+", default=None, help="default: the checkpoint's"
    )
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model, _ = load_checkpoint(args.checkpoint or default_checkpoint())
    scales = tuple(args.scales or model.config.coarse_scales)
    settings: dict[str, dict[str, object]] = {
        "plain": {"flip_average": False, "coarse_scales": (1.0,)},
        "mirror": {"flip_average": True, "coarse_scales": (1.0,)},
        f"mirror, scales {','.join(map(str, scales))}": {
            "flip_average": True,
            "coarse_scales": scales,
        },
    }
    gen = torch.Generator().manual_seed(0)
    images = {f"{w}x{h}": torch.rand(1, 3, h, w, generator=gen) for w, h in args.sizes}
    times = {size: {name: [] for name in settings} for size in images}
    with torch.inference_mode():
        for x in images.values():  # warm-up: allocator, kernels
            for kw in settings.values():
                model(x, **kw)  # type: ignore[arg-type]
        for _ in range(args.rounds):
            for size, x in images.items():
                for name, kw in settings.items():
                    times[size][name].append(_ms(lambda: model(x, **kw)))  # type: ignore[arg-type]  # noqa: B023

    report: dict[str, object] = {
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "rounds": args.rounds,
        "results": {},
    }
    print(f"median of {args.rounds} interleaved rounds, {torch.get_num_threads()} threads")
    for size, by_name in times.items():
        plain = statistics.median(by_name["plain"])
        for name, t in by_name.items():
            ms = statistics.median(t)
            report["results"][f"{size} {name}"] = ms  # type: ignore[index]
            print(f"{size:>10} {name:>28}: {ms:8.1f} ms   x{ms / plain:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
