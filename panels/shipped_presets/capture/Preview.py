import bpy
settings = bpy.context.scene.diffusion3d

settings.width = 512
settings.samples = 8
settings.denoise = True
