"""Read the code blocks and links of the project's Markdown pages, by the heading they sit under."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).parent.parent
_FENCE = re.compile(r"^```(\w*)\s*$")
_HEADING = re.compile(r"^(#{1,6}) (.+?)\s*$")
_LINK = re.compile(r"\]\(([^)\s]+)\)")


@dataclass(frozen=True)
class Block:
    heading: str
    language: str
    text: str


def blocks(page: str) -> list[Block]:
    """Every fenced code block of ``page`` (a path from the repository's root), with its heading."""
    found: list[Block] = []
    heading, language, lines = "", None, []
    for line in (ROOT / page).read_text().splitlines():
        fence = _FENCE.match(line)
        if language is None and fence:
            language, lines = fence.group(1), []
        elif language is not None and line.strip() == "```":
            found.append(Block(heading, language, "\n".join(lines) + "\n"))
            language = None
        elif language is not None:
            lines.append(line)
        elif match := _HEADING.match(line):
            heading = match.group(2)
    return found


def block(page: str, heading: str, language: str) -> str:
    """The one ``language`` block under ``heading`` in ``page``."""
    matching = [b.text for b in blocks(page) if b.heading == heading and b.language == language]
    assert len(matching) == 1, f"{page}: {len(matching)} {language} blocks under {heading!r}"
    return matching[0]


def headings(page: str) -> list[str]:
    """The headings of ``page``, outside code blocks."""
    found, fenced = [], False
    for line in (ROOT / page).read_text().splitlines():
        if _FENCE.match(line) or (fenced and line.strip() == "```"):
            fenced = not fenced
        elif not fenced and (match := _HEADING.match(line)):
            found.append(match.group(2))
    return found


def anchor(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.lower().replace("`", ""))
    return text.replace(" ", "-")


def local_links(page: str) -> list[str]:
    """The targets of ``page``'s links into the repository (no web addresses)."""
    text = re.sub(r"```.*?```", "", (ROOT / page).read_text(), flags=re.S)
    return [t for t in _LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def command_lines(text: str, program: str) -> list[list[str]]:
    """The words of each line of a shell block that runs ``program``, comments left out."""
    return [line.split("#")[0].split() for line in text.splitlines() if line.startswith(program + " ")]
