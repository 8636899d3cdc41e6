"""Container logs as the kubelet keeps and serves them.

The container runtime (containerd's CRI logger) reads a container's output as it comes and
writes each line to the log with the time it read it (lines read together share a time here: a
reader must not take a timestamp for a line's identity), byte for byte as the container wrote it,
whatever its encoding; a line ends at ``\n``, or at ``\r\n``, whose ``\r`` it drops too (Go's
``bufio`` line reading). The log file is of CRI records, not of lines: a line longer than
:data:`RECORD_BYTES` is written as partial records of that many bytes each (cut at a byte, inside
a character if need be) and a final one with the rest. The runtime writes a partial record as
soon as it holds more than :data:`RECORD_BYTES` of a line, reading the line :data:`READ_BYTES` at
a time: a running container's line not yet ended is in the log in its partial records already,
all but its last 4–20 KiB; a last line with no line break is written, as partial records, when
the container ends. The kubelet answers ``GET pods/{name}/log`` from that log, as
its CRI log reader does: ``tailLines`` picks the last records first (``FindTailLineStartIndex``
counts the file's lines, which are records), then records older than ``sinceSeconds`` /
``sinceTime`` are left out, ``timestamps`` puts a record's time (RFC 3339 with nanoseconds) in
front of it where the record starts a line, and of the first record it reads whatever it is (its
reader begins as at a line's start), a partial record's line break is left out so the pieces
join back into their line, and the answer stops after ``limitBytes`` bytes, in the middle of a
line if need be. So a ``tailLines`` read may begin inside a line, and nothing in it says so;
one of ``sinceSeconds`` begun inside a line has no time ahead of its first piece. The API server
refuses options its validation refuses (422, ``PodLogOptions``).

The kubelet rotates a running container's log: once the file passes ``containerLogMaxSize``
(10 Mi by default, on GKE and EKS too) when its log manager looks (every 10 s), the file is put
aside and a new one begins; the API reads only the current file (kubernetes#59902), so every
option above applies to the lines since the last rotation, and the earlier ones are never served.
Here the runtime's read is the manager's look: a read first rotates a file that passed the size,
then appends the new lines. A container that ended is not rotated any more.

A test of a reader racing the rotation may make a file wait for its reader (opt-in; no kubelet
waits): a file that passed the size is then rotated only once the API has served a read that
reached its last line, so the reader's read lands before the rotation however late it comes; and
it may call back at each rotation and at each read served to the last line, so a test can let its
trial go on only once its log was rotated, or read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from kube_standin.clock import RealClock
from kube_standin.objects import invalid, status

NANOS = 1_000_000_000

MAX_SIZE = 10 * 1024 * 1024
"""The kubelet's ``containerLogMaxSize`` default."""

RECORD_BYTES = 16 * 1024
"""Bytes of a line one record holds at most: containerd's ``max_container_log_line_size`` default."""

READ_BYTES = 4096
"""Bytes of a line the runtime's reader takes at a time where no line break comes sooner
(containerd's ``defaultBufSize``, the size of its ``bufio.Reader``)."""

CRI_PREFIX = len("2027-01-01T00:00:00.000000000Z stdout F ")
"""Bytes the runtime writes in front of each record in the log file (time, stream, tag): they count
towards the file's size, not the served log's."""


@dataclass(frozen=True)
class Line:
    """One record of a container's log (a whole line, or a piece of a long one): when the runtime
    read it, and what it says."""

    at: int
    """Nanoseconds since the epoch."""
    data: bytes
    complete: bool = True
    """Whether the record ends its line with a line break (a partial record, or a last line, does not)."""
    starts: bool = True
    """Whether the record starts its line (a long line's records after its first do not)."""

    @property
    def text(self) -> str:
        """What the record says, decoded (a long line's piece may end inside a character)."""
        return self.data.decode(errors="replace")

    @property
    def stamp(self) -> str:
        """``at`` as the kubelet prints it: RFC 3339, nine fraction digits, UTC."""
        seconds, nanos = divmod(self.at, NANOS)
        return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{nanos:09d}Z"


