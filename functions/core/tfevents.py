"""TensorFlow event files, read without TensorFlow: the TensorFlowEvent metrics collector.

Katib's TensorFlowEvent collector reads, once the training has ended, every file under the
collector's directory (recursively) as TensorFlow event files and reports each scalar summary
whose tag matches a metric: tags are matched by Katib's rule (:func:`matches`), so a metric
``test/accuracy`` takes the tag ``accuracy`` of the event files in a folder ending ``test``,
and a plain ``accuracy`` takes it from every folder. TF1 writers store a scalar as
``simple_value``; TF2 writers store it as a rank-0 tensor (``float_val`` or ``tensor_content``).

An event file is a sequence of TFRecords (little-endian uint64 length, masked CRC32C of the
length, the data, masked CRC32C of the data); each record is an ``Event`` protocol buffer. A
record cut short or failing its checksum ends the file's reading, as TensorFlow's readers do
with a file still being written.

This module imports nothing but the standard library and nothing of katuna: on a cluster its
source runs as it is inside the trial's container (``python3 -c SOURCE MARK DIRECTORY NAMES``),
printing each record of the metrics behind ``MARK`` for katuna to read from the pod log
(:func:`main`).
"""

from __future__ import annotations

import heapq
import json
import math
import os
import select
import signal
import struct
import sys
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any, BinaryIO

_CRC_TABLE: list[int] = []
for _byte in range(256):
    _crc = _byte
    for _ in range(8):
        _crc = (_crc >> 1) ^ 0x82F63B78 if _crc & 1 else _crc >> 1
    _CRC_TABLE.append(_crc)

_FLOAT, _DOUBLE, _INT32, _INT64 = 1, 2, 3, 9
"""TensorFlow ``DataType`` numbers of the scalar tensors read."""
_LAYOUTS = {_FLOAT: "<f", _DOUBLE: "<d", _INT32: "<i", _INT64: "<q"}
"""How each type's value is laid out in ``tensor_content`` (and in ``float_val``/``double_val``)."""
_VALUE_FIELDS = {_FLOAT: 5, _DOUBLE: 6, _INT32: 7, _INT64: 10}
"""``TensorProto``'s field of each type's values: ``float_val``, ``double_val``, ``int_val``, ``int64_val``."""


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``, the checksum of TFRecord framing."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    """The masked CRC-32C TFRecords store (rotated right by 15 bits, plus a constant)."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class DamagedFile(ValueError):
    """An event file whose record claims more bytes than are left of the file: one cut short
    (its writer still writing, or killed while it wrote) or damaged. What came before it is read."""


class TooManyFiles(ValueError):
    """An event folder holding more files than its reader reads (:data:`MAX_FILES`)."""


MAX_FILES = 10_000
"""The most files of an event folder katuna reads (or records, as a local attempt starts), its
walk stopped as soon as it meets one more: a trial's event folder holds a few, and a folder of
the whole machine would be walked at each attempt's start and end."""


MAX_RECORD = 1024 * 1024
"""The longest record read: a scalar's event takes tens of bytes, and only a graph, an image or
a histogram takes more. A longer one is passed over unread, its bytes never held nor checksummed
(:func:`crc32c` costs about 0.2 s of CPU a MiB): a trial's file may claim gigabytes for one
record, and a sparse file holds them at no cost to its disk."""


def tf_records(stream: BinaryIO, take: Callable[[int], None] | None = None) -> Iterator[bytes]:
    """The records of a TFRecord file, read one at a time, up to the first one failing its
    checksum (a file that is no TFRecord file fails its first header's). A record claiming more
    bytes than are left of the file is a :class:`DamagedFile`, found before it is read: a
    header's length alone would otherwise have that many bytes read at once (2**40: a
    ``MemoryError``). A record longer than :data:`MAX_RECORD` is skipped, unread. The bytes of
    each header and each record are told to ``take`` before they are read (which raises to end
    the read: a local attempt's :class:`~functions.core.tfevent_budget.Budget`)."""
    left = os.fstat(stream.fileno()).st_size - stream.tell()
    while True:
        header = stream.read(12)
        left -= len(header)
        if take is not None:
            take(len(header))
        if len(header) < 12 or struct.unpack("<I", header[8:])[0] != masked_crc(header[:8]):
            return
        (length,) = struct.unpack("<Q", header[:8])
        if length + 4 > left:
            raise DamagedFile(f"a record claims {length:,} bytes, and {max(left - 4, 0):,} are left of the file")
        if length > MAX_RECORD:
            stream.seek(length + 4, os.SEEK_CUR)
            left -= length + 4
            continue
        if take is not None:
            take(length + 4)
        data = stream.read(length + 4)
        left -= len(data)
        if len(data) < length + 4 or struct.unpack("<I", data[length:])[0] != masked_crc(data[:length]):
            return
        yield data[:length]


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise ValueError("truncated varint")
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return value, at
        shift += 7


