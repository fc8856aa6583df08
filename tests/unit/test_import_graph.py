"""No import circle between the wheel's top-level packages (DESIGN.md's layers).

Read from the source, not by importing: every ``import`` counts, wherever it sits, since
a function-level import is still a dependency of its package.
"""

from __future__ import annotations

import ast
import tomllib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def wheel_packages() -> list[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]


def imports_between(packages: list[str]) -> dict[str, dict[str, str]]:
    """package -> {imported package: the first module seen importing it}."""
    graph: dict[str, dict[str, str]] = defaultdict(dict)
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in packages and top != package:
                        graph[package].setdefault(top, module)
    return graph


def cycles(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    found = []

    def walk(path: list[str]) -> None:
        for nxt in graph.get(path[-1], {}):
            if nxt == path[0]:
                found.append(path)
            elif nxt not in path and nxt > path[0]:  # each cycle once, from its least member
                walk([*path, nxt])

    for start in sorted(graph):
        walk([start])
    return found


def test_the_cycle_finder_finds_a_circle():
    graph = {"a": {"b": "a.x"}, "b": {"c": "b.y"}, "c": {"a": "c.z"}, "d": {"a": "d.w"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_import_circle_between_top_level_packages():
    packages = wheel_packages()
    graph = imports_between(packages)
    described = [
        " -> ".join(f"{a} ({graph[a][b]})" for a, b in zip(c, [*c[1:], c[0]], strict=True))
        for c in cycles(graph)
    ]
    assert described == [], "import circles:\n" + "\n".join(described)
