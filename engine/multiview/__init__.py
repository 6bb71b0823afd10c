"""Multi-view diffusion (ImageDream, MVDream): the four views' cameras, and (to come) the model, pipeline and outputs."""
