"""Packaging tests: the extension passes Blender's own extension tool.

These tests drive ``blender_ext.py`` -- the command-line extension tool that
ships inside the ``bpy`` package (``bpy/<ver>/scripts/addons_core/bl_pkg/cli``)
-- with the current interpreter, exactly as ``blender --command extension ...``
would, and then install the built zip through Blender's extension system
(``bpy.ops.extensions.package_install_files``) in a fresh ``bpy`` process with
a throw-away user profile.

Run with::

    .venv/bin/python -m pytest tests/test_extension_package.py -q
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
EXTENSION_ID = "diffusion3d"
TEST_REPO_MODULE = "d3d_pytest"

# Files that a working package cannot do without.
REQUIRED_ZIP_ENTRIES = (
    "blender_manifest.toml",
    "__init__.py",
    "engine/__init__.py",
    "engine/__main__.py",
    "operators/__init__.py",
    "panels/__init__.py",
    "panels/shipped_presets/generate/Quick_Draft.py",  # data the add-on reads, not just code
)

# Path components that must never end up in the package.
FORBIDDEN_COMPONENTS = frozenset({"tests", "bench", ".ci", ".git", ".venv", "__pycache__"})

CLI_TIMEOUT_S = 60
BLENDER_TIMEOUT_S = 120


def _bpy_package_dir() -> Path | None:
    """Directory of the installed ``bpy`` package, found without importing it."""
    spec = importlib.util.find_spec("bpy")
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    assert spec.origin, "importlib found a 'bpy' spec without an origin"
    return Path(spec.origin).parent


def _blender_ext_cli() -> Path:
    bpy_dir = _bpy_package_dir()
    if bpy_dir is None:
        pytest.skip("the 'bpy' module is not installed in this interpreter")
    candidates = sorted(
        bpy_dir.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"),
        key=lambda p: tuple(int(x) for x in p.parts[len(bpy_dir.parts)].split(".") if x.isdigit()),
    )
    assert candidates, f"Blender's extension CLI (blender_ext.py) was not found under {bpy_dir}/<version>/scripts/addons_core/bl_pkg/cli/"
    return candidates[-1]


def _tail(text: str, limit: int = 4000) -> str:
    text = text or ""
    return text if len(text) <= limit else "...\n" + text[-limit:]


def _describe(proc: subprocess.CompletedProcess) -> str:
    return (
        f"command: {' '.join(map(str, proc.args))}\n"
        f"exit code: {proc.returncode}\n"
        f"--- stdout (tail) ---\n{_tail(proc.stdout)}\n"
        f"--- stderr (tail) ---\n{_tail(proc.stderr)}"
    )


def _run_cli(*args: str | os.PathLike, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(_blender_ext_cli()), *map(str, args)]
    return subprocess.run(
        cmd,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )


def _build(source_dir: Path, out_dir: Path) -> Path:
    """Build the package with ``blender_ext.py build``; return the single zip."""
    out_dir.mkdir(parents=True, exist_ok=True)
    proc = _run_cli(
        "build",
        "--source-dir",
        source_dir,
        "--output-dir",
        out_dir,
        cwd=out_dir,
    )
    assert proc.returncode == 0, f"'blender_ext.py build' failed for {source_dir}\n{_describe(proc)}"
    produced = sorted(out_dir.iterdir())
    zips = [p for p in produced if p.suffix == ".zip"]
    assert len(zips) == 1 and len(produced) == 1, (
        f"expected exactly one zip in {out_dir}, found {[p.name for p in produced]}\n{_describe(proc)}"
    )
    return zips[0]


def _forbidden_entries(names: list[str]) -> list[str]:
    bad = []
    for name in names:
        parts = [p for p in name.split("/") if p]
        if any(
            part in FORBIDDEN_COMPONENTS
            or part.startswith(".")  # .venv-*, .pytest_cache, .mypy_cache, .DS_Store ...
            or part.endswith(".pyc")
            for part in parts
        ):
            bad.append(name)
    return bad


def _check_zip_contents(zip_path: Path) -> list[str]:
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        manifest = tomllib.loads(zf.read("blender_manifest.toml").decode("utf-8")) if "blender_manifest.toml" in names else {}
    missing = [n for n in REQUIRED_ZIP_ENTRIES if n not in names]
    assert not missing, f"{zip_path.name} lacks required entries {missing}; it contains:\n" + "\n".join(sorted(names))
    bad = _forbidden_entries(names)
    assert not bad, f"{zip_path.name} contains development-only paths {bad}; extend [build] paths_exclude_pattern in blender_manifest.toml"
    assert manifest.get("id") == EXTENSION_ID, f"manifest inside {zip_path.name} has id {manifest.get('id')!r}, expected {EXTENSION_ID!r}"
    return names


# --------------------------------------------------------------------------
# 1. validate
# --------------------------------------------------------------------------


def test_validate_repository_root():
    proc = _run_cli("validate", REPO_ROOT, cwd=REPO_ROOT)
    assert proc.returncode == 0, f"'blender_ext.py validate' rejected {REPO_ROOT}/blender_manifest.toml\n{_describe(proc)}"


# --------------------------------------------------------------------------
# 2. build
# --------------------------------------------------------------------------


def test_build_produces_single_clean_zip(tmp_path):
    zip_path = _build(REPO_ROOT, tmp_path / "dist")

    manifest = tomllib.loads((REPO_ROOT / "blender_manifest.toml").read_text("utf-8"))
    expected_name = f"{manifest['id']}-{manifest['version']}.zip"
    assert zip_path.name == expected_name, f"built zip is named {zip_path.name!r}, expected {expected_name!r}"
    _check_zip_contents(zip_path)

    # The built archive itself must also pass validation.
    proc = _run_cli("validate", zip_path, cwd=tmp_path)
    assert proc.returncode == 0, f"'blender_ext.py validate' rejected the built archive\n{_describe(proc)}"


def test_build_excludes_dev_paths_when_populated(tmp_path):
    """Build a copy of the checkout with every dev-only folder populated.

    In the real checkout some of these folders may be empty (or absent), which
    would make the exclusion check in the previous test vacuous.
    """
    src = tmp_path / "src"
    shutil.copytree(
        REPO_ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv*",
            "__pycache__",
            ".*cache",
            "out",
            "build",
            "dist",
            "*.zip",
        ),
    )
    sentinels = [
        "tests/test_sentinel.py",
        "bench/bench_sentinel.py",
        ".ci/sentinel.yml",
        ".git/HEAD",
        ".venv/pyvenv.cfg",
        ".venv-gpu/pyvenv.cfg",
        "__pycache__/sentinel.cpython-311.pyc",
        "engine/__pycache__/sentinel.cpython-311.pyc",
        "engine/stray.pyc",
        ".pytest_cache/README.md",
        ".mypy_cache/sentinel.json",
        ".DS_Store",
        "stale-build.zip",
    ]
    for rel in sentinels:
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"sentinel\n")

    zip_path = _build(src, tmp_path / "dist")
    names = _check_zip_contents(zip_path)
    leaked = [rel for rel in sentinels if rel in names]
    assert not leaked, f"sentinel files leaked into the package: {leaked}; extend [build] paths_exclude_pattern in blender_manifest.toml"


# --------------------------------------------------------------------------
# 3. install + register in a fresh Blender (bpy) process
# --------------------------------------------------------------------------

_INSTALL_SCRIPT = textwrap.dedent(
    r"""
    import os
    import sys
    import traceback

    ZIP_PATH, REPO_DIR, PROFILE_DIR, REPO_MODULE, PKG_ID = sys.argv[1:6]
    ADDON_MODULE = "bl_ext.%s.%s" % (REPO_MODULE, PKG_ID)


    def check(cond, msg):
        if not cond:
            raise AssertionError(msg)
        print("CHECK ok:", msg)


    def main():
        import bpy
        import addon_utils

        print("bpy", bpy.app.version_string)

        # The profile must be the throw-away one.
        for kind in ("CONFIG", "SCRIPTS", "EXTENSIONS"):
            path = os.path.realpath(bpy.utils.user_resource(kind))
            check(path.startswith(os.path.realpath(PROFILE_DIR)),
                  "user %s dir %s is inside the temporary profile" % (kind, path))

        if not hasattr(bpy.ops.extensions, "package_install_files"):
            addon_utils.enable("bl_pkg", default_set=False)
        check("package_install_files" in dir(bpy.ops.extensions),
              "bpy.ops.extensions.package_install_files is available")

        # (a) a throw-away user repository with a custom directory
        repo = bpy.context.preferences.extensions.repos.new(
            name="Diffusion 3D pytest", module=REPO_MODULE, custom_directory=REPO_DIR,
        )
        check(repo.module == REPO_MODULE and repo.enabled,
              "user repository %r created" % REPO_MODULE)
        check(os.path.realpath(repo.directory) == os.path.realpath(REPO_DIR),
              "repository directory is %s" % repo.directory)

        result = bpy.ops.extensions.package_install_files(
            filepath=ZIP_PATH, repo=REPO_MODULE, enable_on_install=True,
        )
        check(result == {"FINISHED"}, "package_install_files returned %r" % (result,))
        pkg_dir = os.path.join(REPO_DIR, PKG_ID)
        check(os.path.isfile(os.path.join(pkg_dir, "blender_manifest.toml")),
              "package extracted to %s" % pkg_dir)

        # (b) registered
        check(ADDON_MODULE in sys.modules, "module %s imported" % ADDON_MODULE)
        mod_file = os.path.realpath(sys.modules[ADDON_MODULE].__file__)
        check(mod_file.startswith(os.path.realpath(pkg_dir) + os.sep),
              "module loaded from the installed copy (%s)" % mod_file)
        addon = bpy.context.preferences.addons.get(ADDON_MODULE)
        check(addon is not None, "%s is enabled in preferences.addons" % ADDON_MODULE)
        check(addon.preferences is not None, "add-on preferences object exists")
        check(type(addon.preferences).bl_idname == ADDON_MODULE,
              "add-on preferences bl_idname is %r" % type(addon.preferences).bl_idname)
        for op_name in ("build_world_sphere", "capture_panorama"):
            check(hasattr(bpy.ops.diffusion3d, op_name)
                  and op_name in dir(bpy.ops.diffusion3d),
                  "bpy.ops.diffusion3d.%s exists" % op_name)
            rna = getattr(bpy.ops.diffusion3d, op_name).get_rna_type()
            check(rna is not None, "bpy.ops.diffusion3d.%s.get_rna_type() -> %s"
                  % (op_name, rna.identifier))

        # (c) disable cleanly
        errors = []
        addon_utils.disable(ADDON_MODULE, default_set=True, handle_error=errors.append)
        check(not errors, "disable raised no errors (%r)" % (errors,))
        check(bpy.context.preferences.addons.get(ADDON_MODULE) is None,
              "%s removed from preferences.addons" % ADDON_MODULE)
        check("capture_panorama" not in dir(bpy.ops.diffusion3d),
              "operators unregistered")
        try:
            bpy.ops.diffusion3d.capture_panorama.get_rna_type()
        except KeyError:
            print("CHECK ok: capture_panorama RNA type is gone")
        else:
            raise AssertionError("capture_panorama RNA type still registered after disable")

        result = bpy.ops.extensions.package_uninstall(repo_directory=REPO_DIR, pkg_id=PKG_ID)
        check(result == {"FINISHED"}, "package_uninstall returned %r" % (result,))
        check(not os.path.exists(pkg_dir), "package directory removed")


    code = 1
    try:
        main()
        print("DIFFUSION3D_INSTALL_OK")
        code = 0
    except BaseException:
        traceback.print_exc()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # bpy may hang at interpreter shutdown
    """
)


@pytest.mark.timeout(180)
def test_built_zip_installs_and_registers(tmp_path):
    if _bpy_package_dir() is None:
        pytest.skip("the 'bpy' module is not installed in this interpreter")
    zip_path = _build(REPO_ROOT, tmp_path / "dist")

    profile = tmp_path / "profile"
    home = tmp_path / "home"
    repo_dir = tmp_path / "ext_repo"
    for d in (profile, home):
        d.mkdir()
    script = tmp_path / "install_check.py"
    script.write_text(_INSTALL_SCRIPT, encoding="utf-8")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLENDER_USER_", "BLENDER_SYSTEM_"))}
    env.update(
        HOME=str(home),
        USERPROFILE=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        # Blender 4.5 honours these; RESOURCES alone would suffice, the rest
        # pin each sub-directory explicitly.
        BLENDER_USER_RESOURCES=str(profile),
        BLENDER_USER_CONFIG=str(profile / "config"),
        BLENDER_USER_SCRIPTS=str(profile / "scripts"),
        BLENDER_USER_EXTENSIONS=str(profile / "extensions"),
        BLENDER_USER_DATAFILES=str(profile / "datafiles"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    cmd = [sys.executable, str(script), str(zip_path), str(repo_dir), str(profile), TEST_REPO_MODULE, EXTENSION_ID]
    try:
        proc = subprocess.run(
            cmd,
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=BLENDER_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as ex:
        out = ex.stdout.decode(errors="replace") if isinstance(ex.stdout, bytes) else ex.stdout
        err = ex.stderr.decode(errors="replace") if isinstance(ex.stderr, bytes) else ex.stderr
        pytest.fail(
            f"bpy install check did not finish within {BLENDER_TIMEOUT_S}s\n"
            f"--- stdout (tail) ---\n{_tail(out)}\n--- stderr (tail) ---\n{_tail(err)}"
        )

    assert proc.returncode == 0 and "DIFFUSION3D_INSTALL_OK" in proc.stdout, (
        f"installing/registering {zip_path.name} in a fresh bpy process failed\n{_describe(proc)}"
    )
    assert "Traceback" not in proc.stderr, f"install/register/unregister printed a traceback\n{_describe(proc)}"
