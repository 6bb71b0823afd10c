"""batch.py's refusals of option values, before anything Blender does: run once, in the engine's Python (no bpy needed).

Every value is checked by the one ``validate`` before ``bpy`` is imported, so these need no Blender line of their own.
"""

import sys
from pathlib import Path

import pytest
from support import batch

ROOT = Path(__file__).resolve().parents[2]


def bad_command_lines(tmp_path: Path) -> list[tuple[list[str], str]]:
    """Every subcommand with each declared number of its out of range (or NaN, ±inf, huge), its required options given."""
    sys.path.insert(0, str(ROOT))
    import batch as module
    from engine import cli, params

    lines = []
    for command in module.COMMANDS:
        required, numbers = [], []
        covered = {n for r in command.requests for leaf in params.leaves(r) for n in leaf.param.cli_fields[1:]}
        seen: set[str] = set()
        for request in command.requests:
            for leaf in params.leaves(request):
                flag = cli.flag(leaf)
                if leaf.name in seen | covered or leaf.name in command.hide or flag is None:
                    continue
                seen.add(leaf.name)
                if leaf.param.cli_required:
                    required += [flag, str(tmp_path / "given")]
                elif leaf.kind in (int, float) and not leaf.param.cli_parse:
                    numbers.append((flag, leaf))
        for flag, leaf in numbers:
            p = leaf.param
            bad = [max(p.values) + 1] if p.values else []
            bad += [p.min if p.open_min else p.min - 1] if p.min is not None else []
            bad += [p.max if p.open_max else p.max + 1] if p.max is not None else []
            bad = [str(int(v)) if leaf.kind is int else repr(float(v)) for v in bad if v not in p.also]
            bad += ["nan", "inf", "-inf"] if leaf.kind is float else ["1e12", "99999999999999"]
            pair = ["64"] * (len(p.cli_fields) - 1)
            lines += [([command.name, *required, flag, value, *pair], flag) for value in bad]
    return lines


def test_every_out_of_range_number_of_every_subcommand_is_refused_in_one_line_before_anything_is_written(tmp_path, capsys, monkeypatch):
    """From the declarations: each value is refused by the one validate before any work (an unparsable one by the parser)."""
    sys.path.insert(0, str(ROOT))
    import batch as module

    monkeypatch.chdir(tmp_path)
    parser = module.build_parser()  # one parser for every case (argparse starts each parse from the defaults)
    monkeypatch.setattr(module, "build_parser", lambda: parser)
    cases = bad_command_lines(tmp_path)
    assert len(cases) > 300
    for argv, flag in cases:
        try:
            code = module.main(["batch.py", *argv])
        except SystemExit as exit:
            code = exit.code
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert code != 0 and len(err) == 1 and err[0].startswith("error: ") and flag in err[0], (argv, err)
    assert not any(tmp_path.iterdir()), "nothing written"


@pytest.mark.parametrize(
    "args, words",
    [
        (("panorama", "--strength", "2"), "--strength 2: must be 0–1"),
        (("multiview", "--size", "100000"), "--size 100000: must be 64–1024, a multiple of 64"),
        (("multiview", "--count", "0"), "--count 0: must be 1–16"),
        (("multiview", "--seed", "-5"), "--seed -5: must be 0–2147483647"),
        (("panorama", "--seed", "2147483648"), "--seed 2147483648: must be 0–2147483647"),
        (("panorama", "--seed", "2147483640", "--count", "9"), "--seed 2147483640: sample 9 would use seed 2147483648"),
        (("edges", "--resolution", "0"), "--resolution 0: must be 16–4096"),
        (("viewneti-data", "--views", "0"), "--views 0: must be 1–10000"),
        (("viewneti-data", "--size", "100000", "100000"), "--size 100000: must be 16–4096"),
        (("viewneti-render", "--checkpoint", "c", "--size", "100000", "100000"), "--size 100000: must be 64–2048"),
        (("multiview", "--guidance", "inf"), "--guidance inf: must be a finite number"),
        (("stereo-video", "--resolution", "100000"), "--resolution 100000: must be 16–8192"),
        (("stereo-video", "--seconds", "1e9"), "--seconds 1e+09: must be > 0 and ≤ 3600"),
        (("panorama", "--steps", "1001"), "--steps 1001: must be 1–1000 (the models' schedules have 1000 steps)"),
        (("panorama", "--upscale", "3"), "argument --upscale: invalid choice: 3"),
        (("export", "--format", "glb"), "/out': a glTF Binary (.glb) file ends in .glb"),
        (("export", "--format", "obj"), "argument --format: invalid choice: 'obj'"),
    ],
)
def test_the_values_users_tried_are_refused_in_one_line_naming_the_option(tmp_path, args, words):
    proc = batch(*args, "--out", str(tmp_path / "out"), timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0 and len(lines) == 1 and words in lines[0], proc.stderr[-1000:]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "export, words",
    [("world.obj", "--export 'world.obj': its extension names no format"), ("no/such/w.glb", "--export 'no/such/w.glb': no such folder")],
)
def test_a_spheres_export_is_refused_before_the_sphere_is_built(tmp_path, export, words):
    proc = batch("sphere", "--rgb", "r.png", "--depth", "d.exr", "--export", export, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0 and len(lines) == 1 and words in lines[0], proc.stderr[-1000:]
