"""A parameter's value in a shell's script, put there as data, never as code.

A trial's command may give a shell a script (``[sh, -c, "python train.py --lr=${trialParameters.lr}"]``).
Pasted into the script as text, a value would be read by the shell as code: ``$(touch x)`` would
run, a ``"`` would end the script's own quotes. So a value the shell reads as nothing but one
word (:data:`PLAIN_WORD`, every number among them) is written in as it is, and any other is
passed in an environment variable of the trial (:func:`variable`), which the script reads where
the placeholder stood, quoted as that spot needs for the program to get exactly the value:
``"${KATUNA_PARAM_c}"`` outside quotes, ``${KATUNA_PARAM_c}`` inside double quotes or a
here-document, ``'"${KATUNA_PARAM_c}"'`` inside single quotes. A shell reads what a variable
expands to as data but in its arithmetic, which runs what an array index in the value expands
(a value :mod:`shell_arithmetic` refuses where the script reads it), so reading the script's quoting wrong
(:func:`spots` reads what POSIX shells and bash share) could at worst split the value into
words, never run it. Each
spot also tells the command of the script it stands in, for :mod:`code_placeholders` to see
whether that command gives another program the value as code.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

PLAIN_WORD = re.compile(r"[A-Za-z0-9_@%+:,./-]+")
"""Matched whole: a value a shell reads as one literal word wherever it stands (no quote,
expansion, glob, space, ``~``, ``=`` or operator)."""
PREFIX = "KATUNA_PARAM_"
"""How the variable carrying a parameter's value to a script begins."""
CODE, DOUBLE, SINGLE, ANSI, LITERAL = "code", "double", "single", "ansi", "literal"
"""Where a spot of a script is: outside quotes, in double quotes (or a here-document the shell
expands), in single quotes, in bash's ``$'...'``, in a here-document read as written."""
_HEREDOC = re.compile(r"<<(-?)[ \t]*((?:[^\s;&|<>()'\"\\]|'[^']*'|\"[^\"]*\"|\\.)+)")
_WORD_START = " \t\n;&|()"
_COMMAND_END = "\n;&|()"
"""Outside quotes, each ends a command: the next one begins after it."""


@dataclass(frozen=True)
class Spot:
    """How the script is quoted where a placeholder stands; a literal here-document's delimiter;
    the command it stands in, as written from its start up to the placeholder (in a
    here-document, the command that reads the document, ``stdin``)."""

    kind: str
    delimiter: str = ""
    strip_tabs: bool = False
    command: str = ""
    stdin: bool = False


def variable(name: str) -> str:
    """The variable that carries parameter ``name``'s value, one for each name: ASCII letters and
    digits as they are, ``_`` doubled, any other character as ``_`` and the hex of each of its
    UTF-8 bytes (``model/lr`` is ``KATUNA_PARAM_model_2Flr``)."""
    return PREFIX + "".join(c if c.isascii() and c.isalnum() else "__" if c == "_"
                            else "".join(f"_{b:02X}" for b in c.encode("utf-8", "surrogatepass")) for c in name)


def as_data(value: str, name: str, spot: Spot) -> str:
    """What stands for ``value`` (carried by variable ``name``) at ``spot`` of a script. A
    here-document read as written (``<<'EOF'``) expands nothing, so it gets the value itself,
    unless a line of the value would end it: then the reference stays there as text."""
    if PLAIN_WORD.fullmatch(value) or spot.kind == LITERAL and not _ends_heredoc(value, spot):
        return value
    reference = f"${{{name}}}"
    return {CODE: f'"{reference}"', SINGLE: f"'\"{reference}\"'", ANSI: f"'\"{reference}\"$'"}.get(spot.kind, reference)


def _ends_heredoc(value: str, spot: Spot) -> bool:
    """Whether ``value`` holds a line that would end the here-document of ``spot``."""
    return any((line.lstrip("\t") if spot.strip_tabs else line) == spot.delimiter for line in value.split("\n"))


@dataclass
class _Frame:
    """A construct of the script being read: its kind, what ends it, its open parentheses."""

    kind: str
    closer: str = ""
    depth: int = 0
    delimiter: str = ""
    strip_tabs: bool = False
    arithmetic: bool = False
    start: int = 0
    """Where the command being read begins (code), or the command reading the here-document."""
    command: str = ""


_SPOTS = {"code": CODE, "brace": CODE, "double": DOUBLE, "qbrace": DOUBLE, "heredoc": DOUBLE, "single": SINGLE,
          "ansi": ANSI}


def spots(script: str, offsets: Sequence[int]) -> list[Spot]:
    """The :class:`Spot` of each of ``offsets`` (ascending) in ``script``."""
    reader = _Reader(script)
    found: list[Spot] = []
    i = 0
    for offset in offsets:
        while i < offset:
            i = reader.step(i)
        found.append(reader.spot(offset))
    return found


