import bpy
settings = bpy.context.scene.diffusion3d

settings.grid_step = 1
