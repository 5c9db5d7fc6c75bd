"""Writes the nested training subsets of the learning curve (README "Learning curve").

Every held-out stem stays out; the rest are shuffled once with a fixed seed and the
first N of that order form the subset of size N, so each smaller subset lies inside
the larger ones. Usage: python configs/learning_curve/make_splits.py DATA/human-seg
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

SIZES = (50, 101)
SEED = 0
HERE = Path(__file__).resolve().parent


def subsets(
    stems: list[str], held_out: set[str], sizes: tuple[int, ...], seed: int
) -> dict[int, list[str]]:
    train = sorted(s for s in stems if s not in held_out)
    order = [train[i] for i in np.random.default_rng(seed).permutation(len(train))]
    return {n: sorted(order[:n]) for n in sizes}


def main(root: Path) -> None:
    held = (HERE.parent / "splits" / "human-seg-heldout.txt").read_text().splitlines()
    held_out = {s.strip() for s in held if s.strip() and not s.startswith("#")}
    stems = [p.stem for p in (root / "images").iterdir() if p.is_file()]
    for n, names in subsets(stems, held_out, SIZES, SEED).items():
        out = HERE.parent / "splits" / f"human-seg-train-{n:03d}.txt"
        head = f"# Learning curve: {n} of the human-seg training photos (seed {SEED}, nested).\n"
        out.write_text(head + "\n".join(names) + "\n")
        print(out)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
