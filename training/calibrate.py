"""Soften the coarse alpha of a trained model: alpha = clamp(0.5 + c (raw - 0.5)).

Trained behind a plain straight-through clamp, the coarse head could learn raw
alpha values in the thousands (earlier shipped models reached +-5800 and
+-33000; the clamp now passes gradients only toward [0, 1], so new runs stay
within a few units and need no calibration): the alpha is then a near-step
function of the features, so float rounding, which differs between PyTorch,
ONNX Runtime and TensorRT and more so in float16, flips whole edge pixels.
Scaling the alpha channel of the last decoder conv by c < 1 about 0.5 keeps
the 0.5 threshold where it was, turns the step into a ramp a few pixels wide,
and divides that sensitivity by 1/c. It is a one-line change of two tensors.

    python -m training.calibrate IN.safetensors OUT.safetensors --factor 0.0005
"""

from __future__ import annotations

import argparse
import os

import torch

from matting.checkpoint import load_checkpoint, save_checkpoint
from matting.models.network import MattingNet


@torch.no_grad()
def soften_coarse_alpha(model: MattingNet, factor: float) -> float:
    """Scale the coarse raw alpha about 0.5 by `factor` in place; returns the old
    bound on |raw alpha| implied by the weights' magnitudes (for the record)."""
    if not 0.0 < factor <= 1.0:
        raise ValueError(f"factor must be in (0, 1], got {factor}")
    conv = model.coarse.decoder.convs[-1]
    assert isinstance(conv, torch.nn.Conv2d)
    bound = float(conv.weight[0].abs().sum() + conv.bias[0].abs())
    conv.weight[0].mul_(factor)
    conv.bias[0].mul_(factor).add_(0.5 * (1.0 - factor))
    return bound


def calibrate(src: str | os.PathLike[str], dst: str | os.PathLike[str], factor: float) -> None:
    model, info = load_checkpoint(src)
    soften_coarse_alpha(model, factor)
    meta = dict(info.metadata)
    meta["calibration"] = {"coarse_alpha_factor": factor, "source": os.fspath(src)}
    save_checkpoint(dst, model, meta)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--factor", type=float, default=5e-4)
    args = parser.parse_args(argv)
    calibrate(args.src, args.dst, args.factor)
    print(args.dst)


if __name__ == "__main__":
    main()
