"""``katuna logs`` to a terminal writes what draws a trial's log (its text, carriage returns,
colours, cursor moves) and nothing else a terminal acts on: no window title, clipboard write,
hidden link, mode change, question the terminal would answer into the shell's input, or switch
of character set, however the log's chunks cut them. To a pipe it writes the log byte for byte."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import tty
from pathlib import Path

import yaml
from conftest import run_file, study_definition
from http_helpers import run_katuna

from functions.core.terminal_safe import TerminalSafe, for_terminal

KATUNA = [str(Path(sys.executable).with_name("katuna"))]

HOSTILE = (b"\x1b[1;31mred\x1b[0m text\n"
           b"title \x1b]0;owned\x07 clipboard \x1b]52;c;cm0gLXJmIH4=\x1b\\ done\n"
           b"link \x1b]8;;https://elsewhere.example/\x1b\\click\x1b]8;;\x1b\\ here\n"
           b"asks \x1b[6n \x1b[21t \x1b[c \x1bP$q\"p\x1b\\ \x1b[?1000h \x1b[?1049h \x1bc answered\n"
           b"shift \x0e out \x0f in \x05 \x07 \xc2\x9b31m c1 \xc2\xa0nbsp \xe2\x96\x88 bar\n"
           b"epoch 1 10%\r\x1b[2K\x1b[1A\x1b[1Bepoch 1 100%\tloss=0.5\x08\n")

SHOWN = (b"\x1b[1;31mred\x1b[0m text\n"
         b"title  clipboard  done\n"
         b"link click here\n"
         b"asks        answered\n"
         b"shift  out  in   31m c1 \xc2\xa0nbsp \xe2\x96\x88 bar\n"
         b"epoch 1 10%\r\x1b[2K\x1b[1A\x1b[1Bepoch 1 100%\tloss=0.5\x08\n")


def test_a_terminal_gets_what_draws_the_log_and_nothing_it_would_act_on():
    assert b"".join(for_terminal([HOSTILE])) == SHOWN


def test_a_sequence_cut_between_chunks_is_left_out_as_a_whole_one_is():
    for cut in range(1, len(HOSTILE)):
        assert b"".join(for_terminal([HOSTILE[:cut], HOSTILE[cut:]])) == SHOWN, f"cut at byte {cut}"
    assert b"".join(for_terminal(HOSTILE[at:at + 1] for at in range(len(HOSTILE)))) == SHOWN


def test_a_string_sequence_is_left_out_as_it_comes_however_long():
    safe = TerminalSafe()
    assert safe.feed(b"before \x1b]52;c;") == b"before "
    assert all(safe.feed(b"A" * 65536) == b"" for _ in range(64))
    assert safe.feed(b"\x1b") == b""
    assert safe.feed(b"\\after\n") == b"after\n"


def _logs_to_a_terminal(folder: Path, *args: str) -> bytes:
    """What ``katuna logs`` wrote to a pseudo-terminal that does no output processing."""
    controller, terminal = pty.openpty()
    tty.setraw(terminal)
    try:
        process = subprocess.Popen([*KATUNA, "logs", *args], cwd=folder, stdout=terminal)
        os.close(terminal)
        drawn = b""
        while piece := _read(controller):
            drawn += piece
        assert process.wait(timeout=60) == 0
    finally:
        os.close(controller)
    return drawn


def _read(controller: int) -> bytes:
    try:
        return os.read(controller, 65536)
    except OSError:  # EIO: the writer has gone
        return b""


def test_katuna_logs_to_a_terminal_leaves_out_what_the_terminal_would_act_on_and_to_a_pipe_writes_the_log(
        tmp_path: Path):
    (tmp_path / "hostile.bin").write_bytes(HOSTILE)
    printing = f"import sys; sys.stdout.buffer.write(open({str(tmp_path / 'hostile.bin')!r}, 'rb').read())"
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(study_definition(maxTrials=1, parallelism=1, trialTemplate={
        "command": [sys.executable, "-c", printing, "${trialParameters.x}"]})))
    run_file(study)
    log = next((tmp_path / "katuna-logs" / "demo").glob("*/0.1.log")).read_bytes()
    assert log == HOSTILE
    assert run_katuna("logs", "demo", "0", cwd=tmp_path, timeout=60, stdout=tmp_path / "piped").returncode == 0
    assert (tmp_path / "piped").read_bytes() == HOSTILE, "to a pipe or a file, the log byte for byte"
    assert _logs_to_a_terminal(tmp_path, "demo", "0") == SHOWN
    assert _logs_to_a_terminal(tmp_path, "demo", "0", "--terminal") == SHOWN.replace(
        b"epoch 1 10%\r\x1b[2K", b"\x1b[2K"), "a line redrawn shows its last state"
