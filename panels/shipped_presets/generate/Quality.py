import bpy
settings = bpy.context.scene.diffusion3d.generate

settings.width = 0
settings.height = 0
settings.steps = 50
settings.scheduler = 'DDIM'
settings.upscale = '2'
settings.upscale_steps = 50
