"""The engine's layers, read from every module's imports (those inside functions too): each arrow points down, none goes round.

From the top: the jobs table, the client, the worker and the Ray driver, which know every capability; the capabilities
(the world, 3D-DST, object views, ViewNeTI), each one package that may use the shared layer and no other capability; the
shared layer (``engine/diffusion/`` for what every model shares, and the base modules) that knows no capability. Nothing
in ``engine/`` imports Blender or the add-on around it.
"""

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "engine"
CAPABILITIES = ("world", "dst", "multiview", "viewneti")
TOP = ("jobs", "client", "worker", "__main__", "info", "echo", "distributed")
BLENDER = ("bpy", "mathutils", "addon_utils", "bl_ui", "bmesh", "gpu", "diffusion3d", "operators", "panels")


def module_name(path: Path) -> str:
    parts = path.relative_to(ENGINE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ENGINE.rglob("*.py"))}


def imports(name: str) -> set[str]:
    """Every module ``name`` imports, absolute, anywhere in its body."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES)
    return found


def layer(name: str) -> str:
    """ "top", a capability's name, or "shared"."""
    parts = name.split(".")
    if len(parts) > 1 and parts[1] in TOP:
        return "top"
    if len(parts) > 1 and parts[1] in CAPABILITIES:
        return parts[1]
    return "shared"


def test_no_engine_module_imports_blender_or_the_add_on():
    offending = {n: sorted(i for i in imports(n) if i.split(".")[0] in BLENDER) for n in MODULES}
    assert {n: i for n, i in offending.items() if i} == {}


def test_the_shared_layer_knows_no_capability_and_a_capability_no_other():
    upward = {}
    for name in MODULES:
        here = layer(name)
        wrong = sorted(
            i for i in imports(name) if i in MODULES and layer(i) not in (here, "shared") and not (here == "top" and layer(i) != "top")
        )
        if wrong:
            upward[name] = wrong
    assert upward == {}


def test_no_module_imports_itself_round_a_circle():
    graph = {name: {i for i in imports(name) if i in MODULES and i != name and not name.startswith(i + ".")} for name in MODULES}
    graph = {n: {i for i in deps if not (MODULES[i].name == "__init__.py" and not i.startswith(n))} for n, deps in graph.items()}
    cycles, state = [], dict.fromkeys(graph, 0)

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state[nxt] == 1:
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif state[nxt] == 0:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if state[node] == 0:
            visit(node, [node])
    assert cycles == []
