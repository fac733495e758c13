"""The package's structure: no import circles, one home for the run files, nothing outside.

Read from the source with `ast` (nothing is imported), so the test is fast and
names the offending modules.
"""

import ast
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "tfgap")


def _modules():
    """`{dotted name: path}` of every module of the package."""
    out = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                out[dotted.removesuffix(".__init__")] = path
    return out


MODULES = _modules()


def _imports(path):
    """The package modules `path` imports, at its top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def _cycle(graph):
    """One import circle as a list of modules, or `None`."""
    state = {}

    def visit(module, path):
        state[module] = "open"
        for other in sorted(graph[module]):
            if state.get(other) == "open":
                return path[path.index(other):] + [other]
            if other not in state:
                found = visit(other, path + [other])
                if found:
                    return found
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            found = visit(module, [module])
            if found:
                return found
    return None


def test_no_import_circles():
    # A package's __init__ importing its own modules is how a package exports; a module
    # importing its package's public names goes through that __init__, so both kinds of edge
    # are kept apart: an edge into a package stands for the modules its __init__ re-exports.
    graph = {}
    for module, path in MODULES.items():
        graph[module] = {other for other in _imports(path)
                         if other != module and not other.startswith(module + ".")}
    for module in graph:
        expanded = set()
        for other in graph[module]:
            is_package = MODULES[other].endswith("__init__.py")
            expanded |= graph[other] if is_package and not module.startswith(other) else {other}
        graph[module] = {m for m in expanded if m != module and not m.startswith(module + ".")}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


RUN_FILE_NAMES = ("result.json", "history.json", "config.json")


@pytest.mark.parametrize("name", RUN_FILE_NAMES)
def test_only_rundir_spells_a_run_file_name(name):
    spelled = [os.path.relpath(path, ROOT) for module, path in MODULES.items()
               if module != "tfgap.training.rundir" and f'"{name}"' in open(path).read()]
    assert spelled == []


def test_no_file_points_outside_the_repository():
    offenders = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
        for name in files:
            if name.endswith((".py", ".md", ".flags", ".toml")):
                path = os.path.join(folder, name)
                text = open(path, encoding="utf-8", errors="replace").read()
                if re.search(r"\bPAPER\.md\b|\.\./shared/", text):
                    offenders.append(os.path.relpath(path, ROOT))
    assert offenders == [os.path.relpath(__file__, ROOT)] or offenders == []
