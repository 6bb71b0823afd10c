"""The worker's wire format rebuilds requests from their type hints: nested dataclasses, tuples and arrays come back as sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine import protocol
from engine.diffusion import sources
from engine.diffusion.sources import ModelAccess
from engine.dst.filter import KCFRequest
from engine.dst.generate import EdgeGenerationRequest
from engine.errors import BadInput
from engine.world.ldm3d import RGBDRequest
from engine.world.model_listing import ModelsRequest


@dataclass
class Leaf:
    name: str
    size: tuple[int, int] = (0, 0)
    values: np.ndarray | None = None


@dataclass
class Branch:
    leaf: Leaf
    leaves: list[Leaf] = field(default_factory=list)
    by_name: dict[str, Leaf] = field(default_factory=dict)
    maybe: Leaf | None = None
    either: Leaf | None = None
    pair: tuple[Leaf, Leaf] | None = None
    many: tuple[Leaf, ...] = ()
    plain: dict[str, Any] = field(default_factory=dict)


@dataclass
class Tree:
    branch: Branch
    branches: list[Branch] = field(default_factory=list)
    anything: Any = None


def round_trip(value: Any, tmp_path: Path) -> Any:
    """``value`` as the worker receives it: encoded, one JSON line, decoded as its class."""
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    line = protocol.dumps({"type": "run", "request": protocol.encode(value, scratch)})
    received = protocol.decode_as(type(value), protocol.loads(line)["request"], scratch)
    assert not any(scratch.iterdir())  # every array file was read and removed
    return received


def test_a_nested_dataclass_comes_back_as_that_dataclass(tmp_path):
    got = round_trip(Tree(Branch(Leaf("a", (1, 2)))), tmp_path)
    assert isinstance(got, Tree) and isinstance(got.branch, Branch) and isinstance(got.branch.leaf, Leaf)
    assert got.branch.leaf == Leaf("a", (1, 2))


def test_lists_and_dicts_of_dataclasses_come_back_as_dataclasses(tmp_path):
    sent = Tree(
        Branch(Leaf("a"), leaves=[Leaf("b"), Leaf("c", (3, 4))], by_name={"d": Leaf("d")}), branches=[Branch(Leaf("e")), Branch(Leaf("f"))]
    )
    got = round_trip(sent, tmp_path)
    assert got.branch.leaves == [Leaf("b"), Leaf("c", (3, 4))] and got.branch.by_name == {"d": Leaf("d")}
    assert [b.leaf.name for b in got.branches] == ["e", "f"] and all(isinstance(b, Branch) for b in got.branches)


def test_an_optional_dataclass_comes_back_as_none_or_as_the_dataclass(tmp_path):
    empty = round_trip(Branch(Leaf("a")), tmp_path)
    assert empty.maybe is None and empty.either is None and empty.pair is None
    full = round_trip(Branch(Leaf("a"), maybe=Leaf("m", (5, 6)), either=Leaf("e"), pair=(Leaf("p"), Leaf("q"))), tmp_path)
    assert full.maybe == Leaf("m", (5, 6)) and full.either == Leaf("e") and full.pair == (Leaf("p"), Leaf("q"))


def test_tuples_come_back_as_tuples_at_any_depth(tmp_path):
    got = round_trip(
        Tree(Branch(Leaf("a", (7, 8)), leaves=[Leaf("b", (1, 1))], pair=(Leaf("p"), Leaf("q")), many=(Leaf("x"), Leaf("y", (2, 3))))),
        tmp_path,
    )
    assert got.branch.leaf.size == (7, 8) and isinstance(got.branch.leaf.size, tuple)
    assert isinstance(got.branch.leaves[0].size, tuple) and isinstance(got.branch.pair, tuple)
    assert got.branch.many == (Leaf("x"), Leaf("y", (2, 3))) and isinstance(got.branch.many[1].size, tuple)


def test_arrays_inside_nested_dataclasses_keep_their_dtype_shape_and_values(tmp_path):
    rgb = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    depth = np.linspace(0, 1, 8, dtype=np.float32).reshape(2, 4)
    sent = Tree(
        Branch(Leaf("a", values=rgb), by_name={"d": Leaf("d", values=depth)}), branches=[Branch(Leaf("b"), maybe=Leaf("m", values=depth))]
    )
    got = round_trip(sent, tmp_path)
    for received, original in (
        (got.branch.leaf.values, rgb),
        (got.branch.by_name["d"].values, depth),
        (got.branches[0].maybe.values, depth),
    ):
        assert isinstance(received, np.ndarray) and received.dtype == original.dtype
        np.testing.assert_array_equal(received, original)


def test_fields_typed_any_and_plain_dicts_are_left_as_sent(tmp_path):
    got = round_trip(Tree(Branch(Leaf("a"), plain={"k": [1, 2], "n": {"x": 1}}), anything={"name": "not a leaf"}), tmp_path)
    assert got.branch.plain == {"k": [1, 2], "n": {"x": 1}} and got.anything == {"name": "not a leaf"}


def test_a_nested_object_with_unknown_or_missing_fields_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="Bad Leaf"):
        protocol.decode_as(Branch, {"leaf": {"name": "a", "colour": "red"}}, tmp_path)
    with pytest.raises(BadInput, match="Bad Leaf"):
        protocol.decode_as(Branch, {"leaf": {}}, tmp_path)


def test_every_model_request_carries_its_model_access_over_the_wire(tmp_path):
    access = ModelAccess("/models", "/cache", allow_download=True, allow_pickle=True, device="CPU", precision="FP32")
    rgb = np.zeros((2, 4, 3), np.uint8)
    rgbd = round_trip(RGBDRequest(prompt="p", model="m", out_dir="/out", init_rgb=rgb, access=access), tmp_path)
    assert rgbd.access == access and rgbd.init_rgb.dtype == np.uint8 and rgbd.prompt == "p"
    for request in (EdgeGenerationRequest("/data", access=access), KCFRequest("/data", access=access), ModelsRequest(access)):
        assert round_trip(request, tmp_path) == request
    assert RGBDRequest("p", "m", "/out").access == ModelAccess()  # defaults: no downloads, no pickles, AUTO device


def test_model_access_locates_with_its_own_settings(tmp_path, monkeypatch):
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    assert ModelAccess(models_dir=str(tmp_path / "models")).locate("tiny") == tmp_path / "models" / "tiny"
    calls = []
    monkeypatch.setattr(sources, "locate", lambda *args: calls.append(args) or Path("/found"))
    access = ModelAccess("/m", "/c", allow_download=True, allow_pickle=True)
    assert access.locate("org/repo", patterns=["*.json"]) == Path("/found")
    assert calls == [("org/repo", "/m", "/c", True, True, None, ["*.json"])]
