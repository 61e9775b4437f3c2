"""Marks as skipped the mutants of a cosmic-ray session that only change a type annotation.

Every module of the recorder starts with ``from __future__ import annotations``, so an annotation
is a string nobody evaluates: ``-> tuple[str, int] | None`` made ``... - None`` is the same
program, and cosmic-ray makes eleven such mutants of every ``X | None`` (one per binary
operator). Left in, they are survivors no test can kill, and each costs a test run. A module
without the future import evaluates its annotations, so its mutants are left to the tests.

    python scripts/mutation_annotations.py SESSION.sqlite

Prints how many it skipped. Used by scripts/mutation after ``cosmic-ray init``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from cosmic_ray.work_db import WorkDB, use_db  # type: ignore[import-untyped]
from cosmic_ray.work_item import WorkerOutcome, WorkResult  # type: ignore[import-untyped]

Position = tuple[int, int]  # (line from 1, column from 0 in characters), as cosmic-ray's


def _future_annotations(tree: ast.Module) -> bool:
    return any(isinstance(node, ast.ImportFrom) and node.module == "__future__"
               and any(alias.name == "annotations" for alias in node.names)
               for node in tree.body)


def _annotations(tree: ast.Module) -> list[ast.expr]:
    found: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            arguments = node.args
            for arg in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs,
                        arguments.vararg, arguments.kwarg):
                if arg is not None and arg.annotation is not None:
                    found.append(arg.annotation)
            if node.returns is not None:
                found.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            found.append(node.annotation)
    return found


def annotation_spans(source: str) -> list[tuple[Position, Position]]:
    """Where the annotations are that Python never evaluates (none without the future import)."""
    tree = ast.parse(source)
    if not _future_annotations(tree):
        return []
    lines = source.splitlines()

    def position(line: int, byte_column: int) -> Position:
        # ast counts columns in UTF-8 bytes, cosmic-ray (parso) in characters.
        return line, len(lines[line - 1].encode()[:byte_column].decode(errors="replace"))

    spans: list[tuple[Position, Position]] = []
    for node in _annotations(tree):
        if node.end_lineno is None or node.end_col_offset is None:
            continue
        spans.append((position(node.lineno, node.col_offset),
                      position(node.end_lineno, node.end_col_offset)))
    return spans


def main(session: Path) -> int:
    skipped = 0
    spans_by_module: dict[Path, list[tuple[Position, Position]]] = {}
    with use_db(session, mode=WorkDB.Mode.open) as db:
        for item in list(db.pending_work_items):
            mutations = list(item.mutations)
            inside = True
            for mutation in mutations:
                path = Path(mutation.module_path)
                if path not in spans_by_module:
                    spans_by_module[path] = annotation_spans(path.read_text())
                start, end = tuple(mutation.start_pos), tuple(mutation.end_pos)
                if not any(first <= start and end <= last
                           for first, last in spans_by_module[path]):
                    inside = False
            if mutations and inside:
                db.set_result(item.job_id, WorkResult(
                    output="changes only an annotation, which is never evaluated",
                    worker_outcome=WorkerOutcome.SKIPPED))
                skipped += 1
    print(f"{skipped} mutants only change an annotation: skipped")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1])))