@dataclass
class Capture:
    """The runtime's side: a container's output file, read into log lines as it grows."""

    output: Path
    clock: RealClock = field(default_factory=RealClock)
    """Whose time each line is read at."""
    lines: list[Line] = field(default_factory=list)
    """The current log file's lines: those since the last rotation."""
    offset: int = 0
    """Bytes of the output the runtime has written to its log (of a line not yet ended, its
    partial records)."""
    inside: bool = False
    """Whether :attr:`offset` is inside a line, some of which is in partial records."""
    max_size: int = MAX_SIZE
    """The kubelet's ``containerLogMaxSize``: the current file is rotated once it holds more."""
    size: int = 0
    """Bytes of the current log file."""
    rotations: int = 0
    look_every: float = 0.0
    """Seconds between the log manager's looks (10 on a kubelet): a file is rotated at a read only
    this long after the last rotation check. 0: at every read, which loses the most lines."""
    looked: float = 0.0
    waits_for_reader: bool = False
    """Opt-in, for tests only: rotate a file only once :meth:`served` saw a read reach its last line."""
    unserved: bool = False
    """Whether lines were read in since the API last served a read that reached the last line."""
    on_rotation: Callable[[], None] | None = None
    """Called at each rotation (for tests to learn of it)."""
    on_read_to_end: Callable[[Line], None] | None = None
    """Called with the last line whenever :meth:`served` saw a read reach it (for tests to learn of it)."""

    def read(self, final: bool = False) -> None:
        """Write the records of the output written since the last read (:func:`written`;
        ``final``: the container has ended, and its last line goes in whole); while it runs,
        rotate the current file first if it passed :attr:`max_size`."""
        now = self.clock.time()
        if not final and now - self.looked >= self.look_every:
            self.looked = now
            if self.size > self.max_size and not (self.waits_for_reader and self.unserved):
                self._rotate()
        try:
            if self.output.stat().st_size <= self.offset:
                return
        except FileNotFoundError:
            return
        with self.output.open("rb") as out:
            out.seek(self.offset)
            data = out.read()
        read, taken = written(round(self.clock.time() * NANOS), data, self.inside, final)
        if not taken:
            return
        self.offset += taken
        self.inside = not data[:taken].endswith(b"\n")
        self.lines += read
        self.size += sum(CRI_PREFIX + len(line.data) + 1 for line in read)
        self.unserved = True

    def served(self, query: dict[str, str], now: float) -> None:
        """The API served a read of this log with ``query`` at ``now``: note whether it reached the last line."""
        if reaches_end(self.lines, query, now):
            self.unserved = False
            if self.lines and self.on_read_to_end is not None:
                self.on_read_to_end(self.lines[-1])

    def _rotate(self) -> None:
        """Put the current file aside: a new, empty one begins."""
        self.lines, self.size, self.rotations = [], 0, self.rotations + 1
        if self.on_rotation is not None:
            self.on_rotation()


def written(at: int, data: bytes, inside: bool, final: bool) -> tuple[list[Line], int]:
    """The records the runtime writes at ``at`` of ``data``, the output from the first byte it
    has not written (``inside`` a line when it wrote some of that line before), and how many
    bytes of ``data`` they take: each ended line (without its ``\r\n`` or ``\n``), then of
    the line not yet ended what :func:`partial_bytes` says (all of it, once ``final``)."""
    *ended, rest = data.split(b"\n")
    read = [record for n, line in enumerate(ended)
            for record in records(at, line.removesuffix(b"\r"), True, starts=not (inside and n == 0))]
    taken = len(rest) if final else partial_bytes(len(rest))
    if taken:
        read += records(at, rest[:taken], False, starts=not (inside and not ended))
    return read, len(data) - len(rest) + taken


def partial_bytes(size: int) -> int:
    """Bytes of a running container's line not yet ended, ``size`` bytes so far, that the
    runtime has written in partial records: it reads the line :data:`READ_BYTES` at a time and
    writes a record of :data:`RECORD_BYTES` each time it holds more than that
    (containerd's ``redirectLogs``)."""
    held = size // READ_BYTES * READ_BYTES
    return (held - 1) // RECORD_BYTES * RECORD_BYTES if held else 0


def records(at: int, line: bytes, ends: bool, starts: bool = True) -> list[Line]:
    """The records the runtime writes at ``at`` for one line or, not ``starts``, the rest of one
    (``ends``: with its line break): the partial ones of :data:`RECORD_BYTES` while more than
    that is left, then the final one."""
    pieces = [line[cut:cut + RECORD_BYTES] for cut in range(0, len(line), RECORD_BYTES)] or [b""]
    return [Line(at, piece, complete=ends and n == len(pieces) - 1, starts=starts and n == 0)
            for n, piece in enumerate(pieces)]


def _number(query: dict[str, str], name: str) -> int | None:
    value = query.get(name)
    return None if value is None else int(value)


def _since(query: dict[str, str], now: float) -> int | None:
    """The earliest time a line may have (ns since the epoch), from ``sinceSeconds`` before ``now``
    or ``sinceTime`` (whole seconds, as ``metav1.Time`` carries it)."""
    seconds = _number(query, "sinceSeconds")
    if seconds is not None:
        return round(now * NANOS) - seconds * NANOS
    if query.get("sinceTime"):
        moment = datetime.fromisoformat(query["sinceTime"].replace("Z", "+00:00"))
        return int(moment.astimezone(UTC).replace(microsecond=0).timestamp()) * NANOS
    return None


