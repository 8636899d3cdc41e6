"""The loader that reads untrusted YAML within bounds (:mod:`functions.core.bounded_yaml`): it
counts the nodes and characters a document stands for, aliases expanded, and its nesting depth
while composing, and refuses a duplicate key, an integer past the largest float, a value with no
JSON form and a value that holds itself, each naming where it is.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from typing import Any, cast

import yaml

from functions.core import yaml_streams
from functions.core.bounded_json import MAX_DEPTH

MAX_NODES = 100_000
"""Nodes a document may stand for, every alias counted at the size of what it names."""

MAX_CHARS = 4 << 20
"""Characters of text a document may stand for, every alias counted at the size of what it names,
beyond four times its own length: a few references to one long anchored string would otherwise
stand for gigabytes while counting as a few nodes. A document without aliases is never refused
for its length (the request's body limit bounds that)."""

MAX_INT_TEXT = 1_100
"""Characters of an integer's text: the largest float written in binary digits (``0b`` and
1,024 of them) fits; a longer integer is too large however it is written, and is refused
before it is read (reading a long sexagesimal ``1:2:3:...`` costs quadratic time)."""

INT = "tag:yaml.org,2002:int"
STR = "tag:yaml.org,2002:str"
MERGE = "tag:yaml.org,2002:merge"
TYPED = {"tag:yaml.org,2002:null", "tag:yaml.org,2002:bool", INT, "tag:yaml.org,2002:float"}
"""The tags a plain scalar may resolve to that :func:`~functions.core.bounded_yaml.plain_scalar`
gives as typed values."""


def too_many() -> str:
    """Why a document of more than :data:`MAX_NODES` nodes is refused."""
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


class BoundedLoader(yaml.SafeLoader):
    """A safe loader that keeps the bounds, refuses duplicate keys, integers past the largest
    float, values with no JSON form and values that hold themselves, and keeps timestamps as text."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._weights: dict[int, tuple[int, int]] = {}
        self._path: list[str] = []
        self._document: yaml.Node | None = None
        self._unmerged: dict[int, list[tuple[yaml.Node, yaml.Node]]] = {}
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
                                   if self._aliased else too_many())
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
        node an alias names again counts again), kept for each mapping and list once composed: a
        scalar's is its own text, read again where wanted rather than kept for each of the
        100,000 a document may hold (13 MiB of them)."""
        if isinstance(node, yaml.ScalarNode):
            return 1, len(node.value)
        weight = self._weights.get(id(node))
        if weight is None:
            children = [(1, len(child.value)) if isinstance(child, yaml.ScalarNode) else self._weights.get(id(child), (1, 0))
                        for child in _children(node)]
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

    def construct_document(self, node: yaml.Node) -> Any:
        """The data of the document ``node`` is the root of, kept while it is constructed: a
        refused number's path is found in it (:meth:`construct_bounded_int`)."""
        self._document = node
        try:
            return super().construct_document(node)
        finally:
            self._document = None
            self._unmerged.clear()

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        """A mapping's merge keys (``<<: *base``) replaced by the pairs they merge, as PyYAML
        does; the pairs as written are kept first, for a path to be found as the text has it."""
        if any(key.tag == MERGE for key, _ in node.value):
            self._unmerged.setdefault(id(node), list(node.value))
        super().flatten_mapping(node)

    def construct_bounded_int(self, node: yaml.ScalarNode) -> int:
        """An integer no larger than the largest float: no field takes a larger one, and one
        written with more digits than Python reads would raise ``ValueError`` (its text is
        measured before it is read, so a long one costs nothing)."""
        if len(node.value) > MAX_INT_TEXT:
            raise NumberTooLarge(self._path_of(node), node.start_mark)
        value: int = self.construct_yaml_int(node)
        if abs(value) > sys.float_info.max:
            raise NumberTooLarge(self._path_of(node), node.start_mark)
        return value

    def _path_of(self, node: yaml.Node) -> str:
        """Where ``node`` is first written in the document being constructed (``""`` outside
        one): the tree walked in the order it was composed, as written, merge keys unmerged, an
        alias's value not walked again. Found only for a refusal: a path kept for each of the
        99,000 integers of a 400 KB list cost 14 MiB."""
        if self._document is None or self._document is node:
            return ""
        seen = {id(self._document)}
        stack = [self._parts(self._document, "")]
        while stack:
            for child, path in stack[-1]:
                if child is node:
                    return path.lstrip(".")
                if isinstance(child, yaml.CollectionNode) and id(child) not in seen:
                    seen.add(id(child))
                    stack.append(self._parts(child, path))
                    break
            else:
                stack.pop()
        return ""

    def _parts(self, node: yaml.Node, path: str) -> Iterator[tuple[yaml.Node, str]]:
        """The nodes ``node`` holds as written, in order, each with its path as composing names
        it: a list's items by index, a mapping's values by their key's text, its keys by its own."""
        if isinstance(node, yaml.SequenceNode):
            for index, child in enumerate(node.value):
                yield child, f"{path}[{index}]"
        elif isinstance(node, yaml.MappingNode):
            for key, value in self._unmerged.get(id(node)) or node.value:
                yield key, path
                yield value, f"{path}.{key.value}" if isinstance(key, yaml.ScalarNode) else path

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
            if not isinstance(key, yaml.ScalarNode) or key.tag == MERGE:
                continue
            if (key.tag, key.value) in seen:
                where = "".join(self._path).lstrip(".")
                raise DuplicateKey(f"{where}.{key.value}" if where else key.value, key.value, key.start_mark)
            seen.add((key.tag, key.value))


BoundedLoader.add_constructor(INT, BoundedLoader.construct_bounded_int)
BoundedLoader.add_constructor("tag:yaml.org,2002:timestamp", BoundedLoader.construct_timestamp_text)
BoundedLoader.add_constructor("tag:yaml.org,2002:binary", BoundedLoader.refuse_no_json)
BoundedLoader.add_constructor("tag:yaml.org,2002:set", BoundedLoader.refuse_no_json)
BoundedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"[-+]?[0-9]+(?:\.[0-9]*)?[eE][-+]?[0-9]+\Z"), list("-+0123456789"))
"""JSON's (and YAML 1.2's) exponent numbers, ``1e-12``, ``-1e+308``: YAML 1.1 reads them as strings."""


def _children(node: yaml.Node) -> list[yaml.Node]:
    """The nodes a collection node holds: a mapping's keys and values; none of a scalar."""
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []
