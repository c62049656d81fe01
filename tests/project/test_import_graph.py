"""The import graph of shared/: no cycle, and every import runs down the layers.

The graph is built from the source with ``ast``: module-level and
function-level imports alike (an import inside a function is still a
dependency), ``from shared import x`` resolved to the module ``shared.x`` when
it is one, and ``TYPE_CHECKING`` imports included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"

#: (name, layer, why it sits there). The longest name that is a module's own name or a dotted prefix
#: of it gives the module's layer. A module may import its own package, or anything of a lower layer.
LAYERS: tuple[tuple[str, int, str], ...] = (
    ("shared", 0, "the package itself: nothing but its docstring"),
    ("shared.errors", 0, "the one exception tree: everything raises it, it needs nothing"),
    ("shared.events", 0, "structured log lines: everything logs, it needs nothing"),
    ("shared.settings", 1, "settings types and parsing: every concern reads them, so they name no concern"),
    (
        "shared.storage",
        2,
        "clients, row keys, guarded writes, the outbox: what every concern's store is built on",
    ),
    ("shared.tokens", 3, "signed tokens: a primitive the account core issues and checks"),
    (
        "shared.throttling",
        3,
        "lockout and rate-limit arithmetic and their rows: the account core applies them",
    ),
    ("shared.sessions", 3, "sessions per device on the account row: the account core starts and ends them"),
    (
        "shared.recovery.codes",
        3,
        "one-time codes' rows: a leaf the account service hands to recovery and mail",
    ),
    ("shared.accounts", 4, "the account core: register, password, delete, the account's rows"),
    ("shared.mfa", 5, "the second factor, built on accounts (its row beside the account's)"),
    ("shared.recovery", 5, "reset, verification, email change: changes made with a code, on accounts"),
    (
        "shared.passkeys",
        6,
        "passkeys: a sign-in of their own, which asks for the second factor (mfa) to add one",
    ),
    (
        "shared.login",
        7,
        "the login flow: the password step (accounts), the second step (mfa), closing an account",
    ),
    ("shared.http", 8, "the HTTP edge: requests, problems, the gate, the pages"),
    ("shared.mail", 8, "the courier: the queue-triggered sending, which reads accounts and issues codes"),
    ("shared.operations", 8, "the operator's actions and the scheduled cleanup, over every concern"),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(SHARED.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(SHARED.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of shared/ that ``name`` imports, anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            # ``from shared import http`` and ``from shared.mfa import totp`` name modules.
            found |= {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known}
    return {module for module in found if module in known and module != name}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, set(known)) for name, path in known.items()}


def layer_of(module: str) -> tuple[str, int]:
    matches = [(name, layer) for name, layer, _ in LAYERS if module == name or module.startswith(name + ".")]
    assert matches, f"{module} has no layer: add its package to LAYERS"
    return max(matches, key=lambda match: len(match[0]))


def package_of(module: str) -> str:
    """The concern a module belongs to: ``shared.<concern>`` (``shared.errors`` for a top-level module)."""
    return ".".join(module.split(".")[:2])


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph (its modules, the first repeated at the end), or ``None``."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_the_graph_is_built_from_the_source() -> None:
    """The scan sees the imports it must judge, so an empty graph cannot pass the tests below."""
    edges = graph()
    assert len(edges) > 40
    assert "shared.accounts.store" in edges["shared.accounts.service"]
    assert "shared.mfa.auth" in edges["shared.login.reauthentication"]
    assert "shared.storage.queue_retry" in edges["shared.storage.clients"], "a function-level import"
    assert "shared.mfa.totp" in edges["shared.mfa.flows"], "`from shared.mfa import totp` names a module"


def test_the_scan_finds_a_cycle() -> None:
    """The cycle finder reports a cycle when there is one, and none when there is none."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle() -> None:
    """No module of shared/ imports, through any chain, a module that imports it."""
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_every_module_has_a_layer() -> None:
    """Each module of shared/ falls under an entry of the layer table."""
    for module in modules():
        layer_of(module)


@pytest.mark.parametrize("module", sorted(modules()))
def test_imports_run_down_the_layers(module: str) -> None:
    """A module imports its own package or lower layers: never another package of its layer, never up."""
    _, layer = layer_of(module)
    upward = []
    for target in sorted(graph()[module]):
        target_entry, target_layer = layer_of(target)
        same_package = package_of(target) == package_of(module) and target_layer == layer
        if target_layer > layer or (target_layer == layer and not same_package):
            upward.append(f"{module} (layer {layer}) -> {target} ({target_entry}, layer {target_layer})")
    assert upward == [], "\n".join(upward)
