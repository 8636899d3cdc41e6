"""Which arguments of a command a program reads as code: a shell's ``-c`` script, Python's
``-c`` code, Perl's and Ruby's ``-e`` code, Node's ``-e``/``--eval``, R's ``-e``, awk's program
and sed's script (GNU sed's ``e`` runs a command), the command line ``su -c`` or ``flock FILE
-c`` has a shell run, the string ``env -S`` splits into a command, and so on.

A parameter's value pasted into such an argument is read as code, not data: a categorical
value ``'); import os; os.system('x'); ('`` in ``python -c "print('${trialParameters.v}')"``
runs ``x``. Each language quotes differently, so rather than quote for each, katuna refuses a
study that pastes a value there unless every value its parameter can take is read as one
token of the language (:attr:`Language.plain`); the program can always take the value as an
argument after its code, or from the variable ``KATUNA_PARAM_<name>`` every trial has. (A
shell's script at the start of a command, or past the programs that start it with the trial's
variables, :data:`WRAPPERS`, is the exception: :mod:`shell_quoting` passes each value to it as
data.)

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
RUNNER = Language(re.compile(r"su|runuser|flock|script"), "c", long=("--command", "--session-command"),
                  variable='"${}"')
"""Programs that have a shell run the command line given to their ``-c`` (``--command``),
whose options may follow their operands (``flock FILE -c LINE``, ``su -c LINE USER``)."""
SPLIT_STRING = Language(re.compile(r"env"), "", variable="${{{}}}")
"""``env -S STRING``: ``env`` splits the string into the command it runs, reading its quotes,
``\\`` escapes and ``${NAME}`` as code (a shell, when it starts one, then reads its script)."""


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
    ``busybox sh -c``, ``env A=1 timeout 60 bash -c``: see :data:`WRAPPERS`) runs: the first
    operand after its ``-c``. None where it starts no shell, gives it no script, or ``env``
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
    (:data:`WRAPPERS`), if any."""
    start, cleared = _unwrapped(command)
    if start is None or start >= len(command) or language_of(command[start]) is not SHELL:
        return None
    code, operand = _read(command, start, SHELL)
    if code:
        return Shell(start, code[0], code[0] + 1, cleared)
    if operand is None:
        return Shell(start, None, len(command), cleared)
    from_stdin = any(arg[:1] == "-" and arg[1:2] != "-" and "s" in arg for arg in command[start + 1:operand])
    return Shell(start, None, operand if from_stdin else operand + 1, cleared)


@dataclass(frozen=True)
class Wrapper:
    """A program that runs the command its argv goes on with, and how it reads its options."""

    valued: str = ""
    """Short options taking a value (the rest of their cluster, else the next argument)."""
    long_valued: tuple[str, ...] = ()
    """Long options taking a value (``--signal SIG`` or ``--signal=SIG``)."""
    operands: int = 0
    """Operands before the command (``timeout``'s duration)."""
    assignments: bool = False
    """Takes ``NAME=value`` words before the command, and ``-`` for ``-i`` (``env``)."""
    opaque: tuple[str, ...] = ()
    """Options after which the command is one string, no argv of its own (``env -S``)."""
    numeric: bool = False
    """An option of digits is a value (``nice -10``)."""


WRAPPERS = {
    "env": Wrapper(valued="uCS", long_valued=("--unset", "--chdir", "--split-string"), assignments=True,
                   opaque=("S", "--split-string")),
    "timeout": Wrapper(valued="ks", long_valued=("--kill-after", "--signal"), operands=1),
    "nice": Wrapper(valued="n", long_valued=("--adjustment",), numeric=True),
    "nohup": Wrapper(),
    "tini": Wrapper(valued="pe"),
    "dumb-init": Wrapper(valued="r", long_valued=("--rewrite",)),
    "stdbuf": Wrapper(valued="ioe", long_valued=("--input", "--output", "--error")),
    "setsid": Wrapper(),
    "busybox": Wrapper(),
}
"""The programs that run the rest of their argv as a command, after their own options and
operands: ``env`` (and its ``NAME=value`` words), ``timeout``, ``nice``, ``nohup``, ``tini``,
``dumb-init``, ``stdbuf``, ``setsid``, and ``busybox``, which runs the applet named next."""
_FLOCK = Wrapper(valued="wE", long_valued=("--timeout", "--conflict-exit-code"))
"""How ``flock`` reads its options, which end at its file."""
_CLEARING = re.compile(r"-[^-]*[iu].*|-|--ignore-environment|--unset(=.*)?")
"""``env``'s options that start the command without (some of) the variables it was given."""


