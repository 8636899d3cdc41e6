"""The layers hold: a pure core, handlers behind ports, arrows that point one way, each vendor SDK in one adapter."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Protocol

import grimp

ROOT = Path(__file__).parent.parent
VENDORS = {
    "sqlite_utils": ("functions/adapters/sqlite_connection.py", "functions/adapters/sqlite_first_migrations.py",
                     "functions/adapters/sqlite_journal_migrations.py",
                     "functions/adapters/sqlite_migrations.py"),
    "kubernetes": ("functions/adapters/kubernetes_access.py", "functions/adapters/kubernetes_checkpoints.py",
                   "functions/adapters/kubernetes_client.py", "functions/adapters/kubernetes_discovery.py",
                   "functions/adapters/kubernetes_events.py",
                   "functions/adapters/kubernetes_executor.py", "functions/adapters/kubernetes_fields.py",
                   "functions/adapters/kubernetes_job_stops.py", "functions/adapters/kubernetes_jobs.py",
                   "functions/adapters/kubernetes_kueue.py", "functions/adapters/kubernetes_limit_ranges.py",
                   "functions/adapters/kubernetes_looks.py",
                   "functions/adapters/kubernetes_logs.py", "functions/adapters/kubernetes_orphans.py",
                   "functions/adapters/kubernetes_remade.py", "functions/adapters/kubernetes_report_secrets.py",
                   "functions/adapters/kubernetes_resources.py", "functions/adapters/kubernetes_running.py",
                   "functions/adapters/kubernetes_suggestions.py", "functions/adapters/kubernetes_together.py",
                   "functions/adapters/kubernetes_trials.py", "functions/adapters/kubernetes_workloads.py"),
    "cloudevents": "functions/adapters/cloudevents_http.py",
    "flask": None,
    "google": ("infra/gke.py", "infra/gke_errors.py", "infra/gke_found.py", "infra/gke_lasting.py"),
    "boto3": ("infra/eks_clients.py", "infra/eks_errors.py"),
    "botocore": ("infra/eks.py", "infra/eks_clients.py", "infra/eks_creates.py", "infra/eks_errors.py",
                 "infra/eks_groups.py",
                 "infra/eks_templates.py"),
    "prometheus_client": "functions/adapters/prometheus.py",
    "skopt": "functions/core/skopt_sampler.py",
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


def _cycles(package: str) -> list[list[str]]:
    """Modules of ``package`` that import one another in a circle (through imports for type
    checking too: they tie the modules together for a reader and a type checker alike)."""
    graph = grimp.build_graph(package.split(".")[0], cache_dir=None)
    modules = {m for m in graph.modules if m.startswith(package + ".")}
    edges = {m: graph.find_modules_directly_imported_by(m) & modules for m in modules}
    reach = {}
    for start in modules:
        seen, todo = set(), [start]
        while todo:
            for nxt in edges[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        reach[start] = seen
    groups = {frozenset(m for m in reach[start] if start in reach[m]) for start in modules if start in reach[start]}
    return sorted(sorted(group) for group in groups)


def test_the_core_has_no_import_cycle():
    """Value types (studies, trial attempts, records) sit below the port protocols that carry them."""
    assert _cycles("functions.core") == []


def test_the_cycle_check_finds_a_cycle_through_an_import_for_type_checking(tmp_path, monkeypatch):
    package = tmp_path / "circle"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "ports.py").write_text("from circle.values import Launch\n")
    (package / "values.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from circle import ports\n"
                                       "class Launch:\n    ...\n")
    (package / "alone.py").write_text("from circle import values\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _cycles("circle") == [["circle.ports", "circle.values"]]


LOCAL_PROCESSES = frozenset({"owners", "process_tree", "workers", "trial_env", "trial_ends", "file_follow",
                             "trial_files"})
"""Adapter modules of the local executor's family whose names do not start with ``local_``."""

SEAMS = frozenset({
    ("functions.adapters.sqlite_queue", "functions.adapters.broker"),  # the broker's queue, kept in the database
    ("functions.adapters.web.functions_ce", "functions.adapters.cloudevents_http"),  # events over HTTP (pyproject)
    # the log lines' format and escaping, which gunicorn's lines and the event functions' share
    *((f"functions.adapters.web.{module}", "functions.adapters.log_lines")
      for module in ("access_log", "forwarded", "functions_ce")),
    # the opener that follows no redirect, for the outgoing requests that carry a token
    *((importer, "functions.adapters.http_unredirected")
      for importer in ("functions.adapters.cloudevents_sink", "functions.adapters.web.oidc")),
})
"""The imports allowed between adapter families, each for the reason given."""


