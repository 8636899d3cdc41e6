"""A parameter that can take a value bash's arithmetic would run a command of is refused where
a shell's script the trial runs reads it.

katuna gives a shell's script each value as data (:mod:`shell_quoting`), but bash (and ``sh``
where it is bash), ksh and zsh evaluate a value their arithmetic reads (``$((...))``,
``((...))``, ``let``, ``[[ ... -eq ... ]]``, an array's index, ``${x:offset}``, a ``declare -i``
variable's assignment) as an expression, and expand the index of an array named there, running
its commands: ``a[$(touch /tmp/x)]``, ``a[`id`]``, or ``a[$x]`` where ``x`` holds one.

The shells looked at are those an argv starts (the trial's command, a ``trialSpec``
container's command and args, its probes' and hooks'), past the wrappers that run the rest of
their argv (:data:`command_wrappers.WRAPPERS`), and an Argo ``source`` or Tekton ``script`` a shell
runs. A script katuna can read is checked for the parameters it reads: by a placeholder, as an
argument after it, or by a variable it names (``KATUNA_PARAM_<name>``, or one of ``env`` whose
value holds a placeholder). A shell whose script katuna cannot read (``bash train.sh``, ``bash
-s``) is checked for the values given it as arguments. Arithmetic reads a name in a value as
a variable, whose value it evaluates in turn: a value naming the variable of another parameter
(``KATUNA_PARAM_m``, ``x[KATUNA_PARAM_m]``), or one of ``env`` that holds it, has the script
read that parameter too, and so on (:func:`_reached`). What no argv shows is not seen: a
script file's use of a variable, an image's entrypoint script, a program that starts a shell
itself, a value split across two parameters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from functions.core import container_scripts, inline_code
from functions.core import trial_spec as trial_spec_shapes
from functions.core.documents import value_at
from functions.core.errors import Problem
from functions.core.exec_limits import MAX_ARG_STRLEN
from functions.core.shell_quoting import variable
from functions.core.spec import TrialTemplate
from functions.core.template import parameter_names

EXPANSION = re.compile(r"`|\$[({A-Za-z0-9_@*]")
"""What starts an expansion in an array index: a command's output (``$(``, a backquote), a
parameter's value (``${``, ``$name``, ``$1``, ``$@``), which arithmetic evaluates in turn."""
_INDIRECT = re.compile(r"\$\{!([A-Za-z_][A-Za-z0-9_]*)?([*@])?\}")
"""``${!name}`` (any variable, whose name another holds) or ``${!PREFIX*}`` (those it lists)."""
_WORD = re.compile(r"[A-Za-z0-9_]+")
"""A run of the characters a shell's name is made of: a name a value holds is one of them whole."""
_SOURCES = (("source",), ("script",))
"""A container's scripts that are no argument of an argv: an Argo ``source``, a Tekton ``script``."""

Reads = list[tuple[str, set[str], list[tuple[str, str]]]]
"""``(field path, names of the parameters a shell's script there can read, the variables given
a value there)``."""


def runs_command(value: str) -> bool:
    """Whether bash's arithmetic, evaluating ``value``, could run a command: a ``[`` (an array's
    index) followed by an expansion (:data:`EXPANSION`). Linear in the value's length."""
    start = value.find("[")
    return start >= 0 and EXPANSION.search(value, start + 1) is not None


def arithmetic_problems(template: TrialTemplate, values: Mapping[str, list[str]]) -> list[Problem]:
    """A problem, at each shell's script (or argument of a shell whose script katuna cannot
    read), for each parameter it reads, or reaches through a name a value it reads holds
    (:func:`_reached`), that can take a value :func:`runs_command` holds of. A value past
    ``MAX_ARG_STRLEN`` is left to :func:`exec_limits.exec_problems`, which refuses it."""
    risky = {name: value for name, given in values.items()
             if (value := next((v for v in given if len(v) < MAX_ARG_STRLEN and runs_command(v)), None)) is not None}
    if not risky:
        return []
    command = list(template.command)
    reads = _argv_reads([f"trialTemplate.command[{i}]" for i in range(len(command))], command, list(template.env),
                        values)
    for path, container in trial_spec_shapes.all_containers(template.trial_spec):
        env = _env(container)
        for paths, argv in container_scripts.argvs(container):
            reads += _argv_reads([container_scripts.field_path(path, p) for p in paths], argv, env, values)
        reads += [(container_scripts.field_path(path, field), _script_reads(str(value_at(container, field)), env, values),
                   env) for field in container_scripts.script_fields(container) if field in _SOURCES]
    words = {name: {word for value in given for word in _WORD.findall(value)} for name, given in values.items()}
    problems = [Problem(where, _message(name, risky[name], via))
                for where, names, variables in reads
                for name, via in sorted(_reached(names, words, variables).items()) if name in risky]
    return list(dict.fromkeys(problems))


