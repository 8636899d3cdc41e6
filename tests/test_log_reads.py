"""A trial's log is read at the offsets a request asks for, through the real app (Flask's test
client on a real Runtime, a real trial): a read of a log of hundreds of megabytes reads about
what it returns (the bytes this process read, as the kernel counts them in /proc/self/io), and
its pieces begin and end on whole UTF-8 characters."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import study_definition

from functions.adapters.local_log_reads import LocalLogReads
from functions.adapters.web import create_app
from functions.adapters.web.ui import LOG_CHUNK
from functions.core.errors import LogGone, OutputLost
from functions.core.kept_tails import KeptTail, kept_text, last_bytes
from functions.core.launch import TrialLaunch
from functions.core.live_log import Followed, LiveRead, LogMark, after_mark
from functions.core.log_cursor import written_at
from functions.core.log_reads import StreamedLogReads, note, window_of
from functions.runtime import Runtime
from functions.settings import Settings

MAX_LOG = 1 << 20
HEAD, TAIL = b"first line \xc3\xa9\n", b"last line \xe2\x82\xac\n"
SIZE = 600 << 20
"""The log's size: sparse, so written at once."""
READ_BOUND = 8 << 20
"""The most bytes one read may cost; reading the log through would take 600 MiB."""


def bytes_read() -> int:
    """The bytes this process has read so far, as the kernel counts them."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Iterator:
    runtime = Runtime(Settings(db=tmp_path_factory.mktemp("logs") / "katuna.db", max_log=MAX_LOG))
    try:
        client = create_app(runtime).test_client()
        assert client.post("/studies", json=study_definition(name="big", maxTrials=1, parallelism=1)).status_code == 201
        deadline = time.monotonic() + 60
        while client.get("/studies/big").get_json()["status"] != "completed":
            assert time.monotonic() < deadline, "the study did not complete"
            time.sleep(0.1)
        yield client, runtime.settings.logs / runtime.store().get_study("big").log_folder / "0.1.log"
    finally:
        runtime.close()


@pytest.fixture
def big(app) -> Iterator:
    """The client, and the trial's log made 600 MiB: a first line, a hole of NULs, a last line."""
    client, log = app
    with log.open("wb") as handle:
        handle.write(HEAD)
        handle.truncate(SIZE - len(TAIL))
        handle.seek(0, 2)
        handle.write(TAIL)
    yield client


def _costs(read) -> tuple[object, int]:
    before = bytes_read()
    answer = read()
    return answer, bytes_read() - before


def test_the_api_reads_only_the_start_and_the_end_of_a_huge_log(big):
    answer, cost = _costs(lambda: big.get("/studies/big/trials/0/logs").get_data(as_text=True))
    assert cost < READ_BOUND, f"read {cost} bytes of a {SIZE}-byte log"
    assert answer.startswith(HEAD.decode()) and answer.endswith(TAIL.decode())
    left_out = SIZE - MAX_LOG
    assert f"[katuna: {left_out} bytes left out here; the first {MAX_LOG // 2} and the last {MAX_LOG // 2} bytes" \
        in answer
    assert len(answer.encode()) < MAX_LOG + 200


def test_the_dashboard_reads_only_the_end_of_a_huge_log_then_only_what_follows_an_offset(big):
    last, cost = _costs(lambda: big.get("/ui/studies/big/trials/0/log?offset=-1").get_json())
    assert cost < READ_BOUND, f"read {cost} bytes of a {SIZE}-byte log"
    assert last["skipped"] == SIZE - LOG_CHUNK and last["offset"] == SIZE and not last["more"]
    assert last["text"] == TAIL.decode(), "the hole's NULs are control characters, which a page does not show"
    middle, cost = _costs(lambda: big.get("/ui/studies/big/trials/0/log?offset=314572800").get_json())
    assert cost < READ_BOUND, f"read {cost} bytes of a {SIZE}-byte log"
    assert middle["offset"] == 314572800 + LOG_CHUNK and middle["more"] and middle["skipped"] == 0
    assert middle["text"] == ""


def _reads(tmp_path: Path, data: bytes) -> LocalLogReads:
    log = tmp_path / "0.1.log"
    log.write_bytes(data)
    return LocalLogReads(lambda launch: log)


def test_the_ends_of_a_log_are_cut_between_characters_with_the_note_on_its_own_line(tmp_path: Path):
    reads = _reads(tmp_path, "aé€".encode() * 10 + "😀".encode() * 10)
    text = "".join(reads.ends(None, 8, 9))
    head, note, tail = text.split("\n")[:3]
    assert "\ufffd" not in text
    assert head == "aé€aé", "the head ends after the character its last byte is in"
    assert tail == "😀😀", "the tail begins at the first character that starts within it"
    assert note.startswith("[katuna: 83 bytes left out here; the first 9 and the last 8 bytes")


def test_a_log_within_its_head_and_tail_is_served_whole(tmp_path: Path):
    data = "one\r\ntwo\rthree é\n".encode()
    assert "".join(_reads(tmp_path, data).ends(None, 10, 10)) == "one\ntwo\nthree é\n"


