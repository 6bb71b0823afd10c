import bpy
settings = bpy.context.scene.diffusion3d.generate

settings.width = 512
settings.height = 0
settings.steps = 20
settings.scheduler = 'DPMPP_2M'
settings.upscale = '1'
