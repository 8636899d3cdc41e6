"""The layers hold: a pure core, handlers behind ports, each vendor SDK in one adapter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

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
