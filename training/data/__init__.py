"""Training data: folder layouts, backgrounds, procedural mattes and their mixture."""

from training.data.mixture import Batch, Mixture, build_mixture
from training.data.sample import Sample

__all__ = ["Batch", "Mixture", "Sample", "build_mixture"]
