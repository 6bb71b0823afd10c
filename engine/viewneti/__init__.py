"""ViewNeTI: camera parameters → text tokens that steer a frozen Stable Diffusion 2.x's viewpoint.

``mapper`` (the view and object mappers), ``cameras`` (the two parameterisations
and their stored normalisation), ``text`` (the text encoder with mapper tokens
and the bypass, 16 layers in one batch) and ``attention`` (the cross-attention
processors: keys from the plain text states, values from the bypassed ones).
"""