def fields(data: bytes) -> Iterator[tuple[int, int, object]]:
    """``(field number, wire type, value)`` of a protocol buffer message: an int for varints,
    bytes for fixed-width and length-delimited fields."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if not number:
            raise ValueError("field number 0")  # no message has one: a record of zeros ends here
        value: object
        if wire == 0:
            value, at = _varint(data, at)
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            value, at = data[at:at + width], at + width
        elif wire == 2:
            length, at = _varint(data, at)
            value, at = data[at:at + length], at + length
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if at > len(data):
            raise ValueError("truncated field")
        yield number, wire, value


def _float32_text(value: float) -> str:
    """The shortest decimal that is the same float32 (as TF2's tensors print)."""
    for digits in range(1, 10):
        text = f"{value:.{digits}g}"
        if struct.unpack("<f", struct.pack("<f", float(text)))[0] == value:
            return text
    return repr(value)


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _tensor_value(data: bytes) -> str | None:
    """The value of a rank-0 float, double or integer tensor as text (TF2's scalars); None
    for any other tensor."""
    tensor: dict[int, object] = {}
    for number, _, value in fields(data):
        tensor.setdefault(number, value)
    dtype, shape = tensor.get(1), tensor.get(2, b"")
    if not isinstance(dtype, int) or dtype not in _LAYOUTS or not isinstance(shape, bytes) or \
            any(number == 2 for number, _, _ in fields(shape)):
        return None
    raw = tensor.get(4) or tensor.get(_VALUE_FIELDS[dtype])
    if isinstance(raw, int):
        return str(_signed(raw))
    if not isinstance(raw, bytes) or not raw:
        return None
    if dtype in (_INT32, _INT64) and 4 not in tensor:
        return str(_signed(_varint(raw, 0)[0]))
    if len(raw) < struct.calcsize(_LAYOUTS[dtype]):
        return None
    (number,) = struct.unpack_from(_LAYOUTS[dtype], raw)
    return _float32_text(number) if dtype == _FLOAT else repr(number)


def scalars(event: bytes) -> Iterator[tuple[str, int, str]]:
    """``(tag, step, value)`` of each scalar summary value of one ``Event``."""
    step, summaries = 0, []
    for number, _, value in fields(event):
        if number == 2 and isinstance(value, int):
            step = _signed(value)
        elif number == 5 and isinstance(value, bytes):
            summaries.append(value)
    for summary in summaries:
        for number, _, item in fields(summary):
            if number == 1 and isinstance(item, bytes):
                found = _summary_value(item)
                if found is not None:
                    yield found[0], step, found[1]


def _summary_value(data: bytes) -> tuple[str, str] | None:
    tag, value = "", None
    for number, _, item in fields(data):
        if number == 1 and isinstance(item, bytes):
            tag = item.decode("utf-8", "replace")
        elif number == 2 and isinstance(item, bytes) and len(item) == 4:
            value = repr(struct.unpack("<f", item)[0])
        elif number == 8 and isinstance(item, bytes):
            value = _tensor_value(item)
    return (tag, value) if value is not None else None


def directory_records(directory: str, opener: Callable[[str], BinaryIO] | None = None,
                      earlier: Collection[str] = (), most: int | None = None,
                      damaged: Callable[[str, str], None] | None = None,
                      take: Callable[[int], None] | None = None) -> Iterator[dict[str, object]]:
    """Each scalar of every event file under ``directory``, in file order: its file's folder,
    tag, step and value (text). Files that are no event files give nothing, nor the ``earlier``
    ones (their paths from ``directory``: a local trial's folder held them before it started).
    Each file is opened by ``opener`` (the service's checks of a local trial's files), else as it is.
    A folder of more than ``most`` files is a :class:`TooManyFiles` before any is read; a damaged
    file gives what came before the damage, and is told to ``damaged`` (its path and why). The
    bytes about to be read are told to ``take`` (:func:`tf_records`), whose error (other than a
    ``ValueError``, which ends one file's reading) ends the read."""
    for path in event_files(directory, most):
        if os.path.relpath(path, directory) in earlier:
            continue
        try:
            with opener(path) if opener is not None else open(path, "rb") as handle:
                for record in tf_records(handle, take):
                    for tag, step, value in scalars(record):
                        yield {"dir": os.path.dirname(path), "tag": tag, "step": step, "value": value}
        except (DamagedFile, MemoryError) as exc:
            if damaged is not None:
                damaged(path, str(exc) or "a record too large to hold in memory")
        except (OSError, ValueError):
            continue


def event_files(directory: str, most: int | None = None) -> list[str]:
    """The paths of the files under ``directory``, in the order they are read (sorted in each
    folder, a folder's files before its subfolders'); a :class:`TooManyFiles` as soon as the
    walk meets more than ``most``."""
    found: list[str] = []
    for root, folders, files in os.walk(directory):
        folders.sort()
        found += (os.path.join(root, name) for name in sorted(files))
        if most is not None and len(found) > most:
            raise TooManyFiles(f"{directory} holds more than {most:,} files; katuna reads the event files of a "
                               f"folder of at most {most:,}: name the trial's own event folder")
    return found


def matches(tag: str, metric: str, folder: str) -> bool:
    """Katib's rule: the tag starts with the metric's last path part, and when the metric has
    a folder part (``test/accuracy``), the event file's folder ends with it."""
    parts = metric.split("/")
    return tag.startswith(parts[-1]) and (len(parts) < 2 or folder.endswith(os.path.dirname(metric)))


KEEP = 10_000
"""The reports of an attempt's metrics kept in their step order: the first and the last halves,
as many as katuna keeps for the observation log (``metric_summary.MAX_OBSERVATIONS``)."""


def kept_reports(reports: Iterable[tuple[str, int, str, object]],
                 keep: int = KEEP) -> list[tuple[int, int, str, str, object]]:
    """``(step, order, name, value, payload)`` of the reports that reduce, in step order (then
    in the order given), as all of them do, each ``(name, step, value text, payload)``: the
    first ``keep // 2`` and the last ``keep - keep // 2``, and each name's first report that is
    not finite, its first NaN, its last report and last finite one, its least and greatest value
    (of those not NaN, and of the finite ones). A run's per-step scalars so come in bounded
    memory (and, on a cluster, print to a bounded log); only the count of reports is lost.
    Giving the kept reports again keeps them all."""
    head: list[tuple[tuple[int, int], tuple[int, int, str, str, object]]] = []
    tail: list[tuple[tuple[int, int], tuple[int, int, str, str, object]]] = []
    marks: dict[tuple[str, str], tuple[Any, ...]] = {}
    for order, (name, step, value, payload) in enumerate(reports):
        item = (step, order, name, value, payload)
        _mark(marks, item)
        heapq.heappush(head, ((-step, -order), item))  # the greatest key first: the one to move on
        if len(head) > keep // 2:
            moved = heapq.heappop(head)[1]
            heapq.heappush(tail, ((moved[0], moved[1]), moved))  # the least key first: the one to drop
            if len(tail) > keep - keep // 2:
                heapq.heappop(tail)
    found = {item[1]: item for _, item in head + tail}
    found.update((mark[1][1], mark[1]) for mark in marks.values())
    return sorted(found.values(), key=lambda item: item[:2])


def _mark(marks: dict[tuple[str, str], tuple[Any, ...]], item: tuple[int, int, str, str, object]) -> None:
    """Keep ``item`` among its name's marks where it is one (:func:`kept_reports`): each mark
    holds its sort key and the item, the least key kept."""
    step, order, name, value = item[:4]
    try:
        number = float(value)
    except ValueError:
        return
    finite, nan = math.isfinite(number), math.isnan(number)
    wanted = [("last", (-step, -order), True), ("last finite", (-step, -order), finite),
              ("first not finite", (step, order), not finite), ("first nan", (step, order), nan),
              ("least", (number, step, order), not nan), ("greatest", (-number, step, order), not nan),
              ("least finite", (number, step, order), finite), ("greatest finite", (-number, step, order), finite)]
    for kind, key, applies in wanted:
        if applies and ((name, kind) not in marks or key < marks[name, kind][0]):
            marks[name, kind] = (key, item)


def step_of(record: dict[str, object]) -> int:
    """A record's step (0 where it holds none that is an integer)."""
    step = record["step"]
    return step if isinstance(step, int) else 0


FOLLOW_SECONDS = 1.0
"""How often the follower (:func:`follow`) looks for records written since it last looked."""


def new_records(directory: str, read_to: dict[str, tuple[int, int] | None],
                most: int | None = MAX_FILES) -> Iterator[dict[str, object]]:
    """Each scalar of the event files under ``directory`` written since the last call with the
    same ``read_to`` (each file's offset past its last whole record read and its size then,
    None once a record that is no ``Event`` ended its reading, as it ends
    :func:`directory_records`'), in file order. A file whose size is what it was is not opened
    (one ``stat``: a folder of :data:`MAX_FILES` files is looked at in about 0.08 s of CPU, where
    opening each took 0.28 s); a record still being written (cut short, or claiming more bytes
    than are written yet) is read at a later call; a file shorter than what was read of it, read
    again from its start."""
    for path in event_files(directory, most):
        try:
            size = os.stat(path).st_size
        except OSError:
            continue
        seen = read_to.get(path, (0, -1))
        if seen is None or seen[1] == size:
            continue
        at = seen[0] if seen[0] <= size else 0
        read_to[path] = (at, size)
        try:
            with open(path, "rb") as handle:
                handle.seek(at)
                for record in _whole_records(handle):
                    read_to[path] = (handle.tell(), size)
                    for tag, step, value in scalars(record):
                        yield {"dir": os.path.dirname(path), "tag": tag, "step": step, "value": value}
        except OSError:
            continue
        except ValueError:
            read_to[path] = None


def _whole_records(handle: BinaryIO) -> Iterator[bytes]:
    """The whole records of an event file from where ``handle`` stands, up to one still being written."""
    try:
        yield from tf_records(handle)
    except DamagedFile:
        return


def follow(mark: str, directory: str, names: str, seconds: float = FOLLOW_SECONDS, ready: int | None = None) -> None:
    """Print each record under the directory that one of the metric names (a JSON list) matches,
    behind ``MARK``, as it is written, every ``seconds``, until SIGTERM: the records a trial
    wrote so far are in its log while it runs, where a stop that reads the log before it ends
    the trial finds them. SIGTERM (the wrapper's, once the command ended) wakes it, and it
    reads once more before it ends, so the log holds every record the command wrote, before
    the reader at the end has read them all and printed its own. Process ``ready`` (the
    wrapper) is sent SIGUSR2 once SIGTERM is handled, so it starts the command only then: one
    that ends at once cannot kill the follower before its last look. Each once, in bounded memory
    (an offset a file); a folder of more than :data:`MAX_FILES` files is followed no more (the
    reader at the end says why)."""
    stopping: list[int] = []
    wake, woken = os.pipe()
    os.set_blocking(woken, False)
    signal.set_wakeup_fd(woken)  # a SIGTERM during the sleep's select makes ``wake`` readable
    signal.signal(signal.SIGTERM, lambda number, frame: stopping.append(number))
    if ready is not None:
        os.kill(ready, signal.SIGUSR2)
    metrics = json.loads(names)
    read_to: dict[str, tuple[int, int] | None] = {}
    while True:
        last = bool(stopping)
        try:
            for record in new_records(directory, read_to):
                if any(matches(str(record["tag"]), name, str(record["dir"])) for name in metrics):
                    sys.stdout.write("\r" + mark + json.dumps(record) + "\n")
        except TooManyFiles:
            return
        sys.stdout.flush()
        if last:
            return
        if select.select([wake], [], [], seconds)[0]:
            os.read(wake, 512)


def main(argv: list[str]) -> None:
    """``MARK DIRECTORY NAMES``: print each record under the directory that one of the metric
    names (a JSON list) matches as JSON, behind ``MARK``, those that reduce as all of them do
    (:func:`kept_reports`): the log holds no other scalar, and a bounded number. Each
    line starts with a carriage return, where katuna's readers cut lines, so a last line the
    trial's command left unended does not hold the first record. ``--follow MARK DIRECTORY
    NAMES [PID]``: print them as they are written, telling process PID once ready (:func:`follow`)."""
    if argv[0] == "--follow":
        follow(argv[1], argv[2], argv[3], ready=int(argv[4]) if len(argv) > 4 else None)
        return
    mark, directory, names = argv
    metrics = json.loads(names)
    found = directory_records(directory, damaged=lambda path, why: print(f"{path}: {why}", file=sys.stderr))
    reports = ((name, step_of(record), str(record["value"]), record) for record in found for name in metrics
               if matches(str(record["tag"]), name, str(record["dir"])))
    printed: set[int] = set()
    for item in sorted(kept_reports(reports), key=lambda item: item[1]):
        if id(item[4]) not in printed:
            printed.add(id(item[4]))
            sys.stdout.write("\r" + mark + json.dumps(item[4]) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
