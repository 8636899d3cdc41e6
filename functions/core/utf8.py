"""Strict UTF-8: text a client sent, refused (never read with its bytes replaced, which would
keep a name or command nobody wrote) where it is not UTF-8, naming the first byte that is not.

Python's ``utf-8`` codec is strict: it refuses encoded surrogates and overlong forms too. Study
definitions over HTTP (:func:`functions.core.formats.decode`) and CloudEvents whose JSON is not
UTF-8 (:mod:`functions.adapters.cloudevents_http`) are refused with these words; so is a
CloudEvent whose JSON escapes a lone surrogate (:func:`unencodable`), UTF-8 bytes that decode to
text UTF-8 cannot write again.
"""

from __future__ import annotations

from collections.abc import Mapping


class NotUtf8(ValueError):
    """Bytes that are not UTF-8 text; the message names the first byte that cannot be decoded
    (its offset from 0, and its value)."""

    def __init__(self, body: bytes, exc: UnicodeDecodeError) -> None:
        self.offset = exc.start
        super().__init__(f"byte {exc.start} (0x{body[exc.start]:02x}) cannot be decoded")


def text(body: bytes) -> str:
    """``body`` decoded as strict UTF-8; :class:`NotUtf8` where it is not."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotUtf8(body, exc) from exc


def unencodable(value: object, path: str) -> str | None:
    """The path (``data.message``, ``data.metadata.labels``) of the first string in ``value``, a
    mapping's key or any value at any depth, that UTF-8 cannot hold; None when every one can.
    JSON's ``\\ud800`` escape reads as a lone surrogate: text no store, log or header writes."""
    stack: list[tuple[str, object]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str) and not encodable(item):
            return where
        if isinstance(item, Mapping):
            for key, inner in item.items():
                if isinstance(key, str) and not encodable(key):
                    return where
                stack.append((f"{where}.{key}", inner))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", inner) for i, inner in enumerate(item))
    return None


def encodable(text: str) -> bool:
    """Whether UTF-8 can hold ``text``: it holds no lone surrogate."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
