"""The consensus core stays pure: no IO, clock, randomness or concurrency (import lint).

Every module under node/consensus/ is parsed (ast, never imported here) and each
import it makes is checked; imports of other modules of the package are followed,
so a banned import cannot hide one module away.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "node" / "consensus"
BANNED = frozenset({
    "asyncio", "socket", "time", "random", "threading", "plyvel", "fastapi", "httpx", "os",
    "subprocess", "secrets", "datetime", "multiprocessing", "concurrent", "select", "selectors",
    "signal", "uvicorn", "logging", "io", "pathlib", "shutil", "tempfile", "ssl",
})


def _imports(path: Path) -> list[str]:
    """Absolute module names imported by ``path`` (relative imports resolved in the package)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = "node.consensus" if node.level == 1 else "node"
                if node.module:
                    names.append(f"{base}.{node.module}")
                else:
                    names.extend(f"{base}.{alias.name}" for alias in node.names)
            elif node.module:
                names.append(node.module)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "__import__":
            names.append("<dynamic __import__>")
    return names


def _module_path(name: str) -> Path | None:
    if not name.startswith("node.consensus"):
        return None
    parts = name.split(".")[2:]
    candidate = PACKAGE.joinpath(*parts)
    if candidate.with_suffix(".py").is_file():
        return candidate.with_suffix(".py")
    if (candidate / "__init__.py").is_file():
        return candidate / "__init__.py"
    return None


def _closure(start: Path) -> dict[Path, list[str]]:
    seen: dict[Path, list[str]] = {}
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen[path] = _imports(path)
        for name in seen[path]:
            target = _module_path(name)
            if target is not None:
                todo.append(target)
    return seen


MODULES = sorted(PACKAGE.glob("*.py"))


def test_the_package_has_the_core_modules() -> None:
    names = {p.name for p in MODULES}
    assert {"core.py", "messages.py", "types.py", "limits.py", "errors.py"} <= names


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_consensus_module_imports_nothing_impure(module: Path) -> None:
    for path, names in _closure(module).items():
        for name in names:
            assert name != "<dynamic __import__>", f"{path.name} uses __import__"
            top = name.split(".")[0]
            assert top not in BANNED, f"{path.name} imports {name} (reached from {module.name})"


def test_the_lint_catches_a_banned_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import os.path\nfrom time import monotonic\nfrom . import core\n")
    names = _imports(bad)
    assert {"os.path", "time", "node.consensus.core"} <= set(names)
    assert any(n.split(".")[0] in BANNED for n in names)
