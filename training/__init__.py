"""Training: data sets, synthetic compositing, losses, trainers, evaluation.

Imports `matting`; nothing in `matting` or `service` imports this package at
import time (the CLI loads it inside the `train` and `eval` commands).
"""
