"""Diffusion 3D: 3D-aware diffusion models in Blender.

Only registration lives here. Blender-facing code is in ``operators/`` and
``panels/``; everything that computes is in the standalone ``engine/`` package.
"""

from . import operators, panels

_modules = (operators, panels)


def register() -> None:
    for module in _modules:
        module.register()


def unregister() -> None:
    for module in reversed(_modules):
        module.unregister()
