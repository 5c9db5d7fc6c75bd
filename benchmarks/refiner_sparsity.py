"""Does the refiner's cost follow the number of patches rather than the image area?

Times, on the CPU at 4K by default, the refiner stage alone (selection excluded:
patch sampling, convs, scatter into the upsampled coarse output) and the whole
model forward (coarse stage, upsampling, selection, refinement, crop) for top-k
refinement of several fractions of the 4x4 patches, plus dense refinement and
no refinement. Rounds interleave the configurations, so the machine's noise
hits them alike; medians are reported. No image decode or encode is included.

    python benchmarks/refiner_sparsity.py --size 3840x2160 --fractions 0.01 0.05 1.0
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from matting.config import preset
from matting.models import build_model
from matting.models.refiner import PATCH
from matting.ops import coarse_scale, pad_to_multiple, scatter_patches, select_topk


def _size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="realtime")
    ap.add_argument("--size", type=_size, default=(3840, 2160), help="WIDTHxHEIGHT")
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.05, 1.0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    config = preset(args.preset)
    model = build_model(config).eval()
    w, h = args.size
    image = torch.rand(1, 3, h, w)

    # The refiner's inputs, computed once: what the model feeds it at this size.
    with torch.inference_mode():
        f = coarse_scale(h, w, config.coarse_long_side)
        x = pad_to_multiple(image, max(PATCH, f))
        coarse = model.coarse(F.avg_pool2d(x, f) if f > 1 else x)
        feats = torch.cat([coarse.hidden, coarse.alpha, coarse.foreground_residual], dim=1)
        hp, wp = x.shape[-2:]
        grid = (hp // PATCH, wp // PATCH)
        base = F.interpolate(
            torch.cat([coarse.alpha, coarse.foreground_residual], 1),
            size=(hp, wp),
            mode="bilinear",
            align_corners=False,
        )
        score = F.interpolate(coarse.error, size=grid, mode="bilinear", align_corners=False)
    cells = grid[0] * grid[1]

    cases: dict[str, tuple[int, Callable[[], object], Callable[[], object]]] = {}
    for frac in args.fractions:
        k = max(1, round(frac * cells))
        index = select_topk(score, k)

        def refine(index=index) -> object:
            return scatter_patches(base, model.refiner.sparse(x, feats, index), index)

        def whole(frac=frac) -> object:
            return model(image, refine_fraction=frac)

        cases[f"topk {frac:.0%}"] = (k, refine, whole)
    cases["dense"] = (
        cells,
        lambda: model.refiner.dense(x, feats),
        lambda: model(image, refine_mode="full"),
    )
    cases["none"] = (0, lambda: None, lambda: model(image, refine_mode="none"))

    times: dict[str, dict[str, list[float]]] = {n: {"refiner": [], "model": []} for n in cases}
    with torch.inference_mode():
        for _, refine, whole in cases.values():  # warm-up: allocator, kernels, caches
            refine()
            whole()
        for r in range(args.rounds):
            for name, (_, refine, whole) in cases.items():
                times[name]["refiner"].append(_timed(refine))
                times[name]["model"].append(_timed(whole))
            print(f"round {r + 1}/{args.rounds} done", flush=True)

    med = {n: {k: statistics.median(v) for k, v in t.items()} for n, t in times.items()}
    full_name = next((n for n in cases if n == "topk 100%"), "dense")
    print(
        f"\n{config.backbone}, {w}x{h}, coarse scale 1/{f}, {cells} patches of 4x4, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}; "
        f"median of {args.rounds} rounds, seconds"
    )
    print(f"{'case':<12}{'patches':>9}{'refiner':>10}{'model':>10}{'model/' + full_name:>18}")
    for name, (k, _, _) in cases.items():
        ratio = med[name]["model"] / med[full_name]["model"]
        print(
            f"{name:<12}{k:>9}{med[name]['refiner']:>10.3f}{med[name]['model']:>10.3f}"
            f"{ratio:>18.3f}"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "preset": args.preset,
                    "size": [w, h],
                    "threads": torch.get_num_threads(),
                    "rounds": args.rounds,
                    "median_seconds": med,
                    "times": times,
                    "patches": {n: c[0] for n, c in cases.items()},
                },
                fh,
                indent=2,
            )


if __name__ == "__main__":
    main()
