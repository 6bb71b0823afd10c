"""Importing the original ViewNeTI's pickled mapper files: only when pickles are allowed, without running their code, and as
their saved config says (α, σ, target norms), refusing by name the settings our mappers do not implement."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engine.errors import BadInput  # noqa: E402
from engine.jobs import run_job  # noqa: E402
from engine.progress import CancelToken  # noqa: E402
from engine.viewneti import checkpoint  # noqa: E402
from engine.viewneti.mapper import Mapper, MapperSpec, fourier_matrix  # noqa: E402
from engine.viewneti.original import ImportRequest  # noqa: E402

RAN = []


class FourierEncoder:
    """Stands for the original's pickled encoder module: unpickling it here would record that its code ran."""

    def __setstate__(self, state):
        RAN.append("code from the file ran")
        self.__dict__.update(state)


#: The saved config of the released DTU runs (input_configs/train.yaml with the single-view options), as pyrallis encodes it.
RELEASED = {
    "learnable_mode": 5,
    "data": {"camera_representation": "dtu-12d", "dtu_preprocess_key": 1, "augmentation_key": 7},
    "model": {
        "pretrained_model_name_or_path": "stabilityai/stable-diffusion-2-1",
        "word_embedding_dim": 1024,
        "arch_mlp_hidden_dims": 64,
        "normalize_object_mapper_output": True,
        "normalize_view_mapper_output": True,
        "target_norm_object": 0.3834,
        "target_norm_view": 0.4012,
        "pe_sigmas": {"sigma_t": 0.03, "sigma_l": 2.0, "sigma_phi": 2.0, "sigma_theta": 2.0},
        "pe_sigma_exp_key": 2,
        "output_bypass_object": True,
        "output_bypass_view": True,
        "arch_view_net": 15,
        "arch_view_disable_tl": False,
        "output_bypass_alpha_view": 5,
        "output_bypass_alpha_object": 5,
    },
}


def original_file(path, mapper, key, **model):
    encoder = FourierEncoder()
    encoder.__dict__["w"] = torch.randn(32, 14)
    cfg = {**RELEASED, "model": {**RELEASED["model"], **model}}
    torch.save({"cfg": cfg, "mappers": {key: {"state_dict": mapper.state_dict(), "encoder": encoder}}}, path)
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
    assert (info.alpha, info.sigmas, info.view_norm, info.object_norm) == (5.0, [0.03, 2.0, 0.5], 0.4012, 0.3834), "from its config"
    assert (info.width, info.height, info.base_model) == (512, 384, "stabilityai/stable-diffusion-2-1")
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


def importing(tmp_path, view_model=None, object_model=None):
    view, obj = Mapper(MapperSpec(12, 1024)), Mapper(MapperSpec(0, 1024))
    request = ImportRequest(
        str(original_file(tmp_path / "v.pt", view, "dummy_key", **(view_model or {}))),
        str(original_file(tmp_path / "o.pt", obj, 49408, **(object_model or {}))),
        str(calibration(tmp_path / "cal")),
        str(tmp_path / "imported"),
        allow_pickle=True,
    )
    return run(request)


def test_a_config_with_another_camera_sigma_imports_with_it_and_its_mappers_read_with_it(tmp_path):
    importing(tmp_path, view_model={"pe_sigma_exp_key": 1}, object_model={"pe_sigma_exp_key": 1})
    info, view_state, _, _ = checkpoint.load(tmp_path / "imported")
    assert info.sigmas == [0.03, 2.0, 1.0]
    rebuilt = Mapper(MapperSpec(12, 1024, info.sigmas))
    torch.testing.assert_close(rebuilt.fourier, fourier_matrix([0.03, 2.0] + [1.0] * 12))


@pytest.mark.parametrize(
    "view_model, object_model, named",
    [
        ({"arch_view_net": 16}, {"arch_view_net": 16}, r"model\.arch_view_net 16 \(we implement 15"),
        ({"normalize_view_mapper_output": False}, None, r"v\.pt: model\.normalize_view_mapper_output False"),
        (None, {"arch_mlp_hidden_dims": 128}, r"o\.pt: model\.arch_mlp_hidden_dims 128 \(we implement 64"),
        (None, {"bypass_unconstrained_object": True}, r"model\.bypass_unconstrained_object True"),
        ({"output_bypass_alpha_object": 0.2}, None, r"one α for every token \(v\.pt model\.output_bypass_alpha_view 5, "),
        ({"pe_t_exp_key": 2}, None, r"one σ of the timestep and layer for both mappers \(\(0\.2, 2\.0\) and \(0\.03, 2\.0\)\)"),
        ({"pe_l_exp_key": 4}, None, r"pe_l_exp_key 4 is none the original defines"),
        ({"word_embedding_dim": 768}, None, r"model\.word_embedding_dim 768 \(its mappers write 1024\)"),
    ],
)
def test_a_setting_our_mappers_do_not_implement_is_refused_by_name(tmp_path, view_model, object_model, named):
    with pytest.raises(BadInput, match=named):
        importing(tmp_path, view_model, object_model)
    assert not (tmp_path / "imported").exists()


def test_spherical_cameras_and_a_config_from_before_the_key_existed_are_read_with_config_pys_defaults(tmp_path):
    view, obj = Mapper(MapperSpec(12, 1024)), Mapper(MapperSpec(0, 1024))
    torch.save({"cfg": {"model": {"arch_view_net": 15}}, "mappers": {"k": {"state_dict": view.state_dict()}}}, tmp_path / "v.pt")
    original_file(tmp_path / "o.pt", obj, 49408)
    request = ImportRequest(str(tmp_path / "v.pt"), str(tmp_path / "o.pt"), str(calibration(tmp_path / "cal")), str(tmp_path / "x"))
    request.allow_pickle = True
    with pytest.raises(BadInput) as refused:  # config.py: no tl conditioning, no view-word rescaling, spherical, 768 wide, α 0.2
        run(request)
    for named in ("arch_view_disable_tl True", "normalize_view_mapper_output False", "camera_representation 'spherical'", "768"):
        assert named in str(refused.value)
