"""Strict UTF-8: text a client sent, refused (never read with its bytes replaced, which would
keep a name or command nobody wrote) where it is not UTF-8, naming the first byte that is not.

Python's ``utf-8`` codec is strict: it refuses encoded surrogates and overlong forms too. Study
definitions over HTTP (:func:`functions.core.formats.decode`) and CloudEvents whose JSON is not
UTF-8 (:mod:`functions.adapters.cloudevents_http`) are refused with these words.
"""

from __future__ import annotations


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
