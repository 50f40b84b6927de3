"""The shipped packages' import graph: one direction of dependency, and no circle.

``python -m tests.architecture`` parses (never imports) every module of the shipped
packages, prints the package graph (each package, then the packages it imports) and
exits 0, or prints every breach and exits 1. ``tests/test_architecture.py`` runs the
same check inside ``make test``.

The rooms, lowest first (:data:`ALLOWED` is the rule, written once)::

    ledger         data and proofs, no network          imports nothing of ours
    node           a validator                          ledger
    identity       the library (wallet, issuer, verifier logic)    ledger
    identity.http  the identity HTTP services           ledger, node, identity
    cli            the `imi` command and the demo        all of the above
    bench          benchmarks                           all of the above

Every import counts: at module level, inside a function, or under
``TYPE_CHECKING`` — a lazy import hides a circle, it does not remove it. The
identity library and the ledger also may not import a web framework
(:data:`WEB_FRAMEWORKS`): only ``identity.http`` and ``node`` serve HTTP.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("ledger", "node", "identity", "cli", "bench")
# The rooms, most specific first: a module belongs to the first whose prefix it has.
ROOMS = ("identity.http", "ledger", "node", "identity", "cli", "bench")
LAYERS = ("ledger", "node", "identity", "identity.http", "cli", "bench")  # lowest first
ALLOWED: Mapping[str, frozenset[str]] = {
    "ledger": frozenset(),
    "node": frozenset({"ledger"}),
    "identity": frozenset({"ledger"}),
    "identity.http": frozenset({"ledger", "node", "identity"}),
    "cli": frozenset({"ledger", "node", "identity", "identity.http"}),
    "bench": frozenset({"ledger", "node", "identity", "identity.http", "cli"}),
}
WEB_FRAMEWORKS = frozenset({"fastapi", "starlette", "uvicorn", "pydantic"})
NO_WEB_ROOMS = frozenset({"ledger", "identity"})


@dataclass(frozen=True, slots=True)
class Breach:
    """One broken rule: ``importer`` imports ``imported`` (``why`` says which rule)."""

    importer: str
    imported: str
    why: str

    def __str__(self) -> str:
        return f"{self.importer} -> {self.imported}: {self.why}"


def room_of(module: str) -> str | None:
    """The room (see :data:`ROOMS`) of a dotted module name, or None for a foreign one."""
    for room in ROOMS:
        if module == room or module.startswith(room + "."):
            return room
    return None


def discover(root: Path = ROOT, packages: Iterable[str] = SHIPPED) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under ``packages``."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _imported_names(module: str, is_package: bool, source: str) -> set[str]:
    """Every dotted name ``source`` imports (relative imports resolved)."""
    here = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def _resolve(name: str, modules: Mapping[str, Path]) -> str:
    """The longest known module ``name`` lies in (``from a.b import c`` may name a function)."""
    candidate = name
    while candidate and candidate not in modules:
        candidate = candidate.rpartition(".")[0]
    return candidate or name


def import_graph(modules: Mapping[str, Path]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(module -> our modules it imports, module -> foreign top-level packages it imports)."""
    ours: dict[str, set[str]] = {}
    foreign: dict[str, set[str]] = {}
    for module, path in modules.items():
        names = _imported_names(module, path.name == "__init__.py", path.read_text())
        ours[module] = {_resolve(name, modules) for name in names if room_of(name) is not None} - {module}
        foreign[module] = {name.split(".")[0] for name in names if room_of(name) is None}
    return ours, foreign


def direction_breaches(ours: Mapping[str, set[str]], foreign: Mapping[str, set[str]]) -> list[Breach]:
    """Imports that point up or sideways (:data:`ALLOWED`), or into a web framework."""
    breaches: list[Breach] = []
    for importer in sorted(ours):
        room = room_of(importer)
        assert room is not None, importer
        for imported in sorted(ours[importer]):
            target = room_of(imported)
            if target is not None and target != room and target not in ALLOWED[room]:
                breaches.append(Breach(importer, imported, f"{room} may not import {target}"))
        if room in NO_WEB_ROOMS:
            for name in sorted(foreign[importer] & WEB_FRAMEWORKS):
                breaches.append(Breach(importer, name, f"{room} may not import a web framework"))
    return breaches


def circles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, list[str]]] = [(start, sorted(graph.get(start, ())))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, pending = work[-1]
            if pending:
                nxt = pending.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.get(nxt, ()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def package_graph(ours: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """Room -> the other rooms its modules import."""
    rooms: dict[str, set[str]] = {room: set() for room in LAYERS}
    for importer, imported in ours.items():
        room = room_of(importer)
        assert room is not None
        rooms[room].update(r for r in map(room_of, imported) if r is not None and r != room)
    return rooms


def check(root: Path = ROOT) -> tuple[dict[str, set[str]], list[str]]:
    """(package graph, every problem found as one line); no problem means the layout holds."""
    ours, foreign = import_graph(discover(root))
    problems = [str(breach) for breach in direction_breaches(ours, foreign)]
    problems += ["import circle: " + " <-> ".join(c) for c in circles(ours)]
    rooms = package_graph(ours)
    problems += ["package circle: " + " <-> ".join(c) for c in circles(rooms)]
    return rooms, problems


def main(argv: list[str] | None = None) -> int:
    rooms, problems = check()
    for room in LAYERS:
        print(f"{room:<14} -> {', '.join(sorted(rooms[room])) or '(nothing of ours)'}")
    for problem in problems:
        print("BREACH", problem)
    print(f"architecture: {len(rooms)} packages, {len(problems)} breaches")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
