"""A ConfigMap trial template's text read as Katib reads it: Kubernetes' YAML-or-JSON decoder
reads text whose first character is ``{`` as JSON, and other text, or such text that is no JSON
(a YAML flow mapping, ``{kind: Job}``), as YAML; either way it reads the first object only (a
further JSON value, or YAML document, is left unread). Katib substitutes its trial parameters into
the text before it reads it, so a parameter's placeholder outside quotes is a scalar Katib types.
Either way each parameter's placeholder stands as a word while the text is read (:class:`_Marks`),
one YAML reads in any scalar, quoted or not, and JSON in a string.
"""

from __future__ import annotations

import json
import re
from typing import Any

from functions.core import bounded_yaml, template
from functions.core.documents import Path

JSON_SIGNS = re.compile(r'["\\]|\$\{')
"""What changes how JSON text reads on: a quote, an escape, the start of a placeholder."""
DOCUMENT_END = re.compile(r"\.\.\.(?:[ \t\r]|$)")
"""A line YAML reads as a document end marker."""
MARK = "katunaPlaceholder"
"""The start of the word a parameter's placeholder stands as while a template's text is read."""


def read(text: str) -> tuple[Any, list[Path]]:
    """A ConfigMap template's data and its fields that Katib types once substituted. Text whose
    first character (after white space) is ``{`` is read as JSON where its first value is JSON,
    which may be indented with tabs (as Go's ``MarshalIndent`` and many editors write it) and may
    hold a placeholder outside quotes (``"replicas": ${trialParameters.n}``), a number once
    substituted; other text is YAML (:func:`_yaml`), whose unquoted placeholders are typed alike."""
    found = _json(text) if language(text) != "YAML" else None
    return found if found is not None else _yaml(text)


def language(text: str) -> str:
    """What Katib reads ``text`` as (:func:`read`): ``JSON or YAML``, or ``YAML``."""
    return "JSON or YAML" if text.lstrip().startswith("{") else "YAML"


def first_chunk_refusal(text: str) -> str | None:
    """Why Katib fails YAML ``text`` before reading any object of it, or None. Kubernetes' YAML
    reader (``YAMLReader.Read``, which Katib's decoder uses) gives the lines up to the first
    ``---`` line (after the first line) as the first document, however little they hold: where
    they are only comments or blank lines (``# a Job`` above a ``---``), or a ``---`` line alone,
    Katib reads an object with no ``apiVersion`` or ``kind`` and refuses the template. A line
    beginning ``---`` followed by anything but a comment is no separator it takes: it refuses
    the text ("invalid Yaml document separator"). Its YAML parser then reads the first document
    of those lines (:func:`_start_refusal`). Only the lines it reads are looked at."""
    if language(text) != "YAML":
        return None
    chunk: list[str] = []
    for number, line in enumerate(text.split("\n"), 1):
        if line.startswith("---"):
            rest = line[3:].strip()
            if rest and not rest.startswith("#"):
                return (f"has {line[:40]!r} at line {number}, which Katib refuses as a YAML document separator "
                        "(only a comment may follow ---): expected the document to begin on the next line")
            if chunk:
                return _start_refusal(chunk) or (None if _holds_something(chunk) else (
                    f"holds nothing before the --- at line {number} but comments or blank lines, which Katib reads "
                    "as the template's first document (an object without apiVersion or kind, refused): expected "
                    "the trialSpec first, or nothing but the --- before it"))
        chunk.append(line)
    return _start_refusal(chunk)


def _start_refusal(chunk: list[str]) -> str | None:
    """Why Katib's YAML parser (go-yaml v2, through ``sigs.k8s.io/yaml``) reads no object from
    the first chunk's lines, judged at the first line that is no comment, blank line or first
    ``---``: a ``%YAML`` or ``%TAG`` directive there is cut off from the ``---`` that follows it
    (the reader splits the text at that line), so go-yaml finds no document start (and takes no
    ``%YAML 1.2`` at all); after a first ``---``, a directive or a ``...`` ends an empty
    document. A ``...`` before anything else is refused by both parsers alike."""
    explicit = False
    for number, line in enumerate(chunk, 1):
        if number == 1 and line.startswith("---"):
            explicit = True
        elif explicit and (line.startswith("%") or DOCUMENT_END.match(line)):
            return (f"ends its first document with {line[:40].strip()!r} at line {number} before it holds anything, "
                    "which Katib reads as an object without apiVersion or kind (refused): expected the trialSpec first")
        elif line.startswith("%"):
            return (f"has the directive {line[:40].strip()!r} at line {number}, which Katib's YAML reader cuts off "
                    "from the --- after it and then refuses (no document start follows it): expected the "
                    "trialSpec without directives")
        elif line.strip() and not line.strip().startswith("#"):
            return None
    return None


