"""The source tree's layers: who may import whom, and no import loops (docs/architecture.md).

Read from the source with `ast`, so it needs nothing to run: every `import` and `from …
import` of `app/` and `worker/`, at any depth: an import inside a function, or one under
`if TYPE_CHECKING:` for an annotation, still ties two modules together.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# A module of the first package may never import a module of those after it.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "app.crypto": (
        "app.api", "app.web", "app.http", "app.domain", "app.infra", "app.storage", "app.db",
        "app.services", "fastapi", "starlette", "sqlalchemy",
    ),
    "app.domain": ("app.api", "app.web", "app.http", "fastapi", "starlette", "uvicorn"),
    "app.infra": ("app.api", "app.web", "app.http", "app.domain", "fastapi", "starlette"),
    "app.storage": ("app.api", "app.web", "app.http", "app.domain", "fastapi", "starlette"),
    "app.db": ("app.api", "app.web", "app.http", "app.domain", "fastapi", "starlette"),
    "app.http": ("app.api", "app.web"),
    "app.api": ("app.web",),
    "app.web": ("app.api",),
    # The client talks HTTP to a server, wherever it runs: none of the server's layers.
    "app.client": (
        "app.api", "app.web", "app.http", "app.domain", "app.infra", "app.storage", "app.db",
        "app.services", "app.settings", "worker", "fastapi", "starlette", "sqlalchemy",
    ),
    "worker": ("app.api", "app.web", "app.http", "fastapi", "starlette"),
}  # fmt: skip


def module_name(path: Path) -> str:
    """`app/domain/links.py` -> `app.domain.links`; a package's `__init__` is the package."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


SOURCES = {
    module_name(path): path
    for folder in ("app", "worker")
    for path in sorted((REPO / folder).rglob("*.py"))
}


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node


def imports_of(module: str) -> set[str]:
    """The modules `module` imports at run time (`from a import b` is `a.b` when b is one)."""
    found: set[str] = set()
    package = module if SOURCES[module].name == "__init__.py" else module.rpartition(".")[0]
    for node in _import_nodes(ast.parse(SOURCES[module].read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            base = f"{anchor}.{base}" if base else anchor
        for alias in node.names:
            candidate = f"{base}.{alias.name}"
            found.add(candidate if candidate in SOURCES else base)
    return found


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize("module", sorted(SOURCES))
def test_module_imports_only_what_its_layer_may(module: str) -> None:
    banned = [
        (name, layer)
        for layer, forbidden in FORBIDDEN.items()
        if _inside(module, layer)
        for name in imports_of(module)
        if any(_inside(name, other) for other in forbidden)
    ]
    assert banned == [], f"{module} imports what its layer may not: {banned}"


def _cycles() -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    graph = {m: sorted(n for n in imports_of(m) if n in SOURCES and n != m) for m in SOURCES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return groups


def test_no_module_imports_itself_through_others() -> None:
    assert _cycles() == []


def test_the_layers_are_read_from_every_source_file() -> None:
    assert {"app.domain.links", "app.crypto.sealing", "app.http.deps", "worker.queue"} <= set(
        SOURCES
    )
    assert "app.crypto.sealing" in imports_of("app.domain.plaintext")
