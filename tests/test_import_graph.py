"""The imports run one way: handlers → engine → flows → understanding → storage, with no
cycle anywhere in bot/ or storage/ (imports inside functions count too)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("bot.handlers", "bot.engine", "bot.flows", "bot.understanding", "storage")


def modules() -> dict[str, Path]:
    found = {}
    for package in ("bot", "storage"):
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = {}
    for name, path in known.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets |= {node.module} & known.keys()
                targets |= {f"{node.module}.{a.name}" for a in node.names} & known.keys()
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names} & known.keys()
        edges[name] = targets - {name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def layer(module: str) -> int | None:
    for rank, prefix in enumerate(LAYERS):
        if module == prefix or module.startswith(prefix + "."):
            return rank
    return None


def test_no_import_cycle() -> None:
    assert cycles(graph()) == []


def test_no_layer_imports_one_above_it() -> None:
    upward = [
        f"{source} → {target}"
        for source, targets in graph().items()
        for target in targets
        if (a := layer(source)) is not None and (b := layer(target)) is not None and b < a
    ]
    assert upward == []


def test_storage_never_imports_bot_and_understanding_stands_alone() -> None:
    edges = graph()
    assert [t for s, ts in edges.items() if s.startswith("storage") for t in ts if "bot" in t] == []
    outside = [
        f"{s} → {t}"
        for s, ts in edges.items()
        if s.startswith("bot.understanding")
        for t in ts
        if t.startswith("bot.") and not t.startswith("bot.understanding")
    ]
    assert outside == []


def test_the_graph_sees_the_imports_it_checks() -> None:
    edges = graph()  # a checker that saw nothing would pass everything
    assert "bot.understanding" in edges["bot.flows.dialogue"]
    assert "bot.flows.dialogue" in edges["bot.engine.dispatcher"]
    assert len(edges) > 60
