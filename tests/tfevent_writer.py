"""A tiny TensorFlow event file writer for tests: TFRecord framing around ``Event`` protocol
buffers holding scalars the ways TensorFlow's writers store them (TF1 ``simple_value``, TF2
rank-0 tensors with ``float_val``, ``double_val``, ``int64_val`` or ``tensor_content``). Standard library only, so trial
scripts can import it."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable
from pathlib import Path

from functions.core.tfevents import masked_crc

SIMPLE, TENSOR, CONTENT, DOUBLE, INT64 = "simple", "tensor", "content", "double", "int64"


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, wire: int, payload: bytes | int) -> bytes:
    key = _varint(number << 3 | wire)
    if wire == 0:
        assert isinstance(payload, int)
        return key + _varint(payload)
    assert isinstance(payload, bytes)
    return key + (_varint(len(payload)) + payload if wire == 2 else payload)


def _value(tag: str, value: float, style: str) -> bytes:
    out = _field(1, 2, tag.encode())
    if style == SIMPLE:
        return out + _field(2, 5, struct.pack("<f", value))
    if style == TENSOR:
        tensor = _field(1, 0, 1) + _field(2, 2, b"") + _field(5, 2, struct.pack("<f", value))
    elif style == CONTENT:
        tensor = _field(1, 0, 1) + _field(2, 2, b"") + _field(4, 2, struct.pack("<f", value))
    elif style == DOUBLE:
        tensor = _field(1, 0, 2) + _field(2, 2, b"") + _field(6, 2, struct.pack("<d", value))
    else:
        tensor = _field(1, 0, 9) + _field(2, 2, b"") + _field(10, 2, _varint(int(value)))
    return out + _field(8, 2, tensor)


def event(step: int, scalars: Iterable[tuple[str, float]], style: str = TENSOR) -> bytes:
    """One ``Event`` with a summary of ``scalars`` (tag, value) stored in ``style``."""
    summary = b"".join(_field(1, 2, _value(tag, value, style)) for tag, value in scalars)
    return _field(1, 1, struct.pack("<d", time.time())) + _field(2, 0, step) + _field(5, 2, summary)


def record(data: bytes) -> bytes:
    """``data`` framed as one TFRecord."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))


def write(path: Path, events: Iterable[bytes], truncated_tail: bool = False) -> Path:
    """An event file at ``path`` (a version record first, as TensorFlow writes one), optionally
    ending with a record cut short as a writer still writing leaves it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    head = _field(1, 1, struct.pack("<d", time.time())) + _field(3, 2, b"brain.Event:2")
    data = record(head) + b"".join(record(e) for e in events)
    if truncated_tail:
        data += record(event(99, [("accuracy", 0.0)]))[:-7]
    path.write_bytes(data)
    return path
