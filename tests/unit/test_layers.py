"""The import graph of ``lbcp``: acyclic, and every layer imports only what lies beneath it.

From the bottom: models (plain data) <- pure logic <- adapters (``dal``,
``adapters``) <- services <- ``api`` (the entry point). Imports inside
functions and under ``TYPE_CHECKING`` count too: deferring an import hides a
dependency from the interpreter, not from the design.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path

import lbcp

ROOT = Path(lbcp.__file__).parent

# Pure: data, decisions and words over plain values, with time passed in.
PURE = (
    "lbcp.errors",
    "lbcp.instance_types",
    "lbcp.logic",
    "lbcp.models",
    "lbcp.validation",
    "lbcp.lifecycle.messages",
    "lbcp.reconcile.backoff",
    "lbcp.reconcile.placement",
    "lbcp.reconcile.plan*",
    "lbcp.scaling",
)
NOT_PURE = ("lbcp.scaling.run",)  # the scaler's run: reads and writes through the adapters
ADAPTERS = ("lbcp.dal", "lbcp.adapters")
AWS_SDKS = frozenset({"boto3", "botocore"})
# What models may build on besides other models: the package's constants and field errors.
BENEATH_MODELS = ("lbcp.models", "lbcp.errors")


def within(name: str, prefixes: Iterable[str]) -> bool:
    """``name`` is one of ``prefixes`` or inside one; ``x*`` also matches siblings named ``x...``."""
    for prefix in prefixes:
        if prefix.endswith("*") and name.startswith(prefix[:-1]):
            return True
        if name == prefix or name.startswith(prefix + "."):
            return True
    return False


def is_pure(name: str) -> bool:
    return within(name, PURE) and not within(name, NOT_PURE)


def module_name(path: Path) -> str:
    parts = ("lbcp", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def sources() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def resolve(name: str) -> str:
    """The innermost lbcp module that ``name`` (a module or a name inside one) refers to."""
    while name not in sources():
        name = name.rpartition(".")[0]
    return name


def imported_names(name: str) -> Iterator[str]:
    """Every dotted name the module imports, wherever the import statement is."""
    path = sources()[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return names_imported_by(path.read_text(), package)


def names_imported_by(source: str, package: str) -> Iterator[str]:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0]
                base = f"{anchor}.{base}" if base else anchor
            # ``from package import module`` depends on the module, not on the package's __init__.
            yield from (f"{base}.{alias.name}" for alias in node.names)


@cache
def graph() -> dict[str, frozenset[str]]:
    """lbcp module -> the lbcp modules it imports."""
    return {
        name: frozenset(resolve(imported) for imported in imported_names(name) if within(imported, ("lbcp",))) - {name}
        for name in sources()
    }


@cache
def aws_sdk_users() -> frozenset[str]:
    return frozenset(
        name for name in sources() if any(imported.partition(".")[0] in AWS_SDKS for imported in imported_names(name))
    )


def path_to(start: str, targets: set[str] | frozenset[str]) -> list[str] | None:
    """The shortest import chain from ``start`` to a module in ``targets``, if any."""
    chains = [[start]]
    seen = {start}
    while chains:
        chain = chains.pop(0)
        for imported in sorted(graph()[chain[-1]]):
            if imported in targets:
                return [*chain, imported]
            if imported in seen:
                continue
            seen.add(imported)
            chains.append([*chain, imported])
    return None


def cycles() -> list[list[str]]:
    """Each cycle once, as an import chain from its first module (by name) back to it."""
    found: dict[frozenset[str], list[str]] = {}
    for name in sorted(graph()):
        chain = path_to(name, {name})
        if chain is not None:
            found.setdefault(frozenset(chain), chain)
    return sorted(found.values(), key=len)


def test_every_module_imports() -> None:
    for name in sources():
        importlib.import_module(name)


def test_the_graph_sees_deferred_and_relative_imports() -> None:
    # The rules below are only as good as the graph: an import inside a
    # function (as the API's lazily built clients are) is an edge too.
    source = """
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from lbcp.dal.lbvms import LbvmRepository
def build():
    import boto3
    from lbcp.dal import repository
    from .problems import ApiProblem
    from . import preflight
"""
    assert set(names_imported_by(source, "lbcp.api")) == {
        "typing.TYPE_CHECKING",
        "lbcp.dal.lbvms.LbvmRepository",
        "boto3",
        "lbcp.dal.repository",
        "lbcp.api.problems.ApiProblem",
        "lbcp.api.preflight",
    }
    assert resolve("lbcp.dal.lbvms.LbvmRepository") == "lbcp.dal.lbvms"
    assert "lbcp.entry.dns" in aws_sdk_users()


def test_no_module_imports_itself_through_others() -> None:
    found = cycles()
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(chain) for chain in found)


def test_models_import_only_models() -> None:
    wrong = {
        f"{name} -> {imported}"
        for name, imports in graph().items()
        if within(name, ("lbcp.models",))
        for imported in imports
        if imported != "lbcp" and not within(imported, BENEATH_MODELS)
    }
    assert not wrong, sorted(wrong)


def test_pure_modules_reach_no_storage_and_no_aws_sdk() -> None:
    impure = {name for name in sources() if within(name, ADAPTERS)} | aws_sdk_users()
    wrong = {}
    for name in filter(is_pure, sources()):
        chain = [name] if name in impure else path_to(name, impure)
        if chain is not None:
            wrong[name] = " -> ".join(chain)
    assert not wrong, "\n".join(wrong.values())


def test_adapters_import_only_pure_modules_and_adapters() -> None:
    wrong = {
        f"{name} -> {imported}"
        for name, imports in graph().items()
        if within(name, ADAPTERS)
        for imported in imports
        if imported != "lbcp" and not is_pure(imported) and not within(imported, ADAPTERS)
    }
    assert not wrong, sorted(wrong)


def test_only_the_api_imports_the_api() -> None:
    wrong = {
        f"{name} -> {imported}"
        for name, imports in graph().items()
        if not within(name, ("lbcp.api",))
        for imported in imports
        if within(imported, ("lbcp.api",))
    }
    assert not wrong, sorted(wrong)


def test_the_layer_names_match_what_they_mean() -> None:
    # A prefix that silently matched nothing would let any tree pass.
    assert is_pure("lbcp.reconcile.plan") and is_pure("lbcp.reconcile.plan_rollout")
    assert is_pure("lbcp.scaling.warming") and not is_pure("lbcp.scaling.run")
    assert not is_pure("lbcp.reconcile.run") and not is_pure("lbcp.modelsx")
    assert within("lbcp.dal.repository", ADAPTERS) and not within("lbcp.dalliance", ADAPTERS)
    assert all(any(within(name, (layer,)) for name in sources()) for layer in (*PURE, *ADAPTERS))