class _Reader:
    """Reads a script's quoting one construct at a time: quotes, ``$(...)``, backquotes,
    ``${...}``, comments and here-documents."""

    def __init__(self, script: str) -> None:
        self.script = script
        self.frames = [_Frame("code")]
        self.pending: list[_Frame] = []

    def spot(self, offset: int) -> Spot:
        """The :class:`Spot` at ``offset``, where reading has got to."""
        top = self.frames[-1]
        kind = LITERAL if top.kind == "literal" else _SPOTS[top.kind]
        frame = next(frame for frame in reversed(self.frames) if frame.kind in ("code", "heredoc", "literal"))
        if frame.kind == "code":
            return Spot(kind, command=self.script[frame.start:offset])
        return Spot(kind, frame.delimiter, frame.strip_tabs, frame.command, stdin=True)

    def step(self, i: int) -> int:
        """Read the construct at ``i``; where the next one begins."""
        top = self.frames[-1]
        if top.kind in ("heredoc", "literal") and (moved := self._heredoc_line(i, top)) is not None:
            return moved
        char = self.script[i]
        if top.kind in ("single", "ansi") and char == "'":
            self.frames.pop()
            return i + 1
        if top.kind == "single":
            return i + 1
        if char == "\\":
            return i + 2
        if top.kind == "ansi":
            return i + 1
        return self._expansion(i) or self._quoting(i, top)

    def _heredoc_line(self, i: int, top: _Frame) -> int | None:
        """In a here-document: past its delimiter's line (which ends it) at a line's start, past
        the line where it is read as written, else None (its text is read on)."""
        end = self._line_end(i)
        if self.script[i - 1] == "\n":
            line = self.script[i:end]
            if (line.lstrip("\t") if top.strip_tabs else line) == top.delimiter:
                self.frames.pop()
                return end
        return end + 1 if top.kind == "literal" else None

    def _line_end(self, i: int) -> int:
        end = self.script.find("\n", i)
        return len(self.script) if end < 0 else end

    def _expansion(self, i: int) -> int:
        """Past the opening of an expansion at ``i`` (0 where none opens there)."""
        text, top = self.script, self.frames[-1]
        quoted = top.kind in ("double", "qbrace", "heredoc")
        if text.startswith("${", i):
            self.frames.append(_Frame("qbrace" if quoted else "brace"))
            return i + 2
        if text.startswith("$((", i):
            self.frames.append(_Frame("code", ")", depth=1, arithmetic=True, start=i + 3))
            return i + 3
        if text.startswith("$(", i):
            self.frames.append(_Frame("code", ")", start=i + 2))
            return i + 2
        if text[i] == "`":
            if top.kind == "code" and top.closer == "`":
                self.frames.pop()
            else:
                self.frames.append(_Frame("code", "`", start=i + 1))
            return i + 1
        if text.startswith("$'", i) and not quoted:
            self.frames.append(_Frame("ansi"))
            return i + 2
        return 0

    def _quoting(self, i: int, top: _Frame) -> int:
        """Past the quote, bracket, comment or here-document operator at ``i`` (or the character)."""
        char = self.script[i]
        if top.kind in ("double", "qbrace") and char == '"' or top.kind in ("brace", "qbrace") and char == "}":
            if top.kind == "qbrace" and char == '"':
                self.frames.append(_Frame("double"))
            else:
                self.frames.pop()
            return i + 1
        if top.kind in ("code", "brace") and char in "'\"":
            self.frames.append(_Frame("single" if char == "'" else "double"))
            return i + 1
        return self._code(i, top) if top.kind == "code" else i + 1

    def _code(self, i: int, top: _Frame) -> int:
        """Past what ``i`` begins outside quotes: a parenthesis, a comment, a here-document; a
        command's end (where the next begins)."""
        char = self.script[i]
        if char in _COMMAND_END:
            top.start = i + 1
        if char == "(" and top.closer == ")":
            top.depth += 1
        elif char == ")" and top.closer == ")":
            top.depth -= 1
            if top.depth < 0:
                self.frames.pop()
        elif char == "#" and (i == 0 or self.script[i - 1] in _WORD_START):
            return self._line_end(i)
        elif char == "\n" and self.pending:
            self.frames += reversed(self.pending)
            self.pending = []
        elif self.script.startswith("<<<", i):
            return i + 3
        elif self.script.startswith("<<", i) and not top.arithmetic and (heredoc := _HEREDOC.match(self.script, i)):
            word = heredoc.group(2)
            self.pending.append(_Frame("literal" if re.search(r"['\"\\]", word) else "heredoc",
                                       delimiter=re.sub(r"['\"\\]", "", word), strip_tabs=bool(heredoc.group(1)),
                                       command=self.script[top.start:i]))
            return heredoc.end()
        return i + 1
