"""Multi-view diffusion (ImageDream, MVDream): the views' cameras (``cameras``), the input image (``prepare``), our own
multi-view UNet (``unet``) and its checked loading (``model``), the pipeline on the shared denoising core (``pipeline``),
the ``generate_views`` job (``job``) and the quick mesh (``hull``)."""
