"""A YAML stream read as kubectl reads a file holding one object: documents that hold nothing (a
``---`` ending the file, or two in a row) are passed over, and a second document that holds
something is refused as such, naming the line it begins at, never as text that is no YAML.
A study file of several documents, an Experiment and the ConfigMap its trial template is read
from, is read by :mod:`functions.core.study_file`, which takes this refusal as its cue."""

from __future__ import annotations

import yaml

_NULL = "tag:yaml.org,2002:null"


class SeveralDocuments(yaml.YAMLError):
    """The stream holds more than one document with something in it; ``line`` (from 1) is where
    the second begins."""

    def __init__(self, line: int) -> None:
        self.line = line
        super().__init__(f"holds more than one YAML document (the next begins at line {line}): expected one")


def single_node(loader: yaml.SafeLoader) -> yaml.Node | None:
    """The one document of the loader's stream that holds something (None where none does), as
    ``get_single_node`` gives it; :class:`SeveralDocuments` where two do."""
    loader.get_event()  # the stream's start
    found: yaml.Node | None = None
    while not loader.check_event(yaml.StreamEndEvent):
        start = loader.peek_event().start_mark
        node = _later(loader, start.line + 1) if found is not None else loader.compose_document()
        if empty(node):
            continue
        if found is not None:
            raise SeveralDocuments(start.line + 1)
        found = node
    loader.get_event()  # the stream's end
    return found


def first_node(loader: yaml.SafeLoader) -> yaml.Node | None:
    """The first document of the loader's stream that holds something (None where none does),
    the rest of the stream unread: as Kubernetes' YAML decoder reads one object from a stream."""
    loader.get_event()  # the stream's start
    while not loader.check_event(yaml.StreamEndEvent):
        node = loader.compose_document()
        if not empty(node):
            return node
    return None


def _later(loader: yaml.SafeLoader, line: int) -> yaml.Node | None:
    """A document after the one with something in it: a YAML error of it is one of a stream of
    several documents, which its reader (:mod:`yaml_documents`) names by the line it begins at."""
    try:
        return loader.compose_document()
    except yaml.YAMLError as exc:
        raise SeveralDocuments(line) from exc


def empty(node: yaml.Node | None) -> bool:
    """Whether a document holds nothing: no node, or the empty plain scalar YAML reads as null
    where a document has no content (an explicit ``null`` or ``~`` is something)."""
    return node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL and node.value == ""
                            and node.style is None)