def adapter_family(module: str, adapters: str) -> str:
    """The vendor or transport an adapter module belongs to: its name's prefix (``sqlite_``,
    ``local_``, ``kubernetes_``, ``cloudevents_``), its subpackage (``web``), or itself; the
    local executor's helpers are named in :data:`LOCAL_PROCESSES`."""
    name = module.removeprefix(adapters + ".").split(".")[0]
    if name in LOCAL_PROCESSES:
        return "local"
    prefix, _, rest = name.partition("_")
    return prefix if rest and prefix in ("sqlite", "local", "kubernetes", "cloudevents") else name


def family_crossings(package: str, adapters: str, seams: frozenset[tuple[str, str]]) -> list[tuple[str, str]]:
    """Direct imports from an adapter module of one family to one of another, beyond ``seams``."""
    graph = grimp.build_graph(package, cache_dir=None)
    inside = [m for m in graph.modules if m.startswith(adapters + ".")]
    return sorted((importer, imported) for importer in inside
                  for imported in graph.find_modules_directly_imported_by(importer)
                  if imported.startswith(adapters + ".")
                  and adapter_family(importer, adapters) != adapter_family(imported, adapters)
                  and (importer, imported) not in seams)


def test_the_adapter_families_import_each_other_only_at_their_seams():
    """The independence contract names one module of each vendor or transport; this covers every
    module of each family (the SQLite store's split-out modules, the local executor's helpers),
    so a module split out of an adapter stays as independent as the adapter was."""
    assert family_crossings("functions", "functions.adapters", SEAMS) == []


def test_the_family_check_finds_an_import_across_families(tmp_path, monkeypatch):
    adapters = tmp_path / "shop" / "adapters"
    adapters.mkdir(parents=True)
    for path in (tmp_path / "shop" / "__init__.py", adapters / "__init__.py"):
        path.write_text("")
    (adapters / "sqlite_orders.py").write_text("from shop.adapters import sqlite_rows\n")
    (adapters / "sqlite_rows.py").write_text("")
    (adapters / "local_runner.py").write_text("def run():\n    from shop.adapters.sqlite_rows import __name__\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert family_crossings("shop", "shop.adapters", frozenset()) == [("shop.adapters.local_runner",
                                                                       "shop.adapters.sqlite_rows")]


def _members(protocol: type) -> set[str]:
    return {name for cls in protocol.__mro__ if getattr(cls, "_is_protocol", False) and cls is not Protocol
            for name in vars(cls) if not name.startswith("_")}


def test_the_runtime_offers_what_the_driving_adapters_ask_of_the_application(tmp_path):
    """The web adapter and the broker know the runtime, its store, settings and dispatcher only
    through :mod:`functions.core.application`; each offers every member the interface names."""
    from functions.core.application import Application, Delivers, DispatchesFunctions, ServiceSettings, ServiceStore
    from functions.runtime import Runtime
    from functions.settings import Settings

    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        offered = [(Application, runtime), (ServiceStore, runtime.store()), (ServiceSettings, runtime.settings),
                   (DispatchesFunctions, runtime.dispatcher()), (Delivers, runtime.dispatcher())]
        for interface, implementation in offered:
            missing = sorted(name for name in _members(interface) if not hasattr(implementation, name))
            assert missing == [], f"{type(implementation).__name__} lacks {missing} of {interface.__name__}"
    finally:
        runtime.close()


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
    imports = {str(p.relative_to(ROOT)): _imports(p) for folder in ("functions", "infra") for p in (ROOT / folder).rglob("*.py")}
    for vendor, owner in VENDORS.items():
        users = sorted(path for path, names in imports.items() if vendor in names)
        if owner is None:
            assert users and all(u.startswith("functions/adapters/web/") for u in users), f"{vendor}: {users}"
        else:
            assert users == ([owner] if isinstance(owner, str) else sorted(owner)), f"{vendor} is imported by {users}"


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
