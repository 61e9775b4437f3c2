"""The recorder's import graph, read from the source (no module is imported to read it).

Modules are named as installed: ``drivers/``, ``codecs/`` and ``api/`` are ``recorder.drivers``,
``recorder.codecs`` and ``recorder.api`` (setuptools ``package-dir``). An edge is an import that
runs: imports inside ``if TYPE_CHECKING:`` only serve the type checker and are left out;
imports inside functions run when the function does and are kept.

``python -m tests.helpers.imports`` prints every cycle (none is the rule).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"recorder": "recorder", "drivers": "recorder.drivers", "codecs": "recorder.codecs",
           "api": "recorder.api"}


@dataclass
class Module:
    name: str
    path: Path
    imports: set[str] = field(default_factory=set)  # recorder modules it imports
    external: set[str] = field(default_factory=set)  # top-level names of everything else
    lines: int = 0


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if folder == "recorder" and parts[:1] in (["drivers"], ["codecs"], ["api"]):
                continue
            found[".".join([package, *parts])] = path
    return found


def _is_type_checking(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and (
        (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
        or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING"))


def _statements(tree: ast.Module) -> Iterator[ast.stmt]:
    """Every statement that can run, nested ones included (imports are statements, so the
    expressions, most of a tree, need no visit); the body of ``if TYPE_CHECKING:`` left out."""
    stack: list[ast.AST] = list(reversed(tree.body))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.stmt):
            yield node
        for attr in ("handlers", "finalbody", "orelse", "body", "cases"):
            if attr == "body" and isinstance(node, ast.stmt) and _is_type_checking(node):
                continue
            children = getattr(node, attr, None)
            if isinstance(children, list):
                stack.extend(reversed([c for c in children if isinstance(c, ast.AST)]))


def graph() -> dict[str, Module]:
    """Every module of the package and what it imports when it runs."""
    paths = _modules()
    modules: dict[str, Module] = {}
    for name, path in paths.items():
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        module = Module(name, path, lines=text.count("\n"))
        is_package = path.name == "__init__.py"
        for node in _statements(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    _add(module, alias.name, paths)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    target = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    target = node.module or ""
                for alias in node.names:
                    # "from package import module" imports the module; anything else, the
                    # module the name is in.
                    sub = f"{target}.{alias.name}"
                    _add(module, sub if sub in paths else target, paths)
        module.imports.discard(name)
        modules[name] = module
    return modules


def _add(module: Module, target: str, paths: dict[str, Path]) -> None:
    if target == "recorder" or target.startswith("recorder."):
        while target not in paths and "." in target:
            target = target.rsplit(".", 1)[0]
        module.imports.add(target)
    else:
        module.external.add(target.split(".")[0])


def cycles(modules: dict[str, Module]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(modules[v].imports):
            if w not in modules:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(modules):
        if v not in index:
            visit(v)
    return found


def reachable(modules: dict[str, Module], start: str) -> set[str]:
    """Every recorder module ``start`` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in modules[todo.pop()].imports:
            if nxt in modules and nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def main() -> int:
    found = cycles(graph())
    for group in found:
        print("import cycle:", " <-> ".join(group))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
