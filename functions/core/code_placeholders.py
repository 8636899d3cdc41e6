"""A parameter's value is never pasted into code: a study whose trial would paste one where a
program reads code (:mod:`inline_code`: ``python -c``, ``perl -e``, ``node --eval``, a shell's
script katuna does not quote, ``eval``, an Argo ``source`` or a Tekton ``script`` run by
another program) is refused when submitted, naming the field and the parameter, unless every
value the parameter can take is read there as one token (a number, and for most languages a
plain word). The program can take the value as an argument after its code, or from the
variable ``KATUNA_PARAM_<name>`` every trial has.

A shell's script at the start of a command gets each value as data (:mod:`shell_quoting`), but
may give it to another program as code: a placeholder standing in a word that a command of
the script gives a program as code (``python -c "print('${trialParameters.v}')"``), or in a
here-document a program reads as code (``python - <<EOF``), is refused alike. Only what the
script says in its own words is read: a value passed on through a variable, a pipe or a file
is the script's own business.

A value bash's arithmetic would run a command of is refused where a shell's script reads it
(:mod:`shell_arithmetic`).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from functions.core import code_languages, container_scripts, inline_code, shell_arithmetic, shell_quoting
from functions.core import trial_spec as trial_spec_shapes
from functions.core.code_languages import Language
from functions.core.documents import value_at
from functions.core.errors import Problem
from functions.core.inline_code import Code
from functions.core.parameters import ChoiceParameter, Parameter
from functions.core.spec import TrialTemplate
from functions.core.template import OWN, format_value, parameter_names

UNKNOWN = Language(re.compile(""), "")
"""The language of code run by a program katuna does not know (an Argo ``source`` given to a
compiled tool, say): only a plain word is taken there."""
_CLOSING = {shell_quoting.DOUBLE: '"', shell_quoting.SINGLE: "'", shell_quoting.ANSI: "'"}
_MARK = "\0"
"""Stands for the placeholder at the end of a command's words (no script holds a NUL)."""


def code_problems(template: TrialTemplate, parameters: Iterable[Parameter]) -> list[Problem]:
    """A problem for each placeholder pasted into code whose parameter can take a value that
    is not read there as one token: in the trial template's command, and in the containers of
    its ``trialSpec`` (their command and args, probes and hooks, scripts); and for each value
    a shell's arithmetic would run a command of where a script reads it
    (:func:`shell_arithmetic.arithmetic_problems`). A placeholder of a parameter not among
    ``parameters`` gets none."""
    values = {p.name: [format_value(v) for v in p.values] for p in parameters if isinstance(p, ChoiceParameter)}
    problems = _argv_problems([f"trialTemplate.command[{i}]" for i in range(len(template.command))],
                              list(template.command), values)
    for path, container in trial_spec_shapes.all_containers(template.trial_spec):
        problems += _container_problems(path, container, values)
    return problems + shell_arithmetic.arithmetic_problems(template, values)


def _container_problems(path: str, container: Mapping[str, Any], values: Mapping[str, list[str]]) -> list[Problem]:
    """The problems of one container: each argv it runs (:func:`container_scripts.argvs`), its
    shells' scripts, and the code another program of it runs."""
    problems = []
    for paths, argv in container_scripts.argvs(container):
        problems += _argv_problems([container_scripts.field_path(path, p) for p in paths], argv, values, scripts=False)
    for field in container_scripts.script_fields(container):
        problems += _script_problems(container_scripts.field_path(path, field), str(value_at(container, field)), values)
    for field, program in container_scripts.program_code(container):
        code = Code(-1, program.rsplit("/", 1)[-1], code_languages.language_of(program) or UNKNOWN)
        problems += _pasted(container_scripts.field_path(path, field), str(value_at(container, field)), code, values)
    return problems


def _argv_problems(where: Sequence[str], argv: list[str], values: Mapping[str, list[str]],
                   scripts: bool = True) -> list[Problem]:
    """The problems of one ``argv`` (``where`` its arguments' field paths): each argument a
    program reads as code, but the script a shell it starts reads (it gets values as data),
    which is read for the commands it runs unless ``scripts`` is false (the caller reads it)."""
    script = inline_code.shell_script(argv)
    problems = [problem for code in inline_code.code_arguments(argv) if code.index != script
                for problem in _pasted(where[code.index], argv[code.index], code, values)]
    if scripts and script is not None:
        problems += _script_problems(where[script], argv[script], values)
    return problems


def _pasted(where: str, text: str, code: Code, values: Mapping[str, list[str]]) -> list[Problem]:
    """A problem for each parameter ``text``, code of ``code``'s program, names that can take
    a value not read there as one token."""
    return [Problem(where, _message(name, value, code)) for name in dict.fromkeys(parameter_names(text))
            if (value := _unfit(values.get(name, []), code.language)) is not None]


def _script_problems(where: str, script: str, values: Mapping[str, list[str]]) -> list[Problem]:
    """A problem for each placeholder of a shell's ``script`` that stands in code a command of
    the script gives another program (see the module), whose parameter can take a value not
    read there as one token."""
    matches = [m for m in OWN.finditer(script) if parameter_names(m.group(0))]
    problems = []
    for match, spot in zip(matches, shell_quoting.spots(script, [m.start() for m in matches]), strict=True):
        name = parameter_names(match.group(0))[0]
        code = _reading(spot)
        value = None if code is None else _unfit(values.get(name, []), code.language)
        if code is not None and value is not None:
            problems.append(Problem(where, _message(name, value, code, in_script=True)))
    return list(dict.fromkeys(problems))


def _reading(spot: shell_quoting.Spot) -> Code | None:
    """The program that reads the placeholder at ``spot`` of a shell's script as code: one its
    command gives the word holding it as code, or one that reads the here-document holding it
    as its code."""
    if spot.stdin:
        found = inline_code.reads_standard_input(_words(spot.command))
        return None if found is None else Code(-1, found.program, found.language)
    words = _words(spot.command + _CLOSING.get(spot.kind, "") + _MARK)
    return next((code for code in inline_code.code_arguments(words) if code.index == len(words) - 1), None)


def _words(command: str) -> list[str]:
    """The words of a command of a shell's script as the shell splits them (quotes removed),
    or split at white space where the shell's quoting is beyond :mod:`shlex`."""
    text = command.replace("\\\n", "")
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def _unfit(values: list[str], language: Language) -> str | None:
    """The first of ``values`` that ``language`` does not read as one token, if any."""
    return next((value for value in values if not language.plain.fullmatch(value)), None)


def _message(name: str, value: str, code: Code, in_script: bool = False) -> str:
    """Why a placeholder of parameter ``name`` pasted into ``code`` is refused, and what to do."""
    language, variable = code.language, shell_quoting.variable(name)
    where = (f"the code {code.program} reads from this here-document" if code.index == -1 and in_script
             else f"the code {code.program} runs" + (" (given it by a command of this shell script)" if in_script else ""))
    token = ("a number or a word of ASCII letters, digits and _" if language.plain is code_languages.TOKEN
             else "a plain word of ASCII letters, digits and _@%+:,./-")
    read = [f"pass it as an argument after the code and read it there ({language.argument})"] if language.argument else []
    read.append(f"read it from the variable {variable}, which every trial has"
                + (f" ({language.variable.format(variable)})" if language.variable else ""))
    return (f"the value of parameter {name!r} is pasted into {where}, which would read it as code, not data, and "
            f"{name!r} can be {value!r}, which is not {token}: {', or '.join(read)}")
