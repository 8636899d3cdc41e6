"""The scripts the containers of a ``trialSpec`` give a shell, filled in with each parameter's
value as data, never as code (:mod:`functions.core.shell_quoting`), and the variables those
scripts then read, added to the container that runs each.

A container's shell script is the argument after ``-c`` of its ``command`` and ``args`` together
(``command: [sh, -c]``, ``args: ["python train.py --lr=${trialParameters.lr}"]``, as Katib's
examples write it), an Argo ``script`` template's ``source`` where a shell runs it, and a Tekton
step's ``script`` where its first line names a shell or no program (Tekton runs it with ``sh``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from functions.core import template
from functions.core.documents import Path, value_at

RESERVED = "KATUNA_"
"""How the names of katuna's own variables of a trial begin (``KATUNA_STUDY``, ``KATUNA_TRIAL``,
``KATUNA_PARAM_<name>``, ...): a template's variable of such a name would be set over, or set
another's over."""


def fill(workload: Mapping[str, Any], containers: Sequence[Mapping[str, Any]], params: Mapping[str, Any],
         context: Mapping[str, str], typed: frozenset[Path] = frozenset()) -> dict[str, Any]:
    """``workload`` with every string substituted (:func:`template.substitute_tree`), the shell
    scripts of its ``containers`` (mappings in it) as scripts, each such container given the
    variables its scripts read (:func:`template.script_env`) after its own."""
    located = list(_located(workload, {id(c) for c in containers}, ()))
    scripts = {(*at, *field): at for at, container in located for field in script_fields(container)}
    filled = template.substitute_tree(workload, params, context, typed=typed, scripts=frozenset(scripts))
    for path, at in scripts.items():
        env = template.script_env(str(value_at(workload, path)), params)
        container = value_at(filled, at)
        if env and isinstance(container, dict):
            container["env"] = [*_listed(container.get("env")), *({"name": k, "value": v} for k, v in sorted(env.items()))]
    return filled


def script_fields(container: Mapping[str, Any]) -> list[Path]:
    """Where in ``container`` a shell reads a script (see the module)."""
    command = [str(arg) for arg in _listed(container.get("command"))]
    args = [str(arg) for arg in _listed(container.get("args"))]
    found: list[Path] = []
    index = template.shell_script(command + args)
    if index is not None:
        found.append(("command", index) if index < len(command) else ("args", index - len(command)))
    if isinstance(container.get("source"), str) and index is None and command and _shell(command[0]):
        found.append(("source",))
    script = container.get("script")
    if isinstance(script, str):
        first = script.split("\n", 1)[0]
        if not first.startswith("#!") or any(_shell(word) for word in first[2:].split()[:2]):
            found.append(("script",))
    return found


def reserved_names(containers: Sequence[tuple[str, Mapping[str, Any]]]) -> list[tuple[str, str]]:
    """``(field path, name)`` of each variable of the containers (each with its path) whose name
    begins with :data:`RESERVED`."""
    return [(f"{path}.env[{i}].name", str(entry.get("name")))
            for path, container in containers for i, entry in enumerate(_listed(container.get("env")))
            if isinstance(entry, Mapping) and str(entry.get("name")).startswith(RESERVED)]


def _shell(program: str) -> bool:
    return program.rsplit("/", 1)[-1] in template.SHELLS


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _located(tree: Any, wanted: set[int], at: Path) -> Iterator[tuple[Path, Mapping[str, Any]]]:
    """``(path, mapping)`` of each mapping in ``tree`` that is one of ``wanted`` (by identity)."""
    if isinstance(tree, Mapping):
        if id(tree) in wanted:
            yield at, tree
        for key, child in tree.items():
            yield from _located(child, wanted, (*at, key))
    elif isinstance(tree, list):
        for i, child in enumerate(tree):
            yield from _located(child, wanted, (*at, i))
