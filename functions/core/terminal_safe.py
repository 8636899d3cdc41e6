"""A trial's log as it may reach a person's terminal: its text, line breaks, carriage returns,
tabs and backspaces, colours and cursor moves, and nothing else a terminal acts on.

A log holds whatever the trial printed, which may come from anywhere (a dataset's text, a page
it downloaded, a library's messages). A terminal acts on what it is sent: an escape sequence may
set its window's title, write the clipboard (OSC 52), show a link whose text hides where it leads
(OSC 8), change its modes (the mouse, the alternate screen), or ask it something whose answer it
types into the shell's input as if the user had (a device status, its title); a shift-out
character switches it to another character set until it is switched back. So ``katuna logs`` to
a terminal writes what draws the log, as a training script draws it (colours: SGR; the cursor's
moves and erasing a line: tqdm's nested bars), and leaves every other control out; to a pipe or
a file it writes the log byte for byte.

The log is read a chunk at a time: a sequence cut between two chunks is held until the rest
comes (a string sequence, an OSC's or a DCS's, is left out as it comes, however long).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

DRAWING_FINALS = frozenset(b"mABCDEFGHJKf")
"""The final bytes of the control sequences (CSI) passed on: colours and styles (``m``), cursor
moves (``A`` to ``H``, ``f``) and erasures (``J``, ``K``), with numeric parameters only."""

_NUMERIC = re.compile(rb"[0-9;:]*")

_CONTROL = re.compile(rb"""
    \x1b\[(?P<params>[\x30-\x3f]*)(?P<inter>[\x20-\x2f]*)(?P<final>[\x40-\x7e])  # a control sequence
  | (?P<string>\x1b[\]PX^_])                # a string's start: OSC, DCS, SOS, PM, APC
  | \x1b[\x20-\x2f]*[\x30-\x7e]             # another escape sequence (a reset, a character set)
  | \xc2[\x80-\x9f]                         # a C1 control, as UTF-8
  | [\x00-\x07\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]  # a C0 control but for \\b, \\t, \\n, \\r and ESC
  | \x1b                                    # an escape that begins no sequence, or is cut
""", re.VERBOSE)

_CUT = re.compile(rb"\x1b(?:\[[\x30-\x3f]*[\x20-\x2f]*|[\x20-\x2f]*)")
"""The start of a sequence the chunk ends inside of."""

_STRING_END = re.compile(rb"\x07|\x1b")
"""What ends a string sequence: BEL, or ST (``ESC \\``); any other escape ends it too."""


class TerminalSafe:
    """A log's chunks, as :func:`for_terminal` writes them; :meth:`feed` each, then :meth:`end`."""

    def __init__(self) -> None:
        self._held = b""
        self._in_string = False

    def feed(self, chunk: bytes) -> bytes:
        """What of the log up to ``chunk`` can be written now."""
        data, self._held = self._held + chunk, b""
        if data.endswith(b"\xc2"):  # perhaps a C1 control's first byte, its second to come
            data, self._held = data[:-1], b"\xc2"
        position = self._string_rest(data, 0)
        kept = bytearray()
        while position < len(data):
            match = _CONTROL.search(data, position)
            if match is None:
                kept += data[position:]
                break
            kept += data[position:match.start()]
            if _CUT.fullmatch(data, match.start()):
                self._held = data[match.start():] + self._held
                break
            if _drawing(match):
                kept += match.group()
            position = self._string_rest(data, match.end()) if match.group("string") else match.end()
        return bytes(kept)

    def end(self) -> bytes:
        """The log's end: a sequence it ended inside of is left out."""
        self._held, self._in_string = b"", False
        return b""

    def _string_rest(self, data: bytes, position: int) -> int:
        """Where ``data`` goes on after the string sequence under way, if one is: at its end's
        end (past BEL or ``ESC \\``; at an escape that begins another sequence), or past
        ``data``, the string going on (an escape last is held, to see what follows it)."""
        if position == 0 and not self._in_string:
            return 0
        end = _STRING_END.search(data, position)
        if end is None:
            self._in_string = True
            return len(data)
        if end.group() == b"\x1b" and end.end() == len(data):
            self._in_string, self._held = True, b"\x1b"
            return len(data)
        self._in_string = False
        if end.group() == b"\x07":
            return end.end()
        return end.end() + 1 if data[end.end():end.end() + 1] == b"\\" else end.start()


def _drawing(match: re.Match[bytes]) -> bool:
    """Whether a control sequence draws the log (:data:`DRAWING_FINALS`), rather than acts."""
    final = match.group("final")
    return final is not None and final[0] in DRAWING_FINALS and not match.group("inter") \
        and _NUMERIC.fullmatch(match.group("params")) is not None


def for_terminal(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """``chunks`` of a log without what a terminal would act on beyond drawing it."""
    safe = TerminalSafe()
    for chunk in chunks:
        kept = safe.feed(chunk)
        if kept:
            yield kept
    safe.end()
