"""YAML (and JSON, its subset) from untrusted text, with bounds on what the text can cost.

``yaml.safe_load`` constructs no objects beyond plain data, but it still expands aliases (a
"billion laughs" document of a few hundred bytes stands for hundreds of millions of nodes,
which any later walk over the data visits) and recurses once per nesting level (a deeply
nested document ends in ``RecursionError``). This loader counts the nodes a document stands
for and the characters of its text, aliases expanded, and its nesting depth while composing, and refuses either past a bound
long before the cost shows. A key given twice in one mapping is refused too, naming the key
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
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any, cast

import yaml

from functions.core import bounded_json, yaml_core, yaml_streams
from functions.core.documents import Path, value_at

MAX_NODES = 100_000
"""Nodes a document may stand for, every alias counted at the size of what it names."""

MAX_CHARS = 4 << 20
"""Characters of text a document may stand for, every alias counted at the size of what it names,
beyond four times its own length: a few references to one long anchored string would otherwise
stand for gigabytes while counting as a few nodes. A document without aliases is never refused
for its length (the request's body limit bounds that)."""

MAX_DEPTH = 64
"""Nesting levels of collections; study definitions need fewer than 15."""

MAX_INT_TEXT = 1_100
"""Characters of an integer's text: the largest float written in binary digits (``0b`` and
1,024 of them) fits; a longer integer is too large however it is written, and is refused
before it is read (reading a long sexagesimal ``1:2:3:...`` costs quadratic time)."""

_INT = "tag:yaml.org,2002:int"
_STR = "tag:yaml.org,2002:str"
_TYPED = {"tag:yaml.org,2002:null", "tag:yaml.org,2002:bool", _INT, "tag:yaml.org,2002:float"}
"""The tags a plain scalar may resolve to that :func:`plain_scalar` gives as typed values."""

def _too_many() -> str:
    return f"holds more than {MAX_NODES:,} values (each mapping, list and scalar counts one), far more than any study needs"


class DocumentTooLarge(yaml.YAMLError):
    """The document stands for too many nodes, or nests too deeply."""


class DuplicateKey(yaml.YAMLError):
    """A mapping holds the same key twice; ``path`` is where the second one is, and ``where``
    its line and column in the text (the document holding it could not be read, so no later
    step can find that line)."""

    def __init__(self, path: str, key: str, mark: yaml.Mark) -> None:
        self.where = f" (line {mark.line + 1}, column {mark.column + 1})"
        super().__init__(f"{path}: duplicate key {key!r}; each key may appear once in a mapping{self.where}")
        self.path = path
        self.key = key


class NumberTooLarge(yaml.YAMLError):
    """An integer beyond what any field holds; ``path`` is where it is."""

    def __init__(self, path: str, mark: yaml.Mark | None) -> None:
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        self.path = path
        self.message = f"expected a number of at most {sys.float_info.max:.3g} in magnitude{where}"
        super().__init__(f"{path}: {self.message}")


class _BoundedLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._weights: dict[int, tuple[int, int]] = {}
        self._path: list[str] = []
        self._int_paths: dict[int, str] = {}
        self._open_anchors: list[str] = []
        self._max_chars = max(MAX_CHARS, 4 * len(stream))
        self._aliased = False

    def get_single_node(self) -> yaml.Node | None:
        """The stream's one document with something in it, empty ones passed over, as kubectl
        passes them over (:mod:`yaml_streams`)."""
        return yaml_streams.single_node(self)

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        """The node at ``index`` of ``parent``: a position in a sequence, or the key node of a
        mapping value (PyYAML passes either; its stubs say ``int``)."""
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise DocumentTooLarge(f"is nested deeper than {MAX_DEPTH} levels")
        self._path.append(f"[{index}]" if isinstance(index, int) else
                          f".{index.value}" if isinstance(index, yaml.ScalarNode) else "")
        opened = self._opened()
        try:
            node = super().compose_node(parent, index)  # type: ignore[arg-type]  # a key node, as PyYAML passes it
            if isinstance(node, yaml.MappingNode):
                self._check_keys(node)
            elif isinstance(node, yaml.ScalarNode) and node.tag == _INT:
                self._int_paths.setdefault(id(node), "".join(self._path).lstrip("."))
        finally:
            self._depth -= 1
            self._path.pop()
            if opened:
                self._open_anchors.pop()
        if node is None:
            return None
        nodes, chars = self._weigh(node)
        if nodes > MAX_NODES:
            raise DocumentTooLarge(f"stands for more than {MAX_NODES:,} values once its aliases are expanded"
                                   if self._aliased else _too_many())
        if chars > self._max_chars:
            raise DocumentTooLarge(f"stands for more than {self._max_chars:,} characters of text once its aliases "
                                   "are expanded")
        return node

    @property
    def max_chars(self) -> int:
        """Characters of text the stream may stand for, aliases expanded."""
        return self._max_chars

    def weight(self, node: yaml.Node) -> tuple[int, int]:
        """The nodes a composed ``node`` stands for and the characters of their text, aliases expanded."""
        return self._weigh(node)

    def _weigh(self, node: yaml.Node) -> tuple[int, int]:
        """The nodes ``node`` stands for and the characters of their text, aliases expanded (a
        node an alias names again counts again), kept for each node once composed."""
        weight = self._weights.get(id(node))
        if weight is None:
            if isinstance(node, yaml.ScalarNode):
                weight = (1, len(node.value))
            else:
                children = [self._weights.get(id(child), (1, 0)) for child in _children(node)]
                weight = (1 + sum(n for n, _ in children), sum(c for _, c in children))
            self._weights[id(node)] = weight
        return weight

    def _opened(self) -> bool:
        """Whether the next node is a collection with an anchor, now open until composed; an
        alias to an open one (``&a [1, *a]``) is refused: it stands for a value that holds
        itself, endless to any walk over it."""
        event = self.peek_event()
        self._aliased = self._aliased or isinstance(event, yaml.AliasEvent)
        if isinstance(event, yaml.AliasEvent) and event.anchor in self._open_anchors:
            raise yaml.composer.ComposerError(None, None, f"found the alias *{event.anchor} inside the value its "
                                              "anchor names: a value may not hold itself",
                                              cast(yaml.Mark, event.start_mark))  # the pure-Python parser's
        if isinstance(event, yaml.CollectionStartEvent) and event.anchor is not None:
            self._open_anchors.append(event.anchor)
            return True
        return False

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """The value of ``node``; a scalar PyYAML cannot convert (``!!float abc``) is a YAML error
        saying where it is, as a syntax error does."""
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(None, None, f"cannot read this value: {exc}",
                                                    node.start_mark) from exc

    def construct_bounded_int(self, node: yaml.ScalarNode) -> int:
        """An integer no larger than the largest float: no field takes a larger one, and one
        written with more digits than Python reads would raise ``ValueError`` (its text is
        measured before it is read, so a long one costs nothing)."""
        path = self._int_paths.get(id(node), "")
        if len(node.value) > MAX_INT_TEXT:
            raise NumberTooLarge(path, node.start_mark)
        value: int = self.construct_yaml_int(node)
        if abs(value) > sys.float_info.max:
            raise NumberTooLarge(path, node.start_mark)
        return value

    def construct_timestamp_text(self, node: yaml.ScalarNode) -> str:
        """A timestamp as it is written (``2024-01-01``, a Kubernetes ``creationTimestamp``), as
        JSON and YAML 1.2 read it: a date is no JSON value, and a study is kept as JSON."""
        return str(self.construct_scalar(node))

    def refuse_no_json(self, node: yaml.Node) -> Any:
        """A ``!!binary`` or ``!!set`` value: it has no JSON form, and a study is kept as JSON."""
        kind = node.tag.rsplit(":", 1)[-1]
        raise yaml.constructor.ConstructorError(None, None, f"found a !!{kind} value, which has no JSON form; "
                                                "expected text, a number, a list or a mapping", node.start_mark)

    def _check_keys(self, node: yaml.MappingNode) -> None:
        seen = set()
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            if (key.tag, key.value) in seen:
                where = "".join(self._path).lstrip(".")
                raise DuplicateKey(f"{where}.{key.value}" if where else key.value, key.value, key.start_mark)
            seen.add((key.tag, key.value))


_BoundedLoader.add_constructor(_INT, _BoundedLoader.construct_bounded_int)
_BoundedLoader.add_constructor("tag:yaml.org,2002:timestamp", _BoundedLoader.construct_timestamp_text)
_BoundedLoader.add_constructor("tag:yaml.org,2002:binary", _BoundedLoader.refuse_no_json)
_BoundedLoader.add_constructor("tag:yaml.org,2002:set", _BoundedLoader.refuse_no_json)
_BoundedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"[-+]?[0-9]+(?:\.[0-9]*)?[eE][-+]?[0-9]+\Z"), list("-+0123456789"))
"""JSON's (and YAML 1.2's) exponent numbers, ``1e-12``, ``-1e+308``: YAML 1.1 reads them as strings."""


