"""A ConfigMap trial template's text read as Katib reads it: Kubernetes' YAML-or-JSON decoder
takes text whose first character is ``{`` as JSON, other text as YAML; a parameter's placeholder
outside quotes is a scalar Katib types once it substituted it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from functions.core import bounded_yaml, template
from functions.core.documents import Path

JSON_SIGNS = re.compile(r'["\\]|\$\{')
"""What changes how JSON text reads on: a quote, an escape, the start of a placeholder."""


def read(text: str) -> tuple[Any, list[Path]]:
    """A ConfigMap template's data and its fields that Katib types once substituted. Katib reads
    the text with Kubernetes' YAML-or-JSON decoder: text whose first character (after white
    space) is ``{`` is JSON, which may be indented with tabs (as Go's ``MarshalIndent`` and many
    editors write it) and may hold a placeholder outside quotes (``"replicas":
    ${trialParameters.n}``), a number once substituted; other text is YAML, whose unquoted
    placeholders are typed alike."""
    if language(text) == "YAML":
        return bounded_yaml.load_plain(text, _substituted)
    marked, bare = _marked(text)
    typed: list[Path] = []
    marks = {f"\0{number}": placeholder for number, placeholder in enumerate(bare)}
    return _unmarked(bounded_yaml.load(marked), marks, (), typed), typed


def language(text: str) -> str:
    """What Katib reads ``text`` as (:func:`read`)."""
    return "JSON" if text.lstrip().startswith("{") else "YAML"


def _marked(text: str) -> tuple[str, list[str]]:
    """JSON ``text`` with each parameter's placeholder outside a string replaced by a string
    marking it (a NUL character and its number, which no manifest holds), and those placeholders.
    One pass over the text, however it is written: each ``}`` is searched for once."""
    parts: list[str] = []
    bare: list[str] = []
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
        if _substituted(placeholder):
            parts += [text[start:at], f'"\\u0000{len(bare)}"']
            bare.append(placeholder)
            start = skip_to = closing + 1
    return "".join(parts) + text[start:], bare


def _unmarked(data: Any, marks: Mapping[str, str], path: Path, typed: list[Path]) -> Any:
    """``data`` with each placeholder that stood outside quotes back in place of its mark, its
    path added to ``typed``."""
    if isinstance(data, str) and data in marks:
        typed.append(path)
        return marks[data]
    if isinstance(data, list):
        return [_unmarked(item, marks, (*path, index), typed) for index, item in enumerate(data)]
    if isinstance(data, dict):
        return {key: _unmarked(value, marks, (*path, key), typed) for key, value in data.items()}
    return data


def _substituted(text: str) -> bool:
    """Whether Katib substitutes into this scalar of a template's text: it names a trial parameter."""
    return bool(template.referenced_parameters(text)[0])
