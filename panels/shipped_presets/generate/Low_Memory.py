import bpy
settings = bpy.context.scene.diffusion3d.generate

settings.vae_tiling = True
settings.attention_slicing = True
settings.cpu_offload = True
