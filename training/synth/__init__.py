"""Procedural training data: foregrounds with exact alpha and generated backgrounds."""

from training.synth.backgrounds import generate_background
from training.synth.foregrounds import KINDS, Foreground, Kind, generate_foreground

__all__ = ["KINDS", "Foreground", "Kind", "generate_background", "generate_foreground"]