def test_a_window_begins_and_ends_on_whole_characters_and_its_offset_is_where_the_next_begins(tmp_path: Path):
    data = "ab€cd€".encode()
    reads = _reads(tmp_path, data)
    first = reads.window(None, 0, 4)
    assert (first.text, first.offset, first.more) == ("ab", 2, True), "the euro sign cut at byte 4 waits"
    second = reads.window(None, first.offset, 4)
    assert (second.text, second.offset, second.more) == ("€c", 6, True)
    last = reads.window(None, -1, 7)
    assert (last.text, last.offset, last.skipped, last.more) == ("cd€", len(data), 5, False), \
        "read from the end, the window begins at the first character that starts within it"
    assert reads.window(None, len(data), 4)[:4] == ("", len(data), False, 0)
    assert reads.window(None, 10**17, 4)[:4] == ("", len(data), False, 0), "an offset past any file's end is its end"


def test_a_window_its_limit_cuts_inside_a_colour_code_or_a_line_break_ends_before_it(tmp_path: Path):
    """A page following a trial that prints faster than it polls reads windows its limit cuts
    wherever it falls: one cut inside a colour code ends before the code, which the next window
    reads whole, so the page shows neither a bare escape nor the code's tail (``32mINFO``), and
    one cut between the two bytes of a ``\r\n`` makes one line break, not two."""
    data = b"\x1b[32mINFO\x1b[0m \x1b]8;;https://example.com/run\x1b\\run\x1b]8;;\x1b\\ step\r\n" * 3
    reads = _reads(tmp_path, data)
    for limit in range(64, len(data) + 1):
        text, offset = "", 0
        while offset < len(data):
            window = reads.window(None, offset, limit)
            text, offset = text + window.text, window.offset
        assert text == "INFO run step\n" * 3, f"windows of {limit} bytes"


def test_a_character_its_writer_has_not_finished_is_read_once_it_is_whole():
    unfinished = window_of("x€".encode()[:-1], 0, 10, False)
    assert (unfinished.text, unfinished.offset, unfinished.more) == ("x", 1, False)
    assert window_of("€".encode(), 1, 10, False).text == "€"


def test_a_log_read_as_a_stream_has_windows_of_the_same_byte_offsets():
    reads = StreamedLogReads(lambda launch: iter(["ab€\n", "cd€\n"]), lambda launch: None)
    first = reads.window(None, 0, 4)
    assert (first.text, first.offset, first.more) == ("ab", 2, True)
    assert reads.window(None, first.offset, 5)[:3] == ("€\nc", 7, True)
    assert reads.window(None, -1, 6)[:4] == ("cd€\n", 12, False, 6)


def test_a_log_read_as_a_stream_keeps_the_whole_lines_of_its_first_and_last_bytes():
    reads = StreamedLogReads(lambda launch: iter(["one\n", "two\n", "three\n", "four\n", "€nd\n"]), lambda launch: None)
    assert "".join(reads.ends(None, 8, 11)) == "one\ntwo\n" + note(6, 8, 11) + "four\n€nd\n"
    assert "".join(reads.ends(None, 100, 100)) == "one\ntwo\nthree\nfour\n€nd\n"


def test_a_logs_window_shows_no_terminal_escape_sequences():
    """A training logger's colours, a window title and a screen clear are no text a page shows;
    the window's byte offsets still count them."""
    data = b"\x1b[31mred text\x1b[0m \x1b]0;a title\x07\x1b[2Jloss=0.5\r\n"
    window = window_of(data, 0, 1000, False)
    assert window.text == "red text loss=0.5\n" and window.offset == len(data)
    stray = window_of(b"epoch 1\x1b]stray\nepoch 2 loss=0.3\n", 0, 1000, False)
    assert stray.text == "epoch 1\nepoch 2 loss=0.3\n", "an unterminated title takes no line after it"


def test_a_logs_window_shows_neither_what_a_string_sequence_holds_nor_other_control_characters():
    """A device control string's request (``$q``), an application's string, a bell, backspaces,
    a character set's shift and C1 controls are no text either: a page would show the request
    as text and the controls as boxes. Tabs, line breaks and other text stay."""
    data = ("a \x1bP$q\"p\x1b\\ b \x1b_app\x1b\\ c \x1b(B\x1bc\x07\b\x0e\x0f\x9b31m\x85\tloss=0.5 é\n").encode()
    window = window_of(data, 0, 1000, False)
    assert window.text == "a  b  c 31m\tloss=0.5 é\n" and window.offset == len(data)
    cut = b"epoch 1 " + b"\x1bP$q" + b"x" * 40
    assert window_of(cut + b"\x1b\\ done\n", 0, len(cut), False).offset == len(b"epoch 1 "), \
        "a window cut inside a string sequence ends before it, for the next to read it whole"


