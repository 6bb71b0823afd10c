import bpy
settings = bpy.context.scene.diffusion3d

settings.width = 4096
settings.samples = 256
settings.denoise = True
