"""Diffusion 3D: 3D-aware diffusion models in Blender.

Only registration lives here. Blender-facing code is in ``operators/`` and
``panels/``; everything that computes is in the standalone ``engine/`` package.
They are imported when Blender registers the add-on, so importing this folder
as a package (the engine's tests do, without ``bpy``) needs nothing of Blender.
"""


def register() -> None:
    from . import operators, panels

    operators.register()
    panels.register()


def unregister() -> None:
    from . import operators, panels

    panels.unregister()
    operators.unregister()
