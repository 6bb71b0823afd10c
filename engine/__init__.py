"""Diffusion 3D engine: geometry, image and model logic, free of Blender.

The package imports nothing heavy at import time so Blender can load the add-on
quickly; torch and friends are imported by the jobs that need them.
Run ``python -m engine --help`` from the add-on folder for its command line.
"""

__version__ = "0.1.0"
# Bumped whenever the worker's JSON-lines protocol changes incompatibly.
PROTOCOL_VERSION = 1