def lost(launch: TrialLaunch) -> Iterator[str]:
    """A stream whose pods are gone."""
    raise OutputLost("no log of Job demo-3's last run is left: its pods are gone")
    yield ""


def test_a_stream_that_is_gone_is_read_from_its_kept_tail_which_says_its_lines_before_are_not_kept():
    launch = TrialLaunch("demo", "u1", 3, 2, "demo-3", ["true"], {}, ".", timeout=None)
    text, whole = last_bytes(["one\n", "two\n", "three\n", "f€ur\n"], 13)
    assert (text, whole) == ("three\nf€ur\n", False), "whole lines of the last bytes"
    assert last_bytes(["x" * 10 + "€\n"], 4) == ("€\n", False), "a last line too long alone, from a whole character"
    reads = StreamedLogReads(lost, lambda launch: KeptTail(text, "deleted Job demo-3"))
    note_line = ("[katuna: the last 13 bytes of attempt 2's log, kept when katuna deleted Job demo-3 as the trial "
                 "ended; the lines before them are not kept]\n")
    assert "".join(reads.ends(launch, 1000, 1000)) == note_line + "three\nf€ur\n"
    assert reads.window(launch, -1, 13).text == "three\nf€ur\n"
    nothing = StreamedLogReads(lost, lambda launch: KeptTail("", "suspended Job demo-3"))
    with pytest.raises(LogGone, match="^no log of trial 3 attempt 2 is left: katuna suspended Job demo-3 with its"):
        list(nothing.ends(launch, 100, 100))
    with pytest.raises(LogGone, match="ttlSecondsAfterFinished|its pods are gone"):
        list(StreamedLogReads(lost, lambda launch: None).ends(launch, 100, 100))


def test_a_tail_that_may_begin_inside_a_line_leaves_out_all_its_first_line_says_carriage_returns():
    """All the records asked for came, so the first line may be the end of a longer one: the
    whole of it is left out, the pieces its ``\\r`` make included, not only the first."""
    assert kept_text([b"12%\r", b"57%\r100%\n", b"loss=0.3\n", b"done\n"], asked=3) == ("loss=0.3\ndone\n", False)
    assert kept_text([b"12%\r57%\r100%\n", b"loss=0.3\n", b"done\n"], asked=4) == (
        "12%\r57%\r100%\nloss=0.3\ndone\n", True), "fewer records than asked for: the whole log, \\r kept"


def test_a_kept_tail_is_shown_as_a_terminal_shows_it_where_asked_as_the_pods_log_is():
    """The kept tail keeps each progress line's carriage returns: the terminal view collapses a
    redrawn line to its last state, the plain view breaks it at each ``\\r``, as for a pod's log."""
    launch = TrialLaunch("demo", "u1", 3, 1, "demo-3", ["true"], {}, ".", timeout=None)
    text, whole = kept_text([b"starting\n1%\r50%\r100%\r\n", b"done\n"], asked=10)
    assert (text, whole) == ("starting\n1%\r50%\r100%\r\ndone\n".replace("\r\n", "\n"), True)
    reads = StreamedLogReads(lost, lambda launch: KeptTail(text, "deleted Job demo-3", whole))
    note_line = "[katuna: attempt 1's log, kept when katuna deleted Job demo-3 as the trial ended]\n"
    assert "".join(reads.ends(launch, 1000, 1000, overwrite=True)) == note_line + "starting\n100%\ndone\n"
    assert "".join(reads.ends(launch, 1000, 1000)) == note_line + "starting\n1%\n50%\n100%\ndone\n"
    assert reads.window(launch, 0, 1000).text == note_line + "starting\n100%\ndone\n"


def _stamped(second: int, text: str) -> str:
    return f"2027-01-01T00:00:{second:02d}.000000000Z {text}\n"


def test_a_read_from_a_mark_adds_only_the_lines_after_it_or_none_when_it_may_miss_some():
    """Lines written together share their time: those the mark covers are told by their rank
    within it. A read whose first line is later than the mark may have missed lines (the log
    rotated, the node's clock ahead), and the window is read from its offset instead."""
    at = written_at("2027-01-01T00:00:05.000000000Z")
    mark = LogMark("pod", 0, at, 2)
    read = LiveRead([_stamped(4, "a"), _stamped(5, "b"), _stamped(5, "c"), _stamped(5, "d"), _stamped(6, "e")], False)
    assert after_mark(read, mark, 100) == Followed("d\ne\n", LogMark("pod", 0, at + 10**9, 1), False)
    assert after_mark(read, mark, 2) == Followed("d\n", LogMark("pod", 0, at, 3), True), "a line past the limit waits"
    assert after_mark(LiveRead(read.lines[4:], False), mark, 100) is None
    assert after_mark(LiveRead(read.lines[:3], True), mark, 100) is None, "cut before reaching past the mark"
    assert after_mark(LiveRead(read.lines[:3], False), mark, 100) == Followed("", mark, False)
    assert LogMark.parse(mark.token()) == mark and LogMark.parse("pod.0.x.1") is None