def problems(query: dict[str, str]) -> list[tuple[str, str]]:
    """What the API server's validation of ``PodLogOptions`` says about ``query``."""
    found = []
    tail, limit, since = (_number(query, name) for name in ("tailLines", "limitBytes", "sinceSeconds"))
    if tail is not None and tail < 0:
        found.append(("tailLines", f"Invalid value: {tail}: must be greater than or equal to 0"))
    if limit is not None and limit < 1:
        found.append(("limitBytes", f"Invalid value: {limit}: must be greater than 0"))
    if since is not None and query.get("sinceTime"):
        found.append(("", "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"))
    elif since is not None and since < 1:
        found.append(("sinceSeconds", f"Invalid value: {since}: must be greater than 0"))
    return found


def refusal(name: str, query: dict[str, str]) -> tuple[int, dict] | None:
    """The API server's answer to log options it refuses, before it looks for the pod: 400 for
    options it cannot decode, 422 for values its validation refuses; None when they are fine."""
    try:
        refused = problems(query)
        _since(query, 0.0)
    except ValueError as exc:
        return 400, status(400, "BadRequest", f"couldn't decode the log options: {exc}")
    return invalid("PodLogOptions", "PodLogOptions", name, refused) if refused else None


WAITING_SAID = {"ErrImagePull": "image can't be pulled", "ImagePullBackOff": "trying and failing to pull image"}
"""What the kubelet says of a container waiting for these reasons, where it says the reason of any other."""


def run_served(held: dict, container: str, pod: str, earlier: bool) -> bool:
    """Whether the kubelet serves the log of the container's run before its current one (else
    the current one's), as ``validateContainerLogStatus`` (pkg/kubelet/kubelet_pods.go) picks
    it from the container's status ``held`` (``{}``: the pod has none for it yet, "not
    available"): asked for (``earlier``: ``previous``), a last terminated run with a
    ``containerID`` it must have (a run it never located has none); else a running container's
    own, a terminated one's own where it has a ``containerID`` and else its last terminated run's,
    as if it were the current one; else, of a container waiting with a last terminated run (in
    ``CrashLoopBackOff``, run again in place once its back-off is over), that run's too.
    ``ValueError`` with the kubelet's message (its 400) where there is no run to serve."""
    if not held:
        raise ValueError(f'container "{container}" in pod "{pod}" is not available')
    state, last = held.get("state") or {}, (held.get("lastState") or {}).get("terminated")
    if earlier:
        if not (last or {}).get("containerID"):
            raise ValueError(f'previous terminated container "{container}" in pod "{pod}" not found')
        return True
    if "running" in state:
        return False
    if "terminated" in state and state["terminated"].get("containerID"):
        return False
    if ("terminated" in state or last is not None) and not (last or {}).get("containerID"):
        raise ValueError(f'container "{container}" in pod "{pod}" is terminated')
    if last is not None:
        return True
    if "waiting" in state:
        reason = state["waiting"].get("reason") or ""
        raise ValueError(f'container "{container}" in pod "{pod}" is waiting to start: {WAITING_SAID.get(reason, reason)}')
    raise ValueError(f'container "{container}" in pod "{pod}" is waiting to start - no logs yet')


def previous(query: dict[str, str]) -> bool:
    """Whether the read asks for the log of the container's run before its current one
    (:func:`flag`)."""
    return flag(query, "previous")


def flag(query: dict[str, str], name: str) -> bool:
    """Whether the boolean query parameter ``name`` is set: as the API server converts one
    (``Convert_Slice_string_To_bool``), any value but ``false`` or ``0`` (in any case) is true,
    the empty one (``timestamps=``) too."""
    value = query.get(name)
    return value is not None and value.lower() not in ("false", "0")


def serve(lines: list[Line], query: dict[str, str], now: float) -> bytes:
    """The log the kubelet answers at ``now`` (seconds since the epoch) for a container whose
    current log file holds ``lines`` (options checked by :func:`refusal` first), as bytes: its
    ``limitBytes`` cuts at a byte, inside a character when one spans the limit."""
    since, tail = _since(query, now), _number(query, "tailLines")
    chosen = lines[len(lines) - min(tail, len(lines)):] if tail is not None else lines
    stamped = flag(query, "timestamps")
    text = b"".join((f"{line.stamp} ".encode() if stamped and (line.starts or n == 0) else b"") + line.data
                    + (b"\n" if line.complete else b"") for n, line in enumerate(chosen)
                    if since is None or line.at >= since)
    limit = _number(query, "limitBytes")
    return text[:limit] if limit is not None else text


def reaches_end(lines: list[Line], query: dict[str, str], now: float) -> bool:
    """Whether the answer to ``query`` at ``now`` holds the last of ``lines`` whole: neither left
    out by its time or ``tailLines`` nor cut by ``limitBytes`` (true of a file with no line)."""
    if not lines:
        return True
    whole = serve(lines, {key: value for key, value in query.items() if key != "limitBytes"}, now)
    return bool(whole) and serve(lines, query, now) == whole
