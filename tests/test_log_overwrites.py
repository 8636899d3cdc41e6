"""A trial's log shown as a terminal shows it: a line a progress bar redraws with carriage
returns shows its last state, in a window the dashboard reads, in the whole log the API serves
and in a line of any length; metrics are read from every state the line went through."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from functions.adapters.local_log_reads import LocalLogReads
from functions.core.lines import bounded_lines
from functions.core.log_reads import StreamedLogReads, as_text, window_of
from functions.core.metrics import parse_text
from functions.core.overwrites import overwritten, overwritten_lines

TQDM = b"loading\n\r  0%|          | 0/3\r 33%|###       | 1/3 loss=0.9\r 67%|######    | 2/3 loss=0.7" \
       b"\r100%|##########| 3/3 loss=0.5\r\ndone\n"


def terminal(data: bytes, max_line: int = 1 << 20) -> str:
    """The whole of ``data`` as a terminal shows it, read as the API's whole log is."""
    return "".join(overwritten_lines(bounded_lines([data], max_line, returns=True), max_line))


def test_a_progress_bar_shows_its_last_state_and_metrics_are_read_from_each_of_its_states():
    assert terminal(TQDM) == "loading\n100%|##########| 3/3 loss=0.5\ndone\n"
    assert as_text(TQDM) == "loading\n100%|##########| 3/3 loss=0.5\ndone\n", "a window the page reads"
    read = parse_text(bounded_lines([TQDM]), ["loss"])
    assert [o.value for o in read] == [0.9, 0.7, 0.5], "the collector reads each state, as every \\r breaks a line"


def test_a_carriage_return_with_nothing_after_it_erases_nothing():
    assert terminal(b"50%\r\n") == "50%\n", "\\r\\n ends a line"
    assert terminal(b"50%\r\r\nnext\n") == "50%\nnext\n"
    assert terminal(b"saving\r") == "saving", "the log's end"
    assert terminal(b"\rstarts overwritten\n") == "starts overwritten\n"


def test_a_window_says_with_a_carriage_return_what_only_the_next_or_the_last_one_knows():
    """A window's first line that overwrites the line the window before left unfinished begins
    with ``\\r``; a last line the next window may overwrite ends with one; lines between are
    whole."""
    assert overwritten("1/3\r2/3\nmid\r\rdle\nend\r") == "\r2/3\ndle\nend\r"
    assert overwritten("\r") == "\r", "a lone carriage return waits for what follows it"
    assert overwritten("plain\ntext") == "plain\ntext"
    assert overwritten("a\r\rb\r\r") == "\rb\r"


def test_a_window_cut_between_the_states_of_a_progress_line_carries_the_carriage_return_to_the_next(
        tmp_path: Path):
    """A window the limit cuts at a line's ``\\r`` leaves it for the next, which begins with it
    and so overwrites what the page shows of the line."""
    data = b"step 1\rstep 2\rstep 3\n"
    first = window_of(data[:8], 0, 7, False)
    assert (first.text, first.offset) == ("step 1", 6), "the cut \\r waits for the next window"
    second = window_of(data[6:], 6, 100, False)
    assert second.text == "\rstep 3\n"


def test_a_line_redrawn_a_million_times_is_read_in_pieces_holding_one_state(tmp_path: Path):
    """Eight megabytes of one progress line, a million states and no line feed until its end,
    shown as its last state: the lines read from it are pieces of a mebibyte at most, and what
    is held of the line is one state (the pieces are read lazily, one at a time)."""
    updates = 1_000_000

    def chunks() -> Iterator[bytes]:
        for start in range(0, updates, 8192):
            yield b"".join(b"\r%07d" % n for n in range(start, min(start + 8192, updates)))
        yield b"\n"

    pieces = bounded_lines(chunks(), returns=True)
    assert list(overwritten_lines(pieces)) == ["0999999\n"]
    log = tmp_path / "0.1.log"
    log.write_bytes(b"".join(chunks()))
    reads = LocalLogReads(lambda launch: log)
    assert list(reads.ends(None, 1 << 22, 1 << 22, overwrite=True)) == ["0999999\n"]


def test_a_line_longer_than_its_limit_without_a_carriage_return_comes_in_pieces():
    """What is held of a line is bounded: past twice its limit without a ``\r``, the text read
    is given out, and a later ``\r`` overwrites what came after it."""
    assert list(overwritten_lines(bounded_lines([b"x" * 25 + b"\rshort\n"], 10, returns=True), 10)) == \
        ["x" * 20, "short\n"]
    pieces = list(overwritten_lines(bounded_lines([b"y" * 45 + b"\n"], 10, returns=True), 10))
    assert "".join(pieces) == "y" * 45 + "\n" and all(len(piece) <= 21 for piece in pieces)


def test_the_whole_log_is_served_either_way_from_a_file_and_from_a_stream(tmp_path: Path):
    """The API's whole log: each ``\\r`` a line break, as metrics are read (the default), or as
    a terminal shows it; the same from a local file and from a pod's stream, whose lines keep
    their carriage returns."""
    log = tmp_path / "0.1.log"
    log.write_bytes(TQDM)
    local = LocalLogReads(lambda launch: log)
    streamed = StreamedLogReads(lambda launch: bounded_lines([TQDM], returns=True), lambda launch: None)
    lines = "".join(bounded_lines([TQDM]))
    for reads in (local, streamed):
        assert "".join(reads.ends(None, 1 << 20, 1 << 20)) == lines
        assert "".join(reads.ends(None, 1 << 20, 1 << 20, overwrite=True)) == \
            "loading\n100%|##########| 3/3 loss=0.5\ndone\n"
    longer = StreamedLogReads(lambda launch: bounded_lines([TQDM.replace(b"\n", b"\nnoise\n", 1)], returns=True),
                              lambda launch: None)
    assert "".join(longer.ends(None, 8, len(TQDM) - 9, overwrite=True)) == (
        "loading\n[katuna: 6 bytes left out here; the first 8 and the last 117 bytes of the log are shown]\n"
        "100%|##########| 3/3 loss=0.5\ndone\n"), "the head and the tail each as a terminal shows it"
