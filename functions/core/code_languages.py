"""The programs that run code given in their arguments (:data:`LANGUAGES`: shells and
``eval``, Python, Perl, Ruby, Node, R, PHP, Lua, Julia, awk, sed; :data:`RUNNER`, whose
command line a shell runs; ``env -S``), and how each reads its options: which option's value
is code, which take a value, and which value is read as one token of the language
(:attr:`Language.plain`). :mod:`inline_code` reads an argv with them."""

from __future__ import annotations

import re
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


def language_of(word: str) -> Language | None:
    """The language of the program ``word`` names, if it runs code given in its arguments."""
    name = word.rsplit("/", 1)[-1]
    return next((lang for lang in LANGUAGES if lang.program.fullmatch(name)), None)


def is_shell(word: str) -> bool:
    """Whether ``word`` names a shell (busybox, which runs one, included)."""
    return language_of(word) is SHELL or word.rsplit("/", 1)[-1] == "busybox"
