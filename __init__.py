"""Diffusion 3D: 3D-aware diffusion models in Blender.

Only registration lives here. Blender-facing code is in ``operators/`` and
``panels/``; everything that computes is in the standalone ``engine/`` package.
"""

if __package__:  # as the add-on package; pytest may also import this file on its own
    from . import operators, panels


def register() -> None:
    operators.register()
    panels.register()


def unregister() -> None:
    panels.unregister()
    operators.unregister()
