"""Which arguments of a command a program reads as code: a shell's ``-c`` script, Python's
``-c`` code, Perl's and Ruby's ``-e`` code, Node's ``-e``/``--eval``, R's ``-e``, awk's program
and sed's script (GNU sed's ``e`` runs a command), and so on.

A parameter's value pasted into such an argument is read as code, not data: a categorical
value ``'); import os; os.system('x'); ('`` in ``python -c "print('${trialParameters.v}')"``
runs ``x``. Each language quotes differently, so rather than quote for each, katuna refuses a
study that pastes a value there unless every value its parameter can take is read as one
token of the language (:attr:`Language.plain`); the program can always take the value as an
argument after its code, or from the variable ``KATUNA_PARAM_<name>`` every trial has. (A
shell's script at the start of a command is the exception: :mod:`shell_quoting` passes each
value to it as data.)

The program is the first word of the argv that names one (``python3``, ``/usr/bin/perl``), so
one started through ``env``, ``timeout`` or ``tini --`` is found too; its options are read as
it reads them, up to its first operand, and every argument after its code or its script file
is data it is given.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from functions.core.shell_quoting import PLAIN_WORD

TOKEN = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:e[-+]?[0-9]+)?|[A-Za-z0-9_]+")
"""Matched whole: a number or a name, what Perl and Ruby read as one token outside quotes
(``qx.id.`` and ``%x/id/``, plain words to a shell, run ``id`` there)."""


@dataclass(frozen=True)
class Language:
    """A program that runs code given in its arguments, and how it reads its options."""

    program: re.Pattern[str]
    """Matched whole against a command word's last path segment."""
    code: str
    """Short options whose value is code (``c`` for ``-c``; in a cluster: ``-Bc``, ``-ne``)."""
    long: tuple[str, ...] = ()
    """Long options whose value is code (``--eval CODE`` or ``--eval=CODE``)."""
    valued: str = ""
    """Short options taking a value: the rest of their cluster, else the next argument."""
    attached: str = ""
    """Short options taking the rest of their cluster (if any) as their value, never the next argument."""
    long_valued: tuple[str, ...] = ()
    plain: re.Pattern[str] = PLAIN_WORD
    """Matched whole: a value read as one token wherever it stands in the code."""
    argument: str = ""
    """How its code reads the first argument given after the code."""
    variable: str = ""
    """How its code reads a variable, ``{}`` standing for the variable's name."""
    script_operand: bool = False
    """A code option only says that the first operand is the code (a shell's ``bash -c -e 'script'``)."""
    every_argument: bool = False
    """Every argument is code (``eval``)."""
    first_operand: bool = False
    """Without a code option, nor one naming a file of code, the first operand is the code
    (awk's program, sed's script)."""
    code_files: str = ""
    """Short options naming a file of code (``-f``, among :attr:`valued` too): the first
    operand is then no code."""
    long_code_files: tuple[str, ...] = ()


SHELL = Language(re.compile(r"sh|bash|dash|zsh|ksh|ash|mksh"), "c", valued="oO",
                 long_valued=("--rcfile", "--init-file"), argument='"$1" (after the script and $0)',
                 variable='"${}"', script_operand=True)
LANGUAGES = (
    SHELL,
    Language(re.compile(r"eval"), "", variable='"${}"', every_argument=True),
    Language(re.compile(r"(?:python|pypy)[0-9.]*"), "c", valued="WX",
             long_valued=("--check-hash-based-pycs",), argument="sys.argv[1]", variable="os.environ['{}']"),
    Language(re.compile(r"perl[0-9.]*"), "eE", valued="I", attached="MmiF", plain=TOKEN,
             argument="$ARGV[0]", variable="$ENV{{{}}}"),
    Language(re.compile(r"ruby[0-9.]*"), "e", valued="rICE", attached="FWxKT0", plain=TOKEN,
             argument="ARGV[0]", variable="ENV['{}']"),
    Language(re.compile(r"node|nodejs|bun"), "ep", long=("--eval", "--print"), valued="rC",
             long_valued=("--require", "--import", "--loader", "--experimental-loader", "--input-type",
                          "--conditions"), argument="process.argv[1]", variable="process.env.{}"),
    Language(re.compile(r"Rscript|R"), "e", argument="commandArgs(trailingOnly = TRUE)[1]",
             variable="Sys.getenv('{}')"),
    Language(re.compile(r"php[0-9.]*"), "rBRE", valued="cdzt", argument="$argv[1]", variable="getenv('{}')"),
    Language(re.compile(r"lua[0-9.]*|luajit"), "e", valued="l", argument="arg[1]",
             variable="os.getenv('{}')"),
    Language(re.compile(r"julia"), "eE", long=("--eval", "--print"), valued="LJptC", argument="ARGS[1]",
             variable='ENV["{}"]'),
    Language(re.compile(r"awk|gawk|mawk|nawk"), "e", long=("--source",), valued="FvilEWf",
             long_valued=("--field-separator", "--assign", "--include", "--load", "--file", "--exec"), first_operand=True,
             code_files="fE", long_code_files=("--file", "--exec"), argument="ARGV[1] (in BEGIN)",
             variable='ENVIRON["{}"]'),
    Language(re.compile(r"sed|gsed"), "e", long=("--expression",), valued="lf", attached="i",
             long_valued=("--line-length", "--file"), first_operand=True, code_files="f", long_code_files=("--file",)),
)
"""The programs katuna knows to run code given in their arguments: shells and ``eval``, Python,
Perl, Ruby, Node (and Bun), R, PHP, Lua, Julia, awk and sed."""


@dataclass(frozen=True)
class Code:
    """Where a program reads code: an argument's index (or the program's own, for its standard
    input), the program's name, its language."""

    index: int
    program: str
    language: Language


def language_of(word: str) -> Language | None:
    """The language of the program ``word`` names, if it runs code given in its arguments."""
    name = word.rsplit("/", 1)[-1]
    return next((lang for lang in LANGUAGES if lang.program.fullmatch(name)), None)


def is_shell(word: str) -> bool:
    """Whether ``word`` names a shell (busybox, which runs one, included)."""
    return language_of(word) is SHELL or word.rsplit("/", 1)[-1] == "busybox"


def shell_script(command: Sequence[str]) -> int | None:
    """The index of the script a shell that ``command`` starts (``sh -c``, ``bash -ec``,
    ``busybox sh -c``) runs: the first operand after its ``-c``. None where it starts no shell,
    or gives it no script."""
    start = 1 if command[:1] and command[0].rsplit("/", 1)[-1] == "busybox" else 0
    if len(command) <= start or language_of(command[start]) is not SHELL:
        return None
    return next(iter(_read(command, start, SHELL)[0]), None)


def code_arguments(argv: Sequence[str]) -> list[Code]:
    """Each argument of ``argv`` its program reads as code (one holding the code after its
    option too: ``-cprint(1)``, ``--eval=...``)."""
    start, language = _program(argv)
    if language is None:
        return []
    name = argv[start].rsplit("/", 1)[-1]
    return [Code(i, name, language) for i in _read(argv, start, language)[0]]


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
