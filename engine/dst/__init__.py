"""3D-DST data: CAD renders → edge maps, masks and exact 3D annotations (numpy only).

Blender renders each view (colour PNG + multilayer EXR with depth and normal
passes); everything after that, from the edge maps to the COCO files,
lives here so it runs in Blender's own Python and is testable without Blender.
"""
