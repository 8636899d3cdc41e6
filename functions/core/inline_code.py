"""Which arguments of a command a program reads as code: a shell's ``-c`` script, Python's
``-c`` code, Perl's and Ruby's ``-e`` code, Node's ``-e``/``--eval``, R's ``-e``, awk's program
and sed's script (GNU sed's ``e`` runs a command), the command line ``su -c`` or ``flock FILE
-c`` has a shell run, the string ``env -S`` splits into a command, and so on.

A parameter's value pasted into such an argument is read as code, not data: a categorical
value ``'); import os; os.system('x'); ('`` in ``python -c "print('${trialParameters.v}')"``
runs ``x``. Each language quotes differently, so rather than quote for each, katuna refuses a
study that pastes a value there unless every value its parameter can take is read as one
token of the language (:attr:`code_languages.Language.plain`); the program can always take the
value as an argument after its code, or from the variable ``KATUNA_PARAM_<name>`` every trial
has. (A shell's script at the start of a command, or past the programs that start it with the
trial's variables, :data:`command_wrappers.WRAPPERS`, is the exception: :mod:`shell_quoting`
passes each value to it as data.)

The program is the first word of the argv that names one (``python3``, ``/usr/bin/perl``), so
one started through ``env``, ``timeout`` or ``tini --`` is found too; its options are read as
it reads them, up to its first operand, and every argument after its code or its script file
is data it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from functions.core.code_languages import RUNNER, SHELL, SPLIT_STRING, Language, language_of
from functions.core.command_wrappers import FLOCK, split_strings, unwrapped, wrapped


@dataclass(frozen=True)
class Code:
    """Where a program reads code: an argument's index (or the program's own, for its standard
    input), the program's name, its language."""

    index: int
    program: str
    language: Language


def shell_script(command: Sequence[str]) -> int | None:
    """The index of the script a shell that ``command`` starts (``sh -c``, ``bash -ec``,
    ``busybox sh -c``, ``env A=1 timeout 60 bash -c``: see :data:`command_wrappers.WRAPPERS`)
    runs: the first operand after its ``-c``. None where it starts no shell, gives it no script, or ``env``
    starts it without the trial's variables (``env -i``), which its script reads values from."""
    shell = started_shell(command)
    return None if shell is None or shell.cleared else shell.script


@dataclass(frozen=True)
class Shell:
    """A shell a command starts: where it is, its script and the arguments it gets."""

    at: int
    """The index of the shell's word (past the wrappers that start it)."""
    script: int | None
    """The index of its ``-c`` script; None where it runs a file's or its standard input's."""
    arguments: int
    """The index of the first argument its script gets (as ``$0`` after a ``-c`` script, else
    as ``$1``)."""
    cleared: bool
    """Whether a wrapper starts it without the trial's variables (``env -i``, ``env -u``)."""


def started_shell(command: Sequence[str]) -> Shell | None:
    """The shell ``command`` starts, past the wrappers that run the rest of their argv
    (:data:`command_wrappers.WRAPPERS`), if any."""
    start, cleared = unwrapped(command)
    if start is None or start >= len(command) or language_of(command[start]) is not SHELL:
        return None
    code, operand = _read(command, start, SHELL)
    if code:
        return Shell(start, code[0], code[0] + 1, cleared)
    if operand is None:
        return Shell(start, None, len(command), cleared)
    from_stdin = any(arg[:1] == "-" and arg[1:2] != "-" and "s" in arg for arg in command[start + 1:operand])
    return Shell(start, None, operand if from_stdin else operand + 1, cleared)


def code_arguments(argv: Sequence[str]) -> list[Code]:
    """Each argument of ``argv`` its program reads as code (one holding the code after its
    option too: ``-cprint(1)``, ``--eval=...``); and the command line a program that runs one
    with a shell is given (:data:`RUNNER`, ``env -S``: :func:`_command_lines`)."""
    lines = _command_lines(argv)
    start, language = _program(argv)
    if language is None:
        return lines
    name = argv[start].rsplit("/", 1)[-1]
    return [*(Code(i, name, language) for i in _read(argv, start, language)[0]), *lines]


