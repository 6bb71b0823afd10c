"""Diffusion models: where they are, how they load, and the pipelines built on one denoising core.

``sources`` needs only the standard library (Blender's Python can list models);
everything else imports torch, diffusers and transformers, and is imported only
by the jobs that run models.
"""
