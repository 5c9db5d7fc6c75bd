"""The model family: backbones, ASPP, decoder, coarse stage, refiner, whole model."""

from matting.models.backbone import Backbone, FeatureInfo, build_backbone
from matting.models.coarse import CoarseNet, CoarseOutput
from matting.models.network import MattingNet, MattingOutput, build_model
from matting.models.refiner import PatchRefiner

__all__ = [
    "Backbone",
    "CoarseNet",
    "CoarseOutput",
    "FeatureInfo",
    "MattingNet",
    "MattingOutput",
    "PatchRefiner",
    "build_backbone",
    "build_model",
]