def _unwrapped(command: Sequence[str]) -> tuple[int | None, bool]:
    """The index of the command the wrappers at the start of ``command`` run (0 where it starts
    with none), and whether ``env`` clears or unsets variables for it; None where a wrapper is
    given it in a form katuna does not read (``env -S 'bash -c ...'``)."""
    start: int | None = 0
    cleared = False
    while start is not None and start < len(command) \
            and (wrapper := WRAPPERS.get(command[start].rsplit("/", 1)[-1])) is not None:
        found = _wrapped(command, start, wrapper)
        cleared |= wrapper.assignments and any(_CLEARING.fullmatch(arg) for arg in command[start + 1:found])
        start = found
    return start, cleared


def _wrapped(command: Sequence[str], start: int, wrapper: Wrapper) -> int | None:
    """The index of the command the wrapper at ``start`` runs, past its options, assignments
    and operands; None where an option of it takes the command as one string."""
    i = start + 1
    while i < len(command):
        arg = command[i]
        if arg == "--":
            return i + 1 + wrapper.operands
        if wrapper.assignments and (arg == "-" or arg[:1] not in ("-", "=") and "=" in arg):
            i += 1
            continue
        if arg[:1] != "-" or arg == "-":
            break
        words = _option_words(arg, wrapper)
        if words is None:
            return None
        i += words
    return i + wrapper.operands


def _option_words(arg: str, wrapper: Wrapper) -> int | None:
    """How many words the wrapper's option ``arg`` takes (itself, and its value where that is
    the next word); None for an option that takes the command as one string."""
    name, equals, _ = arg.partition("=")
    if arg.startswith("--"):
        return None if name in wrapper.opaque else 2 if name in wrapper.long_valued and not equals else 1
    if wrapper.numeric and arg[1:].isdigit():
        return 1
    at = next((j for j, letter in enumerate(arg) if j and letter in wrapper.valued), None)
    if at is not None and arg[at] in wrapper.opaque:
        return None
    return 2 if at == len(arg) - 1 else 1


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
    """The command lines that the program ``argv`` starts (past :data:`WRAPPERS`) has a shell
    run (``su -c``, ``flock FILE -c``, ``script -c``, ``runuser -c``), or that ``env -S`` splits
    into the command it runs: a shell, or ``env`` itself, reads each as code, not data."""
    start, _ = _unwrapped(argv)
    if start is None:
        return [Code(i, "env -S", SPLIT_STRING) for i in _split_strings(argv)]
    if start >= len(argv) or not RUNNER.program.fullmatch(name := argv[start].rsplit("/", 1)[-1]):
        return []
    if name == "flock":  # its options end at its file: then -c LINE, or a command's argv of its own
        file = _wrapped(argv, start, _FLOCK)
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


def _split_strings(argv: Sequence[str]) -> list[int]:
    """The index of the string that a wrapper at the start of ``argv`` takes the command as
    (``env -S STRING``, ``env -SSTRING``, ``env --split-string=STRING``)."""
    start: int | None = 0
    while start is not None and start < len(argv) and (wrapper := WRAPPERS.get(argv[start].rsplit("/", 1)[-1])):
        i = start + 1
        while i < len(argv) and argv[i][:1] == "-" and argv[i] not in ("-", "--"):
            words = _option_words(argv[i], wrapper)
            if words is None:
                attached = "=" in argv[i] if argv[i].startswith("--") else \
                    next(j for j, letter in enumerate(argv[i]) if j and letter in wrapper.valued) < len(argv[i]) - 1
                return [i] if attached else [i + 1] if i + 1 < len(argv) else []
            i += words
        start = _wrapped(argv, start, wrapper)
    return []


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
