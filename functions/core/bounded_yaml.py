"""YAML (and JSON, its subset) from untrusted text, with bounds on what the text can cost.

``yaml.safe_load`` constructs no objects beyond plain data, but it still expands aliases (a
"billion laughs" document of a few hundred bytes stands for hundreds of millions of nodes,
which any later walk over the data visits) and recurses once per nesting level (a deeply
nested document ends in ``RecursionError``). Its loader (:mod:`functions.core.yaml_bounds`)
counts the nodes a document stands for and the characters of its text, aliases expanded, and its
nesting depth while composing, and refuses either past a bound long before the cost shows. A key given twice in one mapping is refused too, naming the key
and where it is: YAML's last-wins would silently drop the first value. So is an integer
larger than the largest float, naming where it is: no field takes one, and Python refuses to
read one of more than 4,300 digits (``ValueError``); any other value PyYAML cannot convert is a
YAML error with its line and column. A timestamp stays the text it is written as, as in JSON and
YAML 1.2; a ``!!binary`` or ``!!set`` value, which has no JSON form, is refused. An alias inside
the value its anchor names (``&a [1, *a]``), a value holding itself that any walk over the data
would follow for ever, is refused while composing. A plain scalar YAML 1.1 and YAML 1.2 read
differently (``yes``, ``010``, ``1:30``) is refused naming where it is (:mod:`yaml_core`), and
:class:`Dumper` quotes every string a reader could take for something else.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import yaml

from functions.core import bounded_json, yaml_bounds, yaml_core, yaml_streams
from functions.core.documents import Path, value_at
from functions.core.errors import PROBLEMS_LISTED
from functions.core.yaml_bounds import STR, TYPED, BoundedLoader, DocumentTooLarge, too_many


class _CoreLoader(BoundedLoader):
    """Refuses a plain scalar YAML 1.1 (PyYAML) and YAML 1.2 read differently
    (:mod:`functions.core.yaml_core`), so what a study says does not depend on who reads it."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.ambiguous: list[yaml_core.Ambiguous] = []
        self.more_ambiguous = 0
        """Ambiguous scalars found past the first :data:`~functions.core.errors.PROBLEMS_LISTED`,
        counted, not kept: an answer lists no more, and each kept took a kilobyte."""

    def compose_scalar_node(self, anchor: Any) -> yaml.ScalarNode:  # the anchor's name (its stubs say a dict)
        self._scalar_mark = self.peek_event().start_mark
        return super().compose_scalar_node(anchor)

    def resolve(self, kind: type[yaml.Node], value: str | None, implicit: tuple[bool, bool]) -> str:
        tag = super().resolve(kind, value, implicit)
        if kind is not yaml.ScalarNode or value is None or not implicit[0] or len(value) > yaml_bounds.MAX_INT_TEXT:
            return tag  # a longer number is too large whoever reads it (construct_bounded_int)
        if tag == "tag:yaml.org,2002:value":  # YAML 1.1's ``=``, which no loader constructs
            tag = STR
        new = yaml_core.core_value(value)
        if tag not in TYPED and isinstance(new, str):
            return tag
        try:
            old = self._typed(tag, value) if tag in TYPED else value
        except (yaml.YAMLError, ValueError, OverflowError):
            return tag  # refused where it is constructed, naming its path
        if not yaml_core.same(old, new) and len(self.ambiguous) >= PROBLEMS_LISTED:
            self.more_ambiguous += 1
            return STR
        if not yaml_core.same(old, new):
            mark = self._scalar_mark
            key = len(self._path) > 1 and self._path[-1] == ""  # a mapping's key (the root's entry is "" too)
            self.ambiguous.append(yaml_core.Ambiguous("".join(self._path).lstrip("."), value, old, new, key,
                                                      mark.line + 1, mark.column + 1))
            return STR  # read on as text, for the next to be found too
        return tag

    def _typed(self, tag: str, value: str) -> Any:
        """The value of a plain scalar of a typed ``tag`` as PyYAML reads it, by the tag's own
        constructor: ``construct_object`` would keep each value it constructs, and its node, until
        the document is constructed (16 MiB for a list of 99,000 numbers)."""
        return self.yaml_constructors[tag](self, yaml.ScalarNode(tag, value))

    def data(self) -> Any:
        """The document's data; :class:`~functions.core.yaml_core.Ambiguities` naming every
        scalar YAML 1.1 and 1.2 read differently, if any."""
        data = self.get_single_data()
        if self.ambiguous:
            raise yaml_core.Ambiguities(self.ambiguous, self.more_ambiguous)
        return data