def _holds_something(lines: list[str]) -> bool:
    """Whether YAML lines hold more than comments, blank lines and a ``---`` line (one checked
    to be a separator, followed by nothing or a comment)."""
    return any(line.strip() and not line.strip().startswith("#") and not line.startswith("---") for line in lines)


def _json(text: str) -> tuple[Any, list[Path]] | None:
    """The first JSON value of ``text`` and its typed fields; None where it is no JSON, which
    Kubernetes' decoder then reads as YAML. It is read as JSON, not YAML (which refuses the
    tabs JSON may be indented with), so the placeholders outside strings are marked as strings
    (:func:`_marked`), and those read as a mark alone are the typed fields."""
    marks = _Marks(text)
    marked = _marked(text, marks)
    start = len(marked) - len(marked.lstrip())
    try:
        end = json.JSONDecoder().raw_decode(marked, start)[1]
    except (ValueError, RecursionError):
        return None
    typed: list[Path] = []
    return marks.put_back(bounded_yaml.load(marked[start:end]), (), typed), typed


def _yaml(text: str) -> tuple[Any, list[Path]]:
    """The first YAML document of ``text`` and its typed fields. Each parameter's placeholder is
    read as a plain word where it stands (Katib reads the value it substituted there), so one in
    a flow mapping (``{replicas: ${trialParameters.n}}``) or in quotes reads as Katib reads it,
    and is put back in the data read; the typed fields are the plain scalars holding one."""
    marks = _Marks(text)
    marked = template.ANY_OWN.sub(lambda match: marks.word(match.group(0)), text)
    data, typed = bounded_yaml.load_plain(marked, marks.within, first=True)
    if not marks.placeholders:
        return data, typed
    return marks.put_back(data), [tuple(marks.put_back(part) for part in path) for path in typed]


class _Marks:
    """The words a template's parameter placeholders stand as while its text is read: each
    begins with a prefix the text does not hold and is as long as its placeholder (so every
    line and column of the text stays where it was written), and reads as a plain string in
    any YAML scalar, quoted or not, and in a JSON string."""

    def __init__(self, text: str) -> None:
        self.prefix = MARK
        while self.prefix in text:
            self.prefix += "Q"
        self.placeholders: dict[str, str] = {}

    def word(self, placeholder: str) -> str:
        """The word standing for ``placeholder``, or ``placeholder`` itself where Katib
        substitutes nothing into it (it names no trial parameter)."""
        if not _substituted(placeholder):
            return placeholder
        mark = f"{self.prefix}x{len(self.placeholders)}x".ljust(len(placeholder), "y")
        self.placeholders[mark] = placeholder
        return mark

    def within(self, value: str) -> bool:
        """Whether ``value`` holds a word standing for a placeholder."""
        return self.prefix in value

    def put_back(self, data: Any, path: Path = (), alone: list[Path] | None = None) -> Any:
        """``data`` with each placeholder back in place of the word that stood for it; the path
        of each string that was one such word alone added to ``alone``, where given."""
        if isinstance(data, str):
            if not self.within(data):
                return data
            if alone is not None and data in self.placeholders:
                alone.append(path)
            for mark, placeholder in self.placeholders.items():
                data = data.replace(mark, placeholder)
            return data
        if isinstance(data, list):
            return [self.put_back(item, (*path, index), alone) for index, item in enumerate(data)]
        if isinstance(data, dict):
            keys = [self.put_back(key) for key in data]
            return {key: self.put_back(value, (*path, key), alone) for key, value in zip(keys, data.values())}
        return data


def _marked(text: str, marks: _Marks) -> str:
    """JSON ``text`` with each parameter's placeholder outside a string replaced by a string
    holding its word (:class:`_Marks`). One pass over the text, however it is written: each
    ``}`` is searched for once."""
    parts: list[str] = []
    start = skip_to = 0
    closing, in_string = -1, False
    for sign in JSON_SIGNS.finditer(text):
        at = sign.start()
        if at < skip_to:
            continue
        if sign.group() == '"':
            in_string = not in_string
        elif sign.group() == "\\" and in_string:
            skip_to = at + 2  # the escaped character
        if sign.group() != "${" or in_string:
            continue
        closing = closing if closing > at else text.find("}", at)
        if closing < 0:
            break
        placeholder = text[at:closing + 1]
        if (word := marks.word(placeholder)) != placeholder:
            parts += [text[start:at], f'"{word}"']
            start = skip_to = closing + 1
    return "".join(parts) + text[start:]


def _substituted(text: str) -> bool:
    """Whether Katib substitutes into this scalar of a template's text: it names a trial parameter."""
    return bool(template.referenced_parameters(text)[0])
