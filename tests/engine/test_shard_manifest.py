"""The shard manifest a distributed run keeps: a new run writes it, a second run resumes from it, another command is refused."""

from __future__ import annotations

import json

import pytest

from engine.distributed.manifest import DONE, FAILED, PENDING, RUNNING, Manifest, Shard, open_manifest
from engine.errors import BadInput


def shards(folder, n=3):
    return [Shard(i, str(folder / f"shard-{i}-of-{n}"), {"seed": 5, "views": f"{i}/{n}"}) for i in range(1, n + 1)]


def test_a_new_run_writes_every_shard_with_its_seeds_and_a_resumed_run_keeps_what_is_done(tmp_path):
    folder = tmp_path / "ds.shards"
    manifest = open_manifest(folder, "edges", ["edges", "--views", "4"], tmp_path / "ds", shards(folder))
    assert [s.state for s in manifest.shards] == [PENDING] * 3
    assert json.loads((folder / "manifest.json").read_text())["shards"][1]["seeds"] == {"seed": 5, "views": "2/3"}
    (folder / "shard-1-of-3").mkdir()
    manifest.shards[0].state, manifest.shards[1].state, manifest.shards[2].state = DONE, RUNNING, FAILED
    manifest.shards[2].attempts = 4
    manifest.save(folder / "manifest.json")
    again = open_manifest(folder, "edges", ["edges", "--views", "4"], tmp_path / "ds", shards(folder))
    assert [s.state for s in again.shards] == [DONE, PENDING, PENDING], "a dead driver's running shard and a failed one run again"
    assert again.shards[2].attempts == 0


def test_a_done_shard_whose_folder_went_runs_again(tmp_path):
    folder = tmp_path / "ds.shards"
    manifest = open_manifest(folder, "edges", ["edges"], tmp_path / "ds", shards(folder))
    manifest.shards[0].state = DONE
    manifest.save(folder / "manifest.json")
    assert open_manifest(folder, "edges", ["edges"], tmp_path / "ds", shards(folder)).shards[0].state == PENDING


def test_another_command_for_the_same_output_and_a_damaged_manifest_are_refused(tmp_path):
    folder = tmp_path / "ds.shards"
    open_manifest(folder, "edges", ["edges", "--views", "4"], tmp_path / "ds", shards(folder))
    with pytest.raises(BadInput, match="holds 3 shards of another command"):
        open_manifest(folder, "edges", ["edges", "--views", "8"], tmp_path / "ds", shards(folder))
    with pytest.raises(BadInput, match="holds 3 shards of another command"):
        open_manifest(folder, "edges", ["edges", "--views", "4"], tmp_path / "ds", shards(folder, 4))
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(BadInput, match="damaged"):
        Manifest.load(folder / "manifest.json")
