"""One declaration per parameter: the check every request passes, the request built back from values, and its command-line options."""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from engine import cli, jobs, params
from engine.choices import SCHEDULERS
from engine.errors import BadInput
from engine.params import INPUT_FILE, Note, nested, param, refuse


@dataclass
class Sampling:
    steps: int = params.steps_field(50)
    seed: int = params.seed_field()


@dataclass
class Toy:
    size: int = param(64, "Size", "The size", min=8, max=512, multiple=8, also=(0,), cli_fields=("size", "height"))
    height: int = param(64, "Height", "The height", min=8, max=512)
    ratio: float = param(0.5, "Ratio", "A ratio", min=0.0, max=1.0, open_max=True, usual=(0.1, 0.9), why="tests")
    sampler: str = params.scheduler_field(cli_switch=("--fast", "DPMPP_2M"))
    name: str = param("", "Name", "A name", cli_also=("--title",))
    out_dir: str = params.output_folder_field("Where")
    picture: str = param("", "Picture", "An input", path=INPUT_FILE)
    sampling: Sampling = nested(Sampling)
    seed: int = params.seed_field()
    filled: list[int] = field(default_factory=list)  # by the code

    def check(self) -> list[Note]:
        if self.size and self.height > self.size:
            refuse("height", f"must not be above the size ({self.size})")
        return []