class _CoreLoader(_BoundedLoader):
    """Refuses a plain scalar YAML 1.1 (PyYAML) and YAML 1.2 read differently
    (:mod:`functions.core.yaml_core`), so what a study says does not depend on who reads it."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.ambiguous: list[yaml_core.Ambiguous] = []

    def compose_scalar_node(self, anchor: Any) -> yaml.ScalarNode:  # the anchor's name (its stubs say a dict)
        self._scalar_mark = self.peek_event().start_mark
        return super().compose_scalar_node(anchor)

    def resolve(self, kind: type[yaml.Node], value: str | None, implicit: tuple[bool, bool]) -> str:
        tag = super().resolve(kind, value, implicit)
        if kind is not yaml.ScalarNode or value is None or not implicit[0] or len(value) > MAX_INT_TEXT:
            return tag  # a longer number is too large whoever reads it (construct_bounded_int)
        if tag == "tag:yaml.org,2002:value":  # YAML 1.1's ``=``, which no loader constructs
            tag = _STR
        new = yaml_core.core_value(value)
        if tag not in _TYPED and isinstance(new, str):
            return tag
        try:
            old = self.construct_object(yaml.ScalarNode(tag, value)) if tag in _TYPED else value
        except yaml.YAMLError:
            return tag  # refused where it is constructed, naming its path
        if not yaml_core.same(old, new):
            mark = self._scalar_mark
            key = len(self._path) > 1 and self._path[-1] == ""  # a mapping's key (the root's entry is "" too)
            self.ambiguous.append(yaml_core.Ambiguous("".join(self._path).lstrip("."), value, old, new, key,
                                                      mark.line + 1, mark.column + 1))
            return _STR  # read on as text, for the next to be found too
        return tag

    def data(self) -> Any:
        """The document's data; :class:`~functions.core.yaml_core.Ambiguities` naming every
        scalar YAML 1.1 and 1.2 read differently, if any."""
        data = self.get_single_data()
        if self.ambiguous:
            raise yaml_core.Ambiguities(self.ambiguous)
        return data


CoreLoader = _CoreLoader
"""The loader :func:`load` reads a document with, for a reader of several (:mod:`yaml_documents`)."""


class Dumper(yaml.SafeDumper):
    """Writes a string plain only where :func:`load`, and so every YAML 1.1 and 1.2 reader,
    reads it back as the same text; any other (``08``, ``0o17``, ``-.5``, ``1e3``) is quoted."""

    def resolve(self, kind: type[yaml.Node], value: str | None, implicit: tuple[bool, bool]) -> str:
        tag = super().resolve(kind, value, implicit)
        if (kind is yaml.ScalarNode and value is not None and implicit[0] and tag == _STR
                and not isinstance(yaml_core.core_value(value), str)):
            return "tag:yaml.org,2002:int"  # not the string's tag: the emitter quotes it
        return tag


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def load(text: str) -> Any:
    """The data in ``text``; ``yaml.YAMLError`` when it is not YAML or exceeds the bounds. JSON
    is read as JSON (:mod:`.bounded_json`), within the same bounds."""
    try:
        data = bounded_json.read(text, MAX_NODES, MAX_DEPTH, MAX_INT_TEXT)
    except bounded_json.TooManyValues as exc:
        raise DocumentTooLarge(_too_many()) from exc
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
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def load_plain(text: str, wanted: Callable[[str], bool]) -> tuple[Any, list[Path]]:
    """The data in ``text`` (as :func:`load`), and the paths of the plain (unquoted) string
    scalars in it that ``wanted`` accepts: the ones whose type YAML decides from their text."""
    loader = _CoreLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
        if loader.ambiguous:
            raise yaml_core.Ambiguities(loader.ambiguous)
    finally:
        loader.dispose()
    found = [path for path, value in _plain(node, ()) if wanted(value) and value_at(data, path) == value]
    return data, found


def _plain(node: yaml.Node | None, path: Path) -> Iterator[tuple[Path, str]]:
    if isinstance(node, yaml.ScalarNode) and node.style is None and node.tag == _STR:
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
    loader = _BoundedLoader("")
    try:
        tag = loader.resolve(yaml.ScalarNode, text, (True, False))
        if tag not in _TYPED or ":" in text:
            return text
        value = loader.construct_object(yaml.ScalarNode(tag, text))
    except yaml.YAMLError:
        return text
    finally:
        loader.dispose()
    return text if isinstance(value, float) and not math.isfinite(value) else value
