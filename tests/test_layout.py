"""The layout of lib/: five rooms along a probe's way, imports going one way only."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

from lib.paths import REPO

LIB = REPO / "lib"
# A probe is built, kept, sent, graded and counted, then shown: a room imports only rooms before it.
ROOMS = ("probes", "store", "run", "measure", "view")
GROUND = {"paths"}  # under every room
ENTRY = {"cli", "__main__"}  # above every room


def room(dotted: str) -> str | None:
    """The room of a module lib.<room>...; the ground and entry points by their own name."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "lib" else None


def rank(name: str) -> int:
    if name in GROUND:
        return -1
    if name in ENTRY:
        return len(ROOMS)
    return ROOMS.index(name)


def imported(tree: ast.AST, package: str = "lib") -> list[tuple[int, str]]:
    """Every lib module a file of `package` imports, anywhere in it (functions and TYPE_CHECKING blocks
    too), relative imports resolved; importlib.import_module("lib....") counts as an import."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            if module == "lib":
                found += [(node.lineno, f"lib.{a.name}") for a in node.names]
            elif module.startswith("lib."):
                found.append((node.lineno, module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("lib.")]
        elif isinstance(node, ast.Call) and ast.unparse(node.func).endswith("import_module") and node.args:
            name = node.args[0]
            if isinstance(name, ast.Constant) and str(name.value).startswith("lib."):
                found.append((node.lineno, str(name.value)))
    return found


def modules() -> list[tuple[Path, str]]:
    return [(p, room(".".join(p.relative_to(REPO).with_suffix("").parts))) for p in sorted(LIB.rglob("*.py"))]


def test_every_module_of_lib_lives_in_a_room_or_is_the_ground_or_an_entry_point():
    strays = [
        str(p.relative_to(REPO)) for p, r in modules() if r not in (*ROOMS, *GROUND, *ENTRY, "__init__")
    ]
    assert strays == []


def test_imports_go_down_the_flow_only():
    upward = []
    for path, here in modules():
        if here in (None, "__init__"):
            continue
        package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
        for line, target in imported(ast.parse(path.read_text(encoding="utf-8")), package):
            there = room(target)
            if there is not None and rank(there) > rank(here):
                upward.append(f"{path.relative_to(REPO)}:{line} ({here}) imports {target} ({there})")
    assert upward == []


def test_the_check_itself_sees_an_upward_import():
    tree = ast.parse("def f():\n    from lib.view import charts\n")
    assert imported(tree) == [(2, "lib.view")]
    assert rank(room("lib.view.charts")) > rank("store")
    relative = ast.parse("from ..view import charts\nimportlib.import_module('lib.measure.metrics')\n")
    assert imported(relative, "lib.probes") == [(1, "lib.view"), (2, "lib.measure.metrics")]


def test_lib_runs_without_streamlit():
    users = [
        str(p.relative_to(REPO))
        for p, _ in modules()
        if any(
            isinstance(n, (ast.Import, ast.ImportFrom))
            and any((getattr(n, "module", None) or a.name).startswith("streamlit") for a in n.names)
            for n in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        )
    ]
    assert users == []


def test_each_room_says_what_it_holds_and_what_it_may_import():
    for name in ROOMS:
        doc = ast.get_docstring(ast.parse((LIB / name / "__init__.py").read_text(encoding="utf-8")))
        assert doc and "May import" in doc, name
