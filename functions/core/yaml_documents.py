"""A YAML stream of several documents, as ``kubectl apply -f`` takes a file of an Experiment and
the ConfigMap its trial template is read from: each document read as :func:`bounded_yaml.load`
reads one, and all of them together within the same bounds (values, characters of text), so a
file of many documents costs no more than one of the largest document; past
:data:`MAX_DOCUMENTS` documents with something in them the stream is refused. Documents that hold
nothing (a ``---`` ending the file) are passed over, as kubectl passes them over.

A problem of the first document is the YAML error itself, its paths into that document as for a
file of one; one of a later document is :class:`InDocument`, naming the line it begins at."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from functions.core import bounded_yaml, yaml_bounds, yaml_core, yaml_streams

MAX_DOCUMENTS = 8
"""Documents with something in them a study file may hold: one study and the ConfigMap it reads
its template from need two; a few more are read only to be named in the refusal."""


@dataclass(frozen=True)
class Document:
    """One document of the stream: the line (from 1) where it begins, and its data."""

    line: int
    data: Any


class InDocument(yaml.YAMLError):
    """A problem of a document after the first: ``error``, in the document beginning at ``line``."""

    def __init__(self, line: int, error: yaml.YAMLError) -> None:
        self.line = line
        self.error = error
        super().__init__(f"the document beginning at line {line}: {bounded_yaml.describe(error)}")


class TooManyDocuments(yaml.YAMLError):
    """More than :data:`MAX_DOCUMENTS` documents; ``line`` is where the one past them begins."""

    def __init__(self, line: int) -> None:
        self.line = line
        super().__init__(f"holds more than {MAX_DOCUMENTS} YAML documents (the next begins at line {line}): expected "
                         "one study and the ConfigMap its trial template is read from")


def load_all(text: str) -> list[Document]:
    """Every document of ``text`` with something in it, in order; ``yaml.YAMLError`` where one is
    no YAML, or where they exceed the bounds (:class:`yaml_bounds.DocumentTooLarge`,
    :class:`TooManyDocuments`)."""
    loader = bounded_yaml.CoreLoader(text)
    try:
        found = []
        for line, node in _nodes(loader):
            try:
                found.append(Document(line, loader.construct_document(node)))
            except yaml.YAMLError as exc:
                if _as_is(exc, first=not found):
                    raise
                raise InDocument(line, exc) from exc
        return found
    finally:
        loader.dispose()


def compose_all(text: str) -> list[yaml.Node]:
    """The node tree of each document of ``text`` with something in it, each node with where it
    is written, within the bounds of :func:`load_all`."""
    loader = bounded_yaml.CoreLoader(text)
    try:
        return [node for _, node in _nodes(loader)]
    finally:
        loader.dispose()


def _nodes(loader: bounded_yaml.CoreLoader) -> Iterator[tuple[int, yaml.Node]]:
    """Each document's line and node, every node kept until the end: the loader keeps each
    node's weight by its identity, which a node freed meanwhile would pass on to a new one."""
    kept: list[yaml.Node] = []
    nodes = chars = 0
    loader.get_event()  # the stream's start
    while True:
        line = 0
        try:
            if loader.check_event(yaml.StreamEndEvent):
                return
            line = loader.peek_event().start_mark.line + 1
            node = loader.compose_document()
            if loader.ambiguous:
                raise yaml_core.Ambiguities(loader.ambiguous, loader.more_ambiguous)
        except yaml.YAMLError as exc:
            if _as_is(exc, first=not kept):
                raise
            raise InDocument(line, exc) from exc
        if node is None or yaml_streams.empty(node):
            continue
        if len(kept) == MAX_DOCUMENTS:
            raise TooManyDocuments(line)
        weight = loader.weight(node)
        nodes, chars = nodes + weight[0], chars + weight[1]
        _check_total(nodes, chars, loader)
        kept.append(node)
        yield line, node


def _as_is(error: yaml.YAMLError, first: bool) -> bool:
    """Whether a document's error is raised as it is: the first document's, as for a file of one,
    or a bound's; a later document's names the line it begins at (:class:`InDocument`)."""
    return first or isinstance(error, yaml_bounds.DocumentTooLarge)


def _check_total(nodes: int, chars: int, loader: bounded_yaml.CoreLoader) -> None:
    """The bounds of one document, kept by all of them together."""
    if nodes > yaml_bounds.MAX_NODES:
        raise yaml_bounds.DocumentTooLarge(f"stands for more than {yaml_bounds.MAX_NODES:,} values in all its "
                                            "documents together")
    if chars > loader.max_chars:
        raise yaml_bounds.DocumentTooLarge(f"stands for more than {loader.max_chars:,} characters of text in all "
                                            "its documents together")
