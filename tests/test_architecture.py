"""The layers hold: a pure core, handlers behind ports, arrows that point one way, each vendor SDK in one adapter."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).parent.parent
VENDORS = {
    "sqlite_utils": "functions/adapters/sqlite_store.py",
    "kubernetes": "functions/adapters/kubernetes_executor.py",
    "cloudevents": "functions/adapters/cloudevents_http.py",
    "flask": None,
    "google": "infra/gke.py",
    "boto3": "infra/eks.py",
    "botocore": "infra/eks.py",
}


def test_import_contracts_hold():
    result = subprocess.run([str(Path(sys.executable).with_name("lint-imports"))], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def _layered_modules() -> set[str]:
    [layers] = [c for c in _contracts() if c["type"] == "layers"]
    return {name.strip() for layer in layers["layers"] for name in layer.replace(":", "|").split("|")}


def test_every_module_has_a_layer():
    """A new top-level module must be placed in the layers; one inside a layered package is
    checked as part of it."""
    layered = _layered_modules()
    for package in ("functions", "infra"):
        for path in (ROOT / package).iterdir():
            if path.name.startswith(("_", ".")) and path.name != "__main__.py":
                continue
            if path.suffix == ".py" or (path / "__init__.py").exists() or any(path.glob("*.py")):
                module = f"{package}.{path.stem}"
                assert module in layered, f"{module} is in no layer of the import contracts"


def test_internal_arrows_are_checked_by_layers_not_hand_lists():
    """Forbidden contracts name external packages only: the arrows between katuna's own modules
    come from the layers and independence contracts, so a new module needs no new entry."""
    kinds = {c["type"] for c in _contracts()}
    assert {"layers", "independence"} <= kinds
    for contract in _contracts():
        if contract["type"] == "forbidden":
            internal = [m for m in contract["forbidden_modules"] if m.split(".")[0] in ("functions", "infra")]
            assert internal == [], f"{contract['name']}: {internal}"


def _core_cycles() -> list[set[str]]:
    """The strongly connected groups of core modules (imports for type checking included)."""
    graph = grimp.build_graph("functions", cache_dir=None)
    core = {m for m in graph.modules if m.startswith("functions.core.")}
    edges = {m: graph.find_modules_directly_imported_by(m) & core for m in core}
    reach = {}
    for start in core:
        seen, todo = set(), [start]
        while todo:
            for nxt in edges[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        reach[start] = seen
    return [{m for m in core if m in reach[start] and start in reach[m]} | {start}
            for start in core if start in reach[start]]


def test_the_ports_and_the_values_they_carry_are_in_no_import_cycle():
    """The port protocols import the value types; nothing they import leads back to them."""
    apart = {"functions.core.ports", "functions.core.launch", "functions.core.job", "functions.core.application",
             "functions.core.events", "functions.core.records", "functions.core.optuna_compat"}
    in_cycles = set().union(*_core_cycles()) if _core_cycles() else set()
    assert apart & in_cycles == set()


def test_lint_is_clean():
    result = subprocess.run([str(Path(sys.executable).with_name("ruff")), "check", "functions", "infra", "tests", "benchmarks"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_each_vendor_sdk_is_imported_by_one_adapter_only():
    for vendor, owner in VENDORS.items():
        users = sorted(str(p.relative_to(ROOT)) for folder in ("functions", "infra")
                       for p in (ROOT / folder).rglob("*.py") if vendor in _imports(p))
        if owner is None:
            assert users and all(u.startswith("functions/adapters/web/") for u in users), f"{vendor}: {users}"
        else:
            assert users == [owner], f"{vendor} is imported by {users}"


def _reads_environment(node: ast.AST) -> bool:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        return False
    if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
        return True
    return any(_reads_environment(child) for child in ast.iter_child_nodes(node))


def test_settings_are_not_read_at_import_time():
    offenders = [str(p.relative_to(ROOT)) for folder in ("functions", "infra") for p in (ROOT / folder).rglob("*.py")
                 if _reads_environment(ast.parse(p.read_text()))]
    assert offenders == []


def test_the_environment_check_catches_a_read_at_import_time():
    assert _reads_environment(ast.parse("import os\nDB = os.environ.get('KATUNA_DB')"))
    assert not _reads_environment(ast.parse("import os\ndef f():\n    return os.environ"))
