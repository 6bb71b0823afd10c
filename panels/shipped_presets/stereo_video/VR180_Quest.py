import bpy
settings = bpy.context.scene.diffusion3d.stereo

settings.file_format = 'MP4'
settings.projection = 'VR180'
settings.stereo_layout = 'SIDE_BY_SIDE'
settings.resolution = 'VR_2K'
settings.still = False