@pytest.mark.parametrize(
    "change, words",
    [
        (dict(size=4), "Size 4: must be 0, or 8–512, a multiple of 8"),
        (dict(size=12), "Size 12: must be 0, or 8–512, a multiple of 8"),
        (dict(ratio=1.0), "Ratio 1: must be ≥ 0 and < 1 (tests)"),
        (dict(ratio=math.nan), "Ratio nan: must be a finite number"),
        (dict(ratio=-math.inf), "Ratio -inf: must be a finite number"),
        (dict(sampler="PNDM"), "Sampler 'PNDM': choose from DDIM, DPMPP_2M, EULER_A, UNIPC"),
        (dict(seed=-5), "Seed -5: must be 0–2147483647 (Blender's integer properties are 32-bit)"),
        (dict(height=128, size=64), "Height 128: must not be above the size (64)"),
        (dict(size=1.5), "Size 1.5: must be a whole number"),
        (dict(picture="/no/such.png"), "Picture '/no/such.png': no such file"),
    ],
)
def test_a_value_out_of_its_declaration_is_refused_in_one_line_naming_it(tmp_path, change, words):
    request = params.build(Toy, {"out_dir": str(tmp_path), **change})
    with pytest.raises(BadInput, match="^" + words.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+") + "$"):
        params.validate(request)


def test_an_input_file_that_cannot_be_read_is_refused_naming_it(tmp_path, monkeypatch):
    picture = tmp_path / "picture.png"
    picture.write_bytes(b"x")
    picture.chmod(0)
    if os.access(picture, os.R_OK):  # root reads everything: deny it as the file system would deny anyone else
        real = os.access
        monkeypatch.setattr(params.os, "access", lambda path, mode: Path(path) != picture and real(path, mode))
    request = params.build(Toy, {"out_dir": str(tmp_path), "picture": str(picture)})
    with pytest.raises(BadInput, match=r"^Picture '.*picture.png': cannot be read \(no permission\)$"):
        params.validate(request)


@dataclass
class Pair:
    low: int = param(1, "Low", "The low end", cli="--from")
    high: int = param(2, "High", "The high end", cli="--to")

    def check(self) -> list[Note]:
        if self.low > self.high:
            refuse("low", "must not be above {high} (or swap them: {nothing} stays as written)")
        return []


def test_a_refusal_names_the_other_field_it_mentions_as_the_caller_names_it():
    with pytest.raises(BadInput, match=r"^Low 3: must not be above High \(or swap them: \{nothing\} stays as written\)$"):
        params.validate(Pair(low=3))
    with pytest.raises(BadInput, match=r"^--from 3: must not be above --to "):
        params.validate(Pair(low=3), name=lambda leaf: cli.flag(leaf) or leaf.param.label)


def test_a_legal_but_unusual_value_runs_with_a_warning_and_a_value_in_also_is_legal(tmp_path):
    assert params.validate(params.build(Toy, {"out_dir": str(tmp_path), "ratio": 0.95, "size": 0})) == [
        "Ratio 0.95: outside the usual 0.1–0.9 (tests); running anyway"
    ]


def test_an_output_folder_inside_a_file_is_refused_and_refusals_name_what_the_caller_names(tmp_path):
    (tmp_path / "file").write_text("x")
    request = params.build(Toy, {"out_dir": str(tmp_path / "file" / "out")})
    with pytest.raises(BadInput, match=r"^--out '.*': cannot be made: .*file is a file$"):
        params.validate(request, name=lambda leaf: cli.flag(leaf) or leaf.param.label)


def test_a_nested_requests_parameters_join_the_outer_ones_and_a_shared_name_is_one_parameter():
    names = [leaf.name for leaf in params.leaves(Toy)]
    assert names.count("seed") == 1 and "steps" in names and "filled" not in names
    built = params.build(Toy, {"seed": 7, "steps": 3, "filled": [1]})
    assert (built.seed, built.sampling.seed, built.sampling.steps, built.filled) == (7, 7, 3, [1])
    assert params.defaults(Toy)["steps"] == 50 and params.recommended_steps("DPMPP_2M") == SCHEDULERS["DPMPP_2M"].steps


def test_options_follow_the_declaration_and_read_back_as_the_request():
    parser = argparse.ArgumentParser()
    options = cli.add_options(parser, [Toy], defaults={"ratio": 0.25})
    help_text = parser.format_help()
    assert "[8–512 px]" not in help_text and "(default: 0.25)" in help_text and "--no-" not in help_text
    args = parser.parse_args(["--size", "128", "96", "--fast", "--title", "old", "--seed", "3"])
    values = options.values(args)
    assert values["size"] == 128 and values["height"] == 96 and values["sampler"] == "DPMPP_2M" and values["name"] == "old"
    assert params.build(Toy, values).sampling.seed == 3 and options.missing(args) == ["--out"]
    assert options.naming(next(leaf for leaf in params.leaves(Toy) if leaf.name == "height")) == "--size"


def test_every_engine_job_declares_its_parameters_with_help_and_legal_defaults(tmp_path):
    declared = 0
    for name, job in jobs.JOBS.items():
        for leaf in params.leaves(job.request):
            assert leaf.param.label and leaf.param.help.strip(), f"{name}.{leaf.name}"
            params._check_value(leaf, leaf.default)  # every default is legal
            declared += 1
    assert declared > 200


def test_no_two_fields_a_panel_shows_for_one_job_share_a_label():
    """One meaning per name: the world sphere's file and its way of reading it were both "Depth"."""
    for name, job in jobs.JOBS.items():
        labels = [leaf.param.label for leaf in params.leaves(job.request) if leaf.param.ui]
        assert sorted({label for label in labels if labels.count(label) > 1}) == [], name


def test_a_requests_models_are_checked_before_any_work_and_a_missing_one_is_named(tmp_path):
    from engine.diffusion.sources import ModelAccess
    from engine.world.ldm3d import RGBDRequest

    request = RGBDRequest(out_dir=str(tmp_path / "o"), model="Some/repo", access=ModelAccess(cache_dir=str(tmp_path / "cache")))
    with pytest.raises(BadInput, match=r"^Model 'Some/repo': is not in the Hugging Face cache"):
        params.validate(request)
    assert params.validate(request, models=False) == []
    with pytest.raises(BadInput, match=r"^Model '/no/such/folder': not found: no folder at /no/such/folder"):
        params.validate(RGBDRequest(out_dir=str(tmp_path / "o"), model="/no/such/folder"))
