"""The world: LDM3D and LDM3D-sr panoramas, RGBD capture, the displaced world sphere, stereo rigs, camera moves and 360°/VR180 video."""
