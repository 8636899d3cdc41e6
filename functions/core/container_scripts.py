"""What the containers of a ``trialSpec`` run: each program's argv, the scripts they give a
shell, filled in with each parameter's value as data, never as code
(:mod:`functions.core.shell_quoting`), and the code they give another program; and the
variables every container then gets, one for each of the trial's parameters
(:func:`template.parameter_env`).

A container runs its ``command`` and ``args`` together, and each exec probe and lifecycle
hook its own ``exec.command``. A shell's script is the argument after ``-c`` of one of those
(``command: [sh, -c]``, ``args: ["python train.py --lr=${trialParameters.lr}"]``, as Katib's
examples write it), an Argo ``script`` template's ``source`` where a shell runs it, and a
Tekton step's ``script`` where its first line names a shell or no program (Tekton runs it
with ``sh``). An Argo ``source`` another program runs, and a Tekton ``script`` whose first line
names another program, are that program's code.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from functions.core import code_languages, inline_code, template
from functions.core.documents import Path, value_at
from functions.core.limits import PREFIX

RESERVED = PREFIX
"""How the names of katuna's own variables of a trial begin (``KATUNA_STUDY``, ``KATUNA_TRIAL``,
``KATUNA_PARAM_<name>``, ...): a template's variable of such a name would be set over, or set
another's over."""
HANDLERS = (("livenessProbe",), ("readinessProbe",), ("startupProbe",), ("lifecycle", "postStart"),
            ("lifecycle", "preStop"))
"""Where a container's probes and lifecycle hooks are: each may run ``exec.command`` in it."""


def fill(workload: Mapping[str, Any], containers: Sequence[Mapping[str, Any]], params: Mapping[str, Any],
         context: Mapping[str, str], typed: frozenset[Path] = frozenset()) -> dict[str, Any]:
    """``workload`` with every string substituted (:func:`template.substitute_tree`), the shell
    scripts of its ``containers`` (mappings in it) as scripts, and each such container given a
    variable for each parameter (:func:`template.parameter_env`) after its own."""
    located = list(_located(workload, {id(c) for c in containers}, ()))
    scripts = frozenset((*at, *field) for at, container in located for field in script_fields(container))
    filled = template.substitute_tree(workload, params, context, typed=typed, scripts=scripts)
    variables = [{"name": k, "value": v} for k, v in sorted(template.parameter_env(params).items())]
    for at, _ in located:
        container = value_at(filled, at)
        if variables and isinstance(container, dict):
            container["env"] = [*_listed(container.get("env")), *variables]
    return filled


def field_path(path: str, field: Path) -> str:
    """``path`` (a container's) and a field of it as one field path (``...args[0]``)."""
    return path + "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in field)


def argvs(container: Mapping[str, Any]) -> list[tuple[list[Path], list[str]]]:
    """Each argv ``container`` runs, with the path of each of its arguments in ``container``:
    its ``command`` and ``args`` together, then each probe's and hook's ``exec.command``."""
    paths: list[Path] = [(key, i) for key in ("command", "args") for i, _ in enumerate(_strings(container.get(key)))]
    found = [(paths, _strings(container.get("command")) + _strings(container.get("args")))]
    for handler in HANDLERS:
        given = value_at(container, (*handler, "exec"))
        command = _strings(given.get("command")) if isinstance(given, Mapping) else []
        if command:
            found.append(([(*handler, "exec", "command", i) for i in range(len(command))], command))
    return found


def script_fields(container: Mapping[str, Any]) -> list[Path]:
    """Where in ``container`` a shell reads a script (see the module)."""
    found = [paths[index] for paths, argv in argvs(container) if (index := inline_code.shell_script(argv)) is not None]
    command = _strings(container.get("command"))
    if isinstance(container.get("source"), str) and command and code_languages.is_shell(command[0]) \
            and inline_code.shell_script(command + _strings(container.get("args"))) is None:
        found.append(("source",))
    if isinstance(container.get("script"), str) and _shebang(container["script"]) is None:
        found.append(("script",))
    return found


def program_code(container: Mapping[str, Any]) -> list[tuple[Path, str]]:
    """Where in ``container`` a program other than a shell reads code (an Argo ``source``, a
    Tekton ``script`` with a shebang: see the module), and that program's word."""
    found: list[tuple[Path, str]] = []
    command = _strings(container.get("command"))
    if isinstance(container.get("source"), str) and command and not code_languages.is_shell(command[0]):
        found.append((("source",), _program(command)))
    if isinstance(container.get("script"), str) and (program := _shebang(container["script"])) is not None:
        found.append((("script",), program))
    return found


def _shebang(script: str) -> str | None:
    """The program a Tekton step's ``script`` names on its first line (``#!/usr/bin/env
    python3``), unless it is a shell or names none (Tekton then runs it with ``sh``)."""
    first = script.split("\n", 1)[0]
    words = first[2:].split() if first.startswith("#!") else []
    if not words or any(code_languages.is_shell(word) for word in words[:2]):
        return None
    return _program(words)


def _program(command: list[str]) -> str:
    """The program a command runs: the first word naming a language katuna knows (past
    ``env``), else its first word."""
    return next((word for word in command if code_languages.language_of(word) is not None), command[0])


def reserved_names(containers: Sequence[tuple[str, Mapping[str, Any]]]) -> list[tuple[str, str]]:
    """``(field path, name)`` of each variable of the containers (each with its path) whose name
    begins with :data:`RESERVED`."""
    return [(f"{path}.env[{i}].name", str(entry.get("name")))
            for path, container in containers for i, entry in enumerate(_listed(container.get("env")))
            if isinstance(entry, Mapping) and str(entry.get("name")).startswith(RESERVED)]


def _strings(value: Any) -> list[str]:
    """A list's items as text (a command or args list); none where ``value`` is no list."""
    return [str(arg) for arg in _listed(value)]


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