CoreLoader = _CoreLoader
"""The loader :func:`load` reads a document with, for a reader of several (:mod:`yaml_documents`)."""


class Dumper(yaml.SafeDumper):
    """Writes a string plain only where :func:`load`, and so every YAML 1.1 and 1.2 reader,
    reads it back as the same text; any other (``08``, ``0o17``, ``-.5``, ``1e3``) is quoted."""

    def resolve(self, kind: type[yaml.Node], value: str | None, implicit: tuple[bool, bool]) -> str:
        tag = super().resolve(kind, value, implicit)
        if (kind is yaml.ScalarNode and value is not None and implicit[0] and tag == STR
                and not isinstance(yaml_core.core_value(value), str)):
            return "tag:yaml.org,2002:int"  # not the string's tag: the emitter quotes it
        return tag


def load(text: str) -> Any:
    """The data in ``text``; ``yaml.YAMLError`` when it is not YAML or exceeds the bounds. JSON
    is read as JSON (:mod:`.bounded_json`), within the same bounds."""
    try:
        data = bounded_json.read(text, yaml_bounds.MAX_NODES, yaml_bounds.MAX_DEPTH, yaml_bounds.MAX_INT_TEXT)
    except bounded_json.TooManyValues as exc:
        raise DocumentTooLarge(too_many()) from exc
    if data is not bounded_json.NOT_JSON:
        return data
    loader = _CoreLoader(text)
    try:
        return loader.data()
    finally:
        loader.dispose()


def compose(text: str) -> yaml.Node | None:
    """The node tree of the YAML document in ``text`` (None for an empty one), within the bounds
    :func:`load` keeps, each node with where it is written; ``yaml.YAMLError`` where it is no
    YAML or exceeds them."""
    loader = BoundedLoader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def load_plain(text: str, wanted: Callable[[str], bool], first: bool = False) -> tuple[Any, list[Path]]:
    """The data in ``text`` (as :func:`load`; of its ``first`` document with something in it,
    the rest unread, where asked), and the paths of the plain (unquoted) string scalars in it that
    ``wanted`` accepts: the ones whose type YAML decides from their text."""
    loader = _CoreLoader(text)
    try:
        node = yaml_streams.first_node(loader) if first else loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
        if loader.ambiguous:
            raise yaml_core.Ambiguities(loader.ambiguous, loader.more_ambiguous)
    finally:
        loader.dispose()
    found = [path for path, value in _plain(node, ()) if wanted(value) and value_at(data, path) == value]
    return data, found


def _plain(node: yaml.Node | None, path: Path) -> Iterator[tuple[Path, str]]:
    if isinstance(node, yaml.ScalarNode) and node.style is None and node.tag == STR:
        yield path, node.value
    elif isinstance(node, yaml.SequenceNode):
        for index, child in enumerate(node.value):
            yield from _plain(child, (*path, index))
    elif isinstance(node, yaml.MappingNode):
        for key, child in node.value:
            if isinstance(key, yaml.ScalarNode):
                yield from _plain(child, (*path, key.value))


def describe(exc: yaml.YAMLError) -> str:
    """What the YAML parser found and where (``line 2, column 1``; a character YAML does not
    take, by its place in the text), without the excerpt its message quotes under a name no
    reader knows (``"<unicode string>"``)."""
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.MarkedYAMLError) and mark is not None:
        return f"{exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
    if isinstance(exc, yaml.reader.ReaderError) and isinstance(exc.character, int):
        return f"the character #x{exc.character:04x} ({exc.reason}) at character {exc.position + 1} of the text"
    return str(exc)


def plain_scalar(text: str) -> Any:
    """``text`` as YAML reads it written as one plain scalar: a null, boolean, integer or finite
    number where it reads as one, else ``text`` itself. Whatever ``text`` holds (``: ``, a
    newline, a ``#``), it stays one scalar: it is never parsed as a document. Sexagesimal
    numbers (``1:30``, YAML 1.1 only) stay text."""
    loader = BoundedLoader("")
    try:
        tag = loader.resolve(yaml.ScalarNode, text, (True, False))
        if tag not in TYPED or ":" in text:
            return text
        value = loader.construct_object(yaml.ScalarNode(tag, text))
    except yaml.YAMLError:
        return text
    finally:
        loader.dispose()
    return text if isinstance(value, float) and not math.isfinite(value) else value