def _reached(names: set[str], words: Mapping[str, set[str]], variables: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The parameters a script that reads ``names`` can evaluate in its arithmetic, each with
    the parameter read whose value leads to it (itself, for one of ``names``): bash's arithmetic
    reads a name in a value as a variable and evaluates its value in turn, so a value that names
    (``words``: the names each parameter's values hold) the variable of another parameter
    (``KATUNA_PARAM_m``), or one of ``variables`` leading to it (:func:`_carriers`), reaches
    that parameter, and what its values name, and so on."""
    carriers = _carriers(words, variables)
    reached = {name: name for name in names}
    pending = list(names)
    while pending:
        read = pending.pop()
        for word in words.get(read, ()):
            for name in carriers.get(word, ()):
                if name not in reached:
                    reached[name] = reached[read]
                    pending.append(name)
    return reached


def _carriers(parameters: Mapping[str, object], variables: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    """The parameters each variable leads arithmetic to, where it evaluates the variable: each
    parameter's own (``KATUNA_PARAM_m``); one of ``variables`` whose value holds a parameter's
    placeholder, or names another variable that leads to some (``A=B``, ``B=${trialParameters.m}``),
    however long the chain."""
    carriers: dict[str, set[str]] = {variable(name): {name} for name in parameters}
    named: dict[str, set[str]] = {}
    for key, value in variables:
        carriers.setdefault(key, set()).update(n for n in parameter_names(value) if n in parameters)
        named.setdefault(key, set()).update(_WORD.findall(value))
    grown = True
    while grown:
        grown = False
        for key, words in named.items():
            led = set().union(*(carriers.get(word, ()) for word in words)) - carriers[key]
            if led:
                carriers[key] |= led
                grown = True
    return carriers


def _argv_reads(where: Sequence[str], argv: list[str], env: Iterable[tuple[str, str]],
                values: Mapping[str, list[str]]) -> Reads:
    """What the shell ``argv`` starts (if any) can read of the parameters of ``values``: its
    script, those it names and those given it as arguments; a script katuna cannot read, the
    ones given it as arguments, each at its argument."""
    shell = inline_code.started_shell(argv)
    if shell is None:
        return []
    given = [(where[i], set(parameter_names(argv[i]))) for i in range(shell.arguments, len(argv))]
    assigned = [(word.partition("=")[0], word.partition("=")[2]) for word in argv[:shell.at] if "=" in word[1:]]
    variables = [*env, *assigned]
    if shell.script is None:
        return [(at, names, variables) for at, names in given if names]
    names = _script_reads(argv[shell.script], variables, values).union(*(n for _, n in given))
    return [(where[shell.script], names, variables)]


def _script_reads(script: str, env: Iterable[tuple[str, str]], values: Mapping[str, list[str]]) -> set[str]:
    """The parameters of ``values`` that ``script`` reads: by a placeholder, by the variable
    every trial has, or by a variable of ``env`` that leads to them (:func:`_carriers`)."""
    names = {name for name in parameter_names(script) if name in values}
    return names.union(*(led for key, led in _carriers(values, env).items() if _names(script, key)))


def _names(script: str, name: str) -> bool:
    """Whether ``script`` names the variable ``name``: as a word, or through ``${!...}``."""
    if re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", script):
        return True
    return any(not m.group(2) or name.startswith(m.group(1) or "") for m in _INDIRECT.finditer(script))


def _env(container: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A container's variables given a value (``name``, ``value``)."""
    given = container.get("env")
    return [(e["name"], e["value"]) for e in given if isinstance(e, Mapping) and isinstance(e.get("name"), str)
            and isinstance(e.get("value"), str)] if isinstance(given, list) else []


def _message(name: str, value: str, via: str) -> str:
    """Why a parameter that can take ``value``, read by a shell's script (through parameter
    ``via``, a value of which names its variable, where ``via`` is not ``name``), is refused."""
    if via != name:
        return (f"parameter {name!r} can be {value!r}, and a shell's script here reads parameter {via!r}, a value "
                f"of which names the variable holding {name!r} ({variable(name)}, or one of env, directly or through "
                "other parameters): where its arithmetic evaluates that value, bash evaluates the variable it names "
                f"in turn, expands the array index in {name!r}'s value and could run a command, so a value a "
                "shell's script can reach holds no '[' followed by '$(', '${', '$name' or '`'")
    return (f"parameter {name!r} can be {value!r}, which a shell's script reads here: where its arithmetic "
            "($((...)), ((...)), let, [[ -eq ]], an array's index) evaluates the value, bash expands the array "
            "index in it and could run a command, so a value a shell's script reads holds no '[' followed by "
            "'$(', '${', '$name' or '`'")
