"""The import rules of STYLE.md, checked by walking every module's imports with `ast`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("contracts", "handlers", "workers", "edge", "scanners")
# The handler roles as the tree has them: every package under handlers/ (not a fixed list,
# which could name roles that do not exist and check nothing).
ROLES = tuple(sorted(p.parent.name for p in (ROOT / "handlers").glob("*/__init__.py")))
NO_IO = {
    "asyncio",
    "nats",
    "asyncpg",
    "subprocess",
    "socket",
    "os",
    "shutil",
    "faststream",
    "grpclib",
    "httpx",
    "urllib.request",
    "http",
    "requests",
    "kubernetes_asyncio",
    # dnspython's network half; its name and rdata modules are pure.
    "dns.resolver",
    "dns.asyncresolver",
    "dns.query",
    "dns.asyncquery",
    "dns.nameserver",
}
# Scanner modules run as their own process by a tool's argv, the one place in `scanners`
# allowed I/O: a tool that drives several programs needs a small runner around them.
RUNNERS = {"scanners.dns.recon"}


def modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join(parts)
            if not name.startswith("contracts.gen"):
                out[name] = path
    return out


def imports_of(name: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)
    return found


MODULES = modules()
IMPORTS = {name: imports_of(name, path) for name, path in MODULES.items()}


def _under(imported: str, root: str) -> bool:
    return imported == root or imported.startswith(root + ".")


def violations(prefix: str, forbidden: tuple[str, ...] | set[str]) -> list[str]:
    return [
        f"{name} imports {imp}"
        for name, imps in IMPORTS.items()
        if _under(name, prefix)
        for imp in sorted(imps)
        if any(_under(imp, f) for f in forbidden)
    ]


def test_modules_were_found() -> None:
    assert "contracts.subjects" in MODULES and "edge.server" in MODULES
    assert len(MODULES) > 30


def test_contracts_is_the_leaf() -> None:
    assert violations("contracts", ("handlers", "workers", "edge", "scanners")) == []


def test_edge_never_touches_the_database_or_other_roots() -> None:
    assert violations("edge", ("asyncpg", "handlers", "workers")) == []


def test_scanners_know_nothing_of_the_pipeline() -> None:
    assert violations("scanners", ("handlers", "workers", "edge")) == []


def test_nothing_imports_workers() -> None:
    for root in ("contracts", "handlers", "edge", "scanners"):
        assert violations(root, ("workers",)) == []


def test_the_roles_are_the_handler_packages_that_exist() -> None:
    assert {"launcher", "ingest", "queries"} <= set(ROLES)
    for role in ROLES:
        assert f"handlers.{role}" in MODULES, role


@pytest.mark.parametrize("role", ROLES)
def test_handler_roles_do_not_import_each_other(role: str) -> None:
    own = [name for name in MODULES if _under(name, f"handlers.{role}")]
    assert own, f"handlers.{role} has no modules: the check below would pass on nothing"
    others = tuple(f"handlers.{r}" for r in ROLES if r != role)
    assert violations(f"handlers.{role}", others) == []


def test_scanner_commands_and_parsers_do_no_io() -> None:
    pure = [
        n
        for n in MODULES
        if n.startswith("scanners.")
        and n.rsplit(".", 1)[-1] in {"command", "parse", "config", "findings"}
    ]
    assert pure, "no scanner modules found"
    bad = [
        f"{name} imports {imp}"
        for name in pure
        for imp in IMPORTS[name]
        if any(_under(imp, f) for f in NO_IO)
    ]
    assert bad == []


def test_scanner_io_lives_only_in_runners() -> None:
    # Every scanner module, not only the four every tool has: a parser split in modules
    # (nmap's `elements`, sslyze's readers) stays pure in all of them.
    scanner_modules = [n for n in MODULES if _under(n, "scanners")]
    assert {"scanners.dns.recon", "scanners.nmap.elements"} <= set(scanner_modules)
    bad = [
        f"{name} imports {imp}"
        for name in scanner_modules
        if name not in RUNNERS
        for imp in IMPORTS[name]
        if any(_under(imp, f) for f in NO_IO)
    ]
    assert bad == []


def test_nothing_imports_a_runner() -> None:
    # A runner is started by an argv; importing it would bring its I/O into pure code.
    assert [
        f"{name} imports {imp}"
        for name, imps in IMPORTS.items()
        for imp in imps
        if any(_under(imp, runner) for runner in RUNNERS)
    ] == []


def test_only_entry_points_read_the_environment() -> None:
    readers = {
        name
        for name, path in MODULES.items()
        if "os.environ" in path.read_text() or "getenv(" in path.read_text()
    }
    assert readers <= {"workers.cli", "workers.job"}, readers
