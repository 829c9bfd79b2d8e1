"""The shape src/thresher keeps: no module over 500 lines, no function or method body over 80.

Alembic's generated migrations (store/migrations) are left out."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "thresher"
LEFT_OUT = PACKAGE / "store" / "migrations"
MAX_MODULE_LINES = 500
MAX_BODY_LINES = 80


def _modules() -> list[Path]:
    found = sorted(p for p in PACKAGE.rglob("*.py") if not p.is_relative_to(LEFT_OUT))
    assert found, f"no modules under {PACKAGE}"
    return found


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the body's first statement (a docstring counts) to its end; not the signature."""
    assert node.end_lineno is not None
    return node.end_lineno - node.body[0].lineno + 1


def _functions(tree: ast.AST) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function and method, nested ones too, with its qualified name."""

    def walk(
        node: ast.AST, prefix: str
    ) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                yield f"{prefix}{child.name}", child
                yield from walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")
            else:
                yield from walk(child, prefix)

    return walk(tree, "")


def long_functions(source: str, *, limit: int) -> list[tuple[str, int]]:
    """(qualified name, body lines) of each function in `source` whose body is over `limit`."""
    found = ((name, _body_lines(node)) for name, node in _functions(ast.parse(source)))
    return [(name, lines) for name, lines in found if lines > limit]


def _name(path: Path) -> str:
    return path.relative_to(SRC).as_posix()


def test_the_measure_counts_a_body_from_its_first_statement_to_its_end() -> None:
    def source(statements: int) -> str:
        body = "".join(f"        x{i} = {i}\n" for i in range(statements))
        return (
            "class C:\n"
            "    @property\n"
            "    def m(\n"
            "        self,\n"
            "    ) -> None:\n"
            '        """A docstring\n\n        of three lines."""\n' + body + "\n"
            "async def f():\n"
            "    def inner():\n" + body
        )

    assert long_functions(source(77), limit=80) == []
    assert long_functions(source(78), limit=80) == [("C.m", 81)]
    assert long_functions(source(80), limit=80) == [("C.m", 83), ("f", 81)]
    assert long_functions(source(81), limit=80) == [("C.m", 84), ("f", 82), ("f.inner", 81)]


def test_no_module_is_over_500_lines() -> None:
    too_long = [
        f"{_name(p)}: {n}"
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert too_long == [], f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(too_long)


def test_no_function_body_is_over_80_lines() -> None:
    too_long = [
        f"{_name(p)}:{name}: {lines}"
        for p in _modules()
        for name, lines in long_functions(p.read_text(), limit=MAX_BODY_LINES)
    ]
    assert too_long == [], f"function bodies over {MAX_BODY_LINES} lines:\n" + "\n".join(too_long)
