"""The code's shape: no import cycles between the package's modules (module-level imports),
no function longer than 80 lines, no purification mode tested by name in the trainer."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "d2sp"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def trees() -> dict[str, tuple[Path, ast.Module]]:
    return {module_name(p): (p, ast.parse(p.read_text(), str(p))) for p in sorted(PACKAGE.rglob("*.py"))}


def module_imports(name: str, path: Path, tree: ast.Module, known: set[str]) -> set[str]:
    """Package modules imported at module level (not inside functions)."""
    out = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in tree.body:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for a in node.names:
                full = f"{base}.{a.name}"
                out.add(full if full in known else base)
    return {m for m in out if m in known and m != name}


def test_no_import_cycles():
    mods = trees()
    graph = {n: module_imports(n, p, t, set(mods)) for n, (p, t) in mods.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(n, stack):
        state[n] = 1
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                cycles.append(" -> ".join([*stack[stack.index(m) :], m]))
            elif m not in state:
                visit(m, [*stack, m])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])
    # a package's __init__ importing its own submodules is not a cycle of ideas
    cycles = [c for c in cycles if not all(x.startswith(c.split(" -> ")[0]) for x in c.split(" -> "))]
    assert not cycles, "\n".join(cycles)


def test_no_function_longer_than_80_lines():
    long = []
    for path, tree in trees().values():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > 80:
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, "\n".join(long)


def test_the_trainer_tests_no_purification_mode_by_name():
    from d2sp.purify import list_modes

    modes = set(list_modes())
    named = []
    for path in sorted((PACKAGE / "training").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Compare):  # `mode == "paper"`, `mode in ("scn", ...)`
                continue
            for part in ast.walk(node):
                if isinstance(part, ast.Constant) and isinstance(part.value, str) and part.value in modes:
                    named.append(f"{path.name}:{node.lineno} {part.value!r}")
    assert not named, "\n".join(named)
