"""Objects of a collection excluded from the view layer, chosen by name: used as they are (modifiers applied), the user's file unchanged.

The demo's ``world.blend`` keeps its room so, and a user naming its furniture expects it rendered.
"""

import json

import bpy
import cv2
import numpy as np
import pytest
from blender_helpers import add_box, snapshot

pytestmark = pytest.mark.timeout(240)


def excluded_table() -> bpy.types.Object:
    """A table top (an Array modifier makes it three long, a keypoint group) in an excluded collection; a visible floor."""
    scene = bpy.context.scene
    furniture = bpy.data.collections.new("Furniture")
    scene.collection.children.link(furniture)
    table = add_box("Table Top", (0.0, 0.0, 0.7), (1.0, 0.6, 0.8))
    scene.collection.objects.unlink(table)
    furniture.objects.link(table)
    table.modifiers.new("Array", "ARRAY").count = 3  # 3 × 0.6 × 0.1 once evaluated
    table.vertex_groups.new(name="kp_corner").add([0], 1.0, "REPLACE")
    add_box("Floor", (-5.0, -5.0, -0.1), (5.0, 5.0, 0.0)).select_set(True)
    bpy.context.view_layer.layer_collection.children["Furniture"].exclude = True
    return table


def users_file(table: bpy.types.Object) -> dict:
    """What the user's file holds that a job could change: its data, the exclusion, the table's links, modifiers, groups and the selection."""
    layer = bpy.context.view_layer
    return {
        **snapshot(),
        "excluded": layer.layer_collection.children["Furniture"].exclude,
        "in_view_layer": sorted(o.name for o in layer.objects),
        "selected": sorted(o.name for o in bpy.context.selected_objects),
        "table": (sorted(c.name for c in table.users_collection), [m.name for m in table.modifiers], [g.name for g in table.vertex_groups]),
    }


def test_edge_maps_render_named_objects_of_an_excluded_collection_with_their_modifiers(tmp_path):
    table = excluded_table()
    before = users_file(table)
    options = dict(object_names="Table Top", views_per_object=1, resolution=32, samples=1, edge_method="GEOMETRIC", seed=2)
    assert bpy.ops.diffusion3d.render_edge_maps(dataset_dir=str(tmp_path / "ds"), **options) == {"FINISHED"}
    after = users_file(table)
    after["images"].discard("Render Result")  # Blender's own render buffer, as after F12
    assert after == before, "the user's file is as it was"
    ann = json.loads((tmp_path / "ds" / "annotations.json").read_text())["annotations"][0]
    extents = np.sort(np.ptp(np.array(ann["keypoints_3d"][:8]), axis=0))
    np.testing.assert_allclose(extents / extents[-1], [0.1 / 3, 0.6 / 3, 1.0], atol=1e-4)  # the Array modifier applied
    dataset = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert dataset["objects"][0]["keypoint_names"] == ["kp_corner"] and set(dataset["views"][0]["keypoints"]) == {"kp_corner"}
    mask = cv2.imread(str(next((tmp_path / "ds" / "masks").iterdir())), cv2.IMREAD_UNCHANGED)
    assert (mask > 127).any(), "the table was rendered"


def test_training_views_orbit_named_objects_of_an_excluded_collection_as_evaluated(tmp_path):
    table = excluded_table()
    before = users_file(table)
    options = dict(object_name="Table Top", views=2, width=32, height=32, samples=1, output_dir=str(tmp_path / "set"))
    assert bpy.ops.diffusion3d.render_training_views(**options) == {"FINISHED"}
    after = users_file(table)
    after["images"].discard("Render Result")
    assert after == before, "the user's file is as it was"
    posed = json.loads((tmp_path / "set" / "cameras.json").read_text())
    assert posed["target"] == pytest.approx([1.5, 0.3, 0.75]), "the orbit's centre is the evaluated table's"
    image = cv2.imread(str(tmp_path / "set" / posed["images"][0]["file"]), cv2.IMREAD_UNCHANGED)
    assert (image[..., 3] > 0).any(), "the table was rendered"
