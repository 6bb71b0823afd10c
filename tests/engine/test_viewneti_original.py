"""Importing the original ViewNeTI's pickled mapper files: only when pickles are allowed, and without running their code."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engine.errors import BadInput  # noqa: E402
from engine.jobs import run_job  # noqa: E402
from engine.progress import CancelToken  # noqa: E402
from engine.viewneti import checkpoint  # noqa: E402
from engine.viewneti.mapper import Mapper, MapperSpec  # noqa: E402
from engine.viewneti.original import ImportRequest  # noqa: E402

RAN = []


class FourierEncoder:
    """Stands for the original's pickled encoder module: unpickling it here would record that its code ran."""

    def __setstate__(self, state):
        RAN.append("code from the file ran")
        self.__dict__.update(state)


def original_file(path, mapper, key):
    encoder = FourierEncoder()
    encoder.__dict__["w"] = torch.randn(32, 14)
    torch.save({"cfg": {"model": {"arch_view_net": 15}}, "mappers": {key: {"state_dict": mapper.state_dict(), "encoder": encoder}}}, path)
    return path


def calibration(folder, count=5):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(count):
        np.savetxt(folder / f"pos_{k + 1:03d}.txt", rng.normal(size=(3, 4)) * 100)
    return folder


def run(r):
    return run_job("import_viewneti", r, lambda p: None, CancelToken())


def test_the_originals_mappers_import_without_running_their_code_and_take_the_calibrations_ranges(tmp_path):
    view, obj = Mapper(MapperSpec(12, 1024), seed=1), Mapper(MapperSpec(0, 1024), seed=2)
    request = ImportRequest(
        str(original_file(tmp_path / "mapper-steps-3000_view.pt", view, "dummy_key")),
        str(original_file(tmp_path / "mapper-steps-3000_object.pt", obj, 49408)),
        str(calibration(tmp_path / "cal18")),
        str(tmp_path / "imported"),
    )
    with pytest.raises(BadInput, match="pickles"):
        run(request)
    request.allow_pickle = True
    result = run(request)
    assert result.cameras == 5 and not RAN
    info, view_state, object_states, _ = checkpoint.load(tmp_path / "imported")
    (object_state,) = object_states
    assert info.cameras.kind == "DTU12" and info.word_dim == 1024 and info.mode == "IMPORTED" and info.camera_size == [1600, 1200]
    assert all(torch.equal(view_state[k], v) for k, v in view.state_dict().items())
    assert all(torch.equal(object_state[k], v) for k, v in obj.state_dict().items())
    cameras = np.stack([np.loadtxt(tmp_path / "cal18" / f"pos_{k + 1:03d}.txt").reshape(12) for k in range(5)])
    np.testing.assert_allclose(info.cameras.low, cameras.min(axis=0))


def test_a_file_that_is_not_an_original_mapper_file_is_refused(tmp_path):
    torch.save({"something": 1}, tmp_path / "other.pt")
    request = ImportRequest(
        str(tmp_path / "other.pt"), str(tmp_path / "other.pt"), str(calibration(tmp_path / "cal")), str(tmp_path / "out")
    )
    request.allow_pickle = True
    with pytest.raises(BadInput, match="holds no mappers"):
        run(request)
