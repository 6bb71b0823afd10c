"""The shard manifest a distributed run keeps (a new run writes it, a second run resumes from it, another command is refused)
and what a node does with one shard (a private attempt folder, moved into place only when whole)."""

from __future__ import annotations

import json
import sys

import pytest

from engine.distributed.manifest import DONE, FAILED, MERGED, PENDING, RUNNING, Manifest, Shard, open_manifest
from engine.distributed.tasks import OUT, ShardProcessDied, ShardRefused, run_shard
from engine.errors import BadInput


def shards(folder, n=3):
    return [Shard(i, str(folder / f"shard-{i}-of-{n}"), {"seed": 5, "views": f"{i}/{n}"}) for i in range(1, n + 1)]


def test_a_new_run_writes_every_shard_with_its_seeds_and_a_resumed_run_keeps_what_is_done(tmp_path):
    folder = tmp_path / "ds.shards"
    manifest = open_manifest(folder, "edges", {"views_per_object": 4}, tmp_path / "ds", shards(folder))
    assert [s.state for s in manifest.shards] == [PENDING] * 3
    assert json.loads((folder / "manifest.json").read_text())["shards"][1]["seeds"] == {"seed": 5, "views": "2/3"}
    (folder / "shard-1-of-3").mkdir()
    manifest.shards[0].state, manifest.shards[1].state, manifest.shards[2].state = DONE, RUNNING, FAILED
    manifest.shards[2].attempts = 4
    manifest.save(folder / "manifest.json")
    again = open_manifest(folder, "edges", {"views_per_object": 4}, tmp_path / "ds", shards(folder))
    assert [s.state for s in again.shards] == [DONE, PENDING, PENDING], "a dead driver's running shard and a failed one run again"
    assert again.shards[2].attempts == 0


def test_a_done_shard_whose_folder_went_runs_again(tmp_path):
    folder = tmp_path / "ds.shards"
    manifest = open_manifest(folder, "edges", {}, tmp_path / "ds", shards(folder))
    manifest.shards[0].state = DONE
    manifest.save(folder / "manifest.json")
    assert open_manifest(folder, "edges", {}, tmp_path / "ds", shards(folder)).shards[0].state == PENDING


def test_a_merged_sets_shards_say_merged_on_every_later_run_until_the_set_goes(tmp_path):
    folder, out = tmp_path / "ds.shards", tmp_path / "ds"
    manifest = open_manifest(folder, "edges", {}, out, shards(folder))
    manifest.merged = True
    for shard in manifest.shards:
        shard.state = DONE if shard.index == 1 else MERGED  # the first as a manifest written before the merged state
    manifest.save(folder / "manifest.json")
    out.mkdir()
    again = open_manifest(folder, "edges", {}, out, shards(folder))
    assert again.merged and [s.state for s in again.shards] == [MERGED] * 3
    assert [s["state"] for s in json.loads((folder / "manifest.json").read_text())["shards"]] == ["merged"] * 3
    out.rmdir()
    gone = open_manifest(folder, "edges", {}, out, shards(folder))
    assert not gone.merged and [s.state for s in gone.shards] == [PENDING] * 3, "the set went: its shards run again"


def test_another_command_for_the_same_output_and_a_damaged_manifest_are_refused(tmp_path):
    folder = tmp_path / "ds.shards"
    request = {"DSTAnnotateRequest": {"views_per_object": 4, "seed": 0}}
    open_manifest(folder, "edges", request, tmp_path / "ds", shards(folder))
    with pytest.raises(BadInput, match=r"holds 3 shards of another command \(views_per_object differ\)"):
        open_manifest(folder, "edges", {"DSTAnnotateRequest": {"views_per_object": 8, "seed": 0}}, tmp_path / "ds", shards(folder))
    with pytest.raises(BadInput, match="holds 3 shards of another command"):
        open_manifest(folder, "edges", request, tmp_path / "ds", shards(folder, 4))
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(BadInput, match="damaged"):
        Manifest.load(folder / "manifest.json")


def test_a_shard_folder_a_node_cannot_write_is_refused_there_in_one_line_and_not_retried(tmp_path):
    (tmp_path / "taken").write_text("a file where the shards folder should be (a permission check passes as root)")
    with pytest.raises(ShardRefused, match=r"^the shard folder .*taken is not writable from node \S+: "):
        run_shard(1, [sys.executable, "-c", "pass", OUT], str(tmp_path / "taken" / "shard-1-of-2"), str(tmp_path))


def test_a_shard_is_moved_into_place_only_when_its_process_succeeds(tmp_path):
    write = "import pathlib, sys; pathlib.Path(sys.argv[1], 'made').write_text('x'); print('{\"views\": 1}')"
    folder = tmp_path / "shard-1-of-1"
    assert run_shard(1, [sys.executable, "-c", write, OUT], str(folder), str(tmp_path))["views"] == 1
    assert (folder / "made").read_text() == "x" and [p.name for p in tmp_path.iterdir()] == ["shard-1-of-1"]
    broken = tmp_path / "shard-1-of-2"
    with pytest.raises(ShardProcessDied, match="exit status 4"):
        run_shard(1, [sys.executable, "-c", write + "; sys.exit(4)", OUT], str(broken), str(tmp_path))
    assert not broken.exists() and [p.name for p in tmp_path.iterdir()] == ["shard-1-of-1"], "no attempt folder is left"
    with pytest.raises(ShardRefused, match="^No object named Nope$"):
        run_shard(1, [sys.executable, "-c", "import sys; sys.exit('error: No object named Nope')", OUT], str(broken), str(tmp_path))
