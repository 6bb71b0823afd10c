"""Writing a job's samples: all-or-nothing, subfolders included, nothing left behind when a write fails."""

import pytest

from engine.errors import BadInput
from engine.samples import json_file, write_samples


def test_files_in_subfolders_are_written_together_and_a_failure_leaves_no_folder_behind(tmp_path):
    out = tmp_path / "set"
    paths = write_samples(out, [{"images/000.png": lambda p: p.write_bytes(b"x"), "cameras.json": json_file({"a": 1})}], overwrite=False)
    assert paths == [{"images/000.png": str(out / "images" / "000.png"), "cameras.json": str(out / "cameras.json")}]
    assert (out / "images" / "000.png").read_bytes() == b"x"

    def broken(path):
        raise OSError("disk full")

    again = tmp_path / "again"
    with pytest.raises(OSError, match="disk full"):
        write_samples(again, [{"images/a/000.png": lambda p: p.write_bytes(b"x"), "meta.json": broken}], overwrite=False)
    assert not again.exists(), "every folder made for the failed write is gone"
    with pytest.raises(BadInput, match="already holds"):
        write_samples(out, [{"cameras.json": json_file({})}], overwrite=False)
