"""A model folder with a file cut short (an interrupted download) or damaged is refused before any work, in one line naming the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")
from safetensors.numpy import save_file
from tiny_ldm3d import build_tiny_ldm3d

from engine import params
from engine.diffusion import sources
from engine.errors import BadInput
from engine.world.ldm3d import RGBDRequest

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> Path:
    return build_tiny_ldm3d(tmp_path_factory.mktemp("models") / "tiny-ldm3d", vae_channels=4)


def refusal(model: Path, out: Path) -> str:
    request = RGBDRequest(prompt="a room", model=str(model), out_dir=str(out), width=64, height=32, steps=2)
    with pytest.raises(BadInput) as refused:
        params.validate(request)
    return str(refused.value)


@pytest.mark.parametrize(
    "file, keep, words",
    [
        ("unet/diffusion_pytorch_model.safetensors", 0.5, "is cut short ("),
        ("vae/diffusion_pytorch_model.safetensors", 0.999, "is cut short ("),
        ("text_encoder/model.safetensors", 5, "is cut short or not a safetensors file"),
        ("unet/config.json", 0.5, "is not valid JSON (cut short?)"),
        ("text_encoder/config.json", 0.5, "is not valid JSON (cut short?)"),
        ("scheduler/scheduler_config.json", 0.5, "is not valid JSON (cut short?)"),
        ("tokenizer/vocab.json", 0.5, "is not valid JSON (cut short?)"),
    ],
)
def test_a_model_file_cut_short_is_refused_in_one_line_naming_the_file(whole, tmp_path, file, keep, words):
    model = Path(shutil.copytree(whole, tmp_path / "model"))
    data = (model / file).read_bytes()
    (model / file).write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    text = refusal(model, tmp_path / "out")
    assert text.startswith(f"Model '{model}': {model / file} {words}") and "\n" not in text, text
    assert not (tmp_path / "out").exists()


def test_the_whole_model_passes_and_a_damaged_safetensors_header_or_extra_bytes_are_named(whole, tmp_path):
    assert (
        params.validate(RGBDRequest(prompt="a room", model=str(whole), out_dir=str(tmp_path / "out"), width=64, height=32, steps=2)) == []
    )
    model = Path(shutil.copytree(whole, tmp_path / "model"))
    weights = model / "vae" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    weights.write_bytes(bytes(data) + b"\0" * 10)
    assert sources.safetensors_problem(weights) == f"{weights} is damaged (10 bytes too many)"
    data[8:12] = b"\xff\xfe\xfd\xfc"  # the header's JSON broken
    weights.write_bytes(bytes(data))
    assert refusal(model, tmp_path / "out") == f"Model '{model}': {weights} is damaged (its safetensors header does not read)"


def test_each_shard_an_index_lists_is_checked(tmp_path):
    folder = tmp_path / "unet"
    folder.mkdir()
    for i in (1, 2):
        save_file({f"w{i}": np.zeros((4, 4), np.float32)}, str(folder / f"model-0000{i}-of-00002.safetensors"))
    index = '{"weight_map": {"w1": "model-00001-of-00002.safetensors", "w2": "model-00002-of-00002.safetensors"}}'
    (folder / "model.safetensors.index.json").write_text(index)
    assert sources._weights(folder, "model", "pytorch_model.bin", "unet/", False) == (True, "")
    second = folder / "model-00002-of-00002.safetensors"
    second.write_bytes(second.read_bytes()[:-3])
    safe, problem = sources._weights(folder, "model", "pytorch_model.bin", "unet/", False)
    assert safe and problem.startswith(f"{second} is cut short (")
    second.unlink()
    assert sources._weights(folder, "model", "pytorch_model.bin", "unet/", False) == (True, f"{second} is missing")