def _command_lines(argv: Sequence[str]) -> list[Code]:
    """The command lines that the program ``argv`` starts (past
    :data:`command_wrappers.WRAPPERS`) has a shell run (``su -c``, ``flock FILE -c``, ``script
    -c``, ``runuser -c``), or that ``env -S`` splits into the command it runs: a shell, or
    ``env`` itself, reads each as code, not data."""
    start, _ = unwrapped(argv)
    if start is None:
        return [Code(i, "env -S", SPLIT_STRING) for i in split_strings(argv)]
    if start >= len(argv) or not RUNNER.program.fullmatch(name := argv[start].rsplit("/", 1)[-1]):
        return []
    if name == "flock":  # its options end at its file: then -c LINE, or a command's argv of its own
        file = wrapped(argv, start, FLOCK)
        return [Code(file + 2, name, RUNNER)] if file is not None and file + 2 < len(argv) \
            and argv[file + 1] in ("-c", "--command") else []
    found, i = [], start + 1
    while i < len(argv) and argv[i] != "--":
        kind, attached = _option(argv[i], RUNNER) if argv[i][:1] == "-" else ("operand", False)
        if kind == "code" and (attached or i + 1 < len(argv)):
            found.append(Code(i if attached else i + 1, name, RUNNER))
            i += 0 if attached else 1
        i += 1
    return found


def reads_standard_input(argv: Sequence[str]) -> Code | None:
    """The program of ``argv`` if it reads its code from standard input (``python -``,
    ``perl``, ``bash -s``: no code option, and no operand or ``-`` first), at its own index.
    awk and sed read their input there, never their code (but from ``-f -``, not looked for)."""
    start, language = _program(argv)
    if language is None or language.every_argument or language.first_operand:
        return None
    code, operand = _read(argv, start, language)
    if code or operand is not None and argv[operand] != "-":
        return None
    return Code(start, argv[start].rsplit("/", 1)[-1], language)


def _program(argv: Sequence[str]) -> tuple[int, Language | None]:
    """The first word of ``argv`` that names a program running code, and its language."""
    return next(((i, lang) for i, word in enumerate(argv) if (lang := language_of(word)) is not None), (0, None))


def _read(argv: Sequence[str], start: int, language: Language) -> tuple[list[int], int | None]:
    """The indexes of the code arguments of the program at ``start``, read option by option up
    to its first operand, and that operand's index (None where it has none)."""
    if language.every_argument:
        return list(range(start + 1, len(argv))), None
    code: list[int] = []
    wants_script, i = False, start + 1
    has_code = False
    while i < len(argv):
        arg = argv[i]
        if arg in ("-", "--") or arg[:1] != "-" and not (language.script_operand and arg[:1] == "+" and arg[1:]):
            operand = i + 1 if arg == "--" else i
            if (wants_script or language.first_operand and not has_code) and operand < len(argv):
                code.append(operand)
            return code, operand if operand < len(argv) else None
        wants_script |= language.script_operand and arg[1:2] != "-" and any(c in language.code for c in arg[1:])
        kind, attached = _option(arg, language)
        if kind == "code" and (attached or i + 1 < len(argv)):
            code.append(i if attached else i + 1)
        has_code |= kind == "code" or _names_code_file(arg, language)
        i += 2 if kind in ("code", "value") and not attached else 1
    return code, None


def _names_code_file(arg: str, language: Language) -> bool:
    """Whether the option ``arg`` names a file of code (awk's ``-f prog.awk``, ``--file=x``)."""
    if arg.startswith("--"):
        return arg.partition("=")[0] in language.long_code_files
    for letter in arg[1:]:
        if letter in language.code_files:
            return True
        if letter in language.valued or letter in language.attached:
            return False
    return False


def _option(arg: str, language: Language) -> tuple[str, bool]:
    """What the option ``arg`` is to ``language`` (``code``, ``value`` or ``flag``: whether it
    takes code, another value or nothing) and whether that is attached (``-cCODE``,
    ``--eval=CODE``, ``-Wignore``)."""
    if arg.startswith("--"):
        name, equals, _ = arg.partition("=")
        return "code" if name in language.long else "value" if name in language.long_valued else "flag", bool(equals)
    for j, letter in enumerate(arg[1:], 2):
        if letter in language.code and not language.script_operand:
            return "code", j < len(arg)
        if letter in language.valued:
            return "value", j < len(arg)
        if letter in language.attached:
            break
    return "flag", False
