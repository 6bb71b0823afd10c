import bpy
settings = bpy.context.scene.diffusion3d.stereo

settings.resolution = 'PREVIEW'
