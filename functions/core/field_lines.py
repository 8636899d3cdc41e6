"""The lines of a study file its problems' fields are written on.

A problem names its field by path (``parameters[1].max``, ``spec.trialTemplate.trialSpec``,
``metadata.annotations["example.com/x"]``); in a file of a few hundred lines the line is what an
editor goes to. A field that is missing (``objective.direction: required``) is placed on the
line of the nearest field above it that is written (``objective``), and one of which nothing is
written (a required top-level field) on none.
"""

from __future__ import annotations

import json
import re

import yaml

from functions.core import bounded_yaml, yaml_documents, yaml_streams
from functions.core.documents import Path
from functions.core.errors import Problem

_STEP = re.compile(r'\.?([^.\[\]]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')
"""One step of a field path: ``.key`` (or the first ``key``), ``[index]`` or ``["quoted key"]``."""


def field_lines(text: str) -> dict[Path, int]:
    """The line (from 1) each field of the YAML or JSON document in ``text`` is written on: a
    mapping's entry at its key, a list's item where it starts; none where the text is no YAML,
    or where every field is on one line (JSON written by a program), which a line tells nothing of."""
    try:
        root = bounded_yaml.compose(text)
    except yaml_streams.SeveralDocuments:
        root = _study_node(text)
    except yaml.YAMLError:
        return {}
    lines: dict[Path, int] = {}
    _walk(root, (), lines)
    return lines if len(set(lines.values())) > 1 else {}


def _study_node(text: str) -> yaml.Node | None:
    """The study's document of a file that gives ConfigMaps beside it (:mod:`study_file`): the
    first that is no ConfigMap; None where none is, or where the text is no YAML."""
    try:
        nodes = yaml_documents.compose_all(text)
    except yaml.YAMLError:
        return None
    return next((node for node in nodes if not _config_map(node)), None)


def _config_map(node: yaml.Node) -> bool:
    if not isinstance(node, yaml.MappingNode):
        return False
    fields = {key.value: value.value for key, value in node.value
              if isinstance(key, yaml.ScalarNode) and isinstance(value, yaml.ScalarNode)}
    return fields.get("apiVersion") == "v1" and fields.get("kind") == "ConfigMap"


def _walk(node: yaml.Node | None, path: Path, lines: dict[Path, int]) -> None:
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.setdefault((*path, index), item.start_mark.line + 1)
            _walk(item, (*path, index), lines)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                lines.setdefault((*path, key.value), key.start_mark.line + 1)
                _walk(value, (*path, key.value), lines)


def steps(path: str) -> Path:
    """A problem's field path as mapping keys and list indexes, as far as it reads as one (a
    quoted key stops it where its quotes hold no JSON string: the key a file gave, unescaped)."""
    found: list[str | int] = []
    position = 0
    while position < len(path) and (step := _STEP.match(path, position)):
        key, index, quoted = step.groups()
        if quoted is not None:
            try:
                key = json.loads(quoted)
            except json.JSONDecodeError:
                break
        found.append(int(index) if index is not None else key)
        position = step.end()
    return tuple(found)


def located(problem: Problem, lines: dict[Path, int]) -> str:
    """The problem as it is listed, with the line of its field (or of the nearest written field
    above it) after its path; as it is where that is no line, or where its message names one."""
    path = steps(problem.path)
    written = next((path[:end] for end in range(len(path), 0, -1) if path[:end] in lines), None)
    if written is None or "(line " in problem.message:
        return str(problem)
    return f"{problem.path} (line {lines[written]}): {problem.message}"
