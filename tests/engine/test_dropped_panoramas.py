"""Which dropped file is the RGB and which its depth (``rgbd.paired_panorama``: the engine's rule, which the viewport's
drop operator follows; the drop itself: tests/blender/test_conveniences.py)."""

import pytest

from engine import errors
from engine.world import rgbd


@pytest.mark.parametrize(
    "names, rgb, depth",
    [
        (["depth.exr", "rgb.png"], "rgb.png", "depth.exr"),
        (["pano.hdr", "pano_depth.png"], "pano.hdr", "pano_depth.png"),  # the name says depth before the float file does
        (["a.png", "b.exr"], "a.png", "b.exr"),
    ],
)
def test_of_two_dropped_files_the_depth_is_the_one_named_depth_else_the_float_file(names, rgb, depth):
    assert rgbd.paired_panorama(names) == (rgb, depth)


def test_two_files_that_cannot_be_told_apart_are_refused():
    with pytest.raises(errors.BadInput, match="Cannot tell which of a.exr and b.exr is the depth"):
        rgbd.paired_panorama(["a.exr", "b.exr"])


def test_one_rgb_looks_for_its_depth_by_our_own_names():
    assert rgbd.depth_names("rgb.png")[:3] == ["depth.exr", "depth.hdr", "depth.tif"]
    assert {"depth.npy", "depth16.png"} <= set(rgbd.depth_names("rgb.png"))  # a generation's
    assert rgbd.depth_names("/x/room_rgb.jpg")[0] == "room_depth.exr" and rgbd.depth_names("pano.png")[0] == "pano_depth.exr"
