"""The File collector's wrapper shares the trial container's output with the trial itself: a
line the trial has begun and not ended (a progress bar redrawn in place, dots printed as work
goes) holds the wrapper's next line on it. Each line the wrapper prints starts with a carriage
return, where katuna's readers cut lines, so its copy of the metrics file is read whole however
the trial left its own output: its lines copied while the command runs (progress and early
stopping, the metrics where the end copy is not whole) and the end copy itself."""

from __future__ import annotations

from pathlib import Path

from wrapper_runs import streamed

from functions.core.file_collector import file_lines, final_lines
from functions.core.lines import bounded_lines

PROGRAM = """
import os, sys, time
sys.stdout.write("working"); sys.stdout.flush()
with open("m.log", "w") as f:
    f.write("loss=0.1\\n")
while not os.path.exists("copied"):
    time.sleep(0.02)
sys.stdout.write("... done\\nfinished without a line break"); sys.stdout.flush()
"""
"""Begins a line of its own output, writes its metrics file, and ends that line only once the
wrapper copied the file's line to the output (the test says so); it ends with a line begun."""


def run(tmp_path: Path) -> str:
    """The wrapper's output around :data:`PROGRAM`, read as it streams: ``copied`` is created once
    it holds the copy of the file's line."""
    return streamed(tmp_path, PROGRAM, {b"loss=0.1": "copied"})


def test_the_files_lines_are_read_though_the_trial_left_its_own_line_unended(tmp_path: Path):
    output = run(tmp_path)
    lines = [line.rstrip("\n") for line in bounded_lines([output.encode()])]
    assert list(file_lines(lines)) == ["loss=0.1"], output
    assert list(final_lines(lambda: lines)) == ["loss=0.1"], output
    shown = [line.rstrip("\n") for line in bounded_lines([output.encode()], returns=True)]
    assert shown[:2] == ["working\rkatuna-metrics-file| loss=0.1", "... done"], "a log shown keeps the trial's line"
