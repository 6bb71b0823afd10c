import bpy
settings = bpy.context.scene.diffusion3d.stereo

settings.file_format = 'MP4'
settings.projection = 'RIG'
settings.stereo_layout = 'TOP_BOTTOM'
settings.resolution = 'VR_4K'
settings.still = False
