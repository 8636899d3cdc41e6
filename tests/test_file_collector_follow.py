"""The File collector's wrapper on Kubernetes follows the metrics file with the tools a trial
image's ``sh`` has beside it (``ls``, ``tail``, ``awk``: GNU coreutils with mawk, or busybox),
reading the file a block at a time; the wrapper runs here under each toolset the machine has. A
file truncated or replaced while the trial runs is followed again from its start, as Katib's
collector and katuna's local follower read it; an image without those tools gets the shell's own
line-by-line copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from wrapper_runs import streamed

from functions.core.file_collector import WRAPPER, file_lines, final_lines

pytestmark = pytest.mark.slow

LINES = [f"loss={i / 100_000:.6f} step={i}" for i in range(40_000)]
"""About a MiB of metrics file: a byte per read would be two million reads."""


def toolset(tmp_path: Path, name: str) -> dict[str, str]:
    """The environment of a wrapper run with ``name``'s tools: the machine's own ``sh`` and
    ``PATH``; busybox's ``sh`` and applets alone; or an image with ``sh`` and ``sleep`` alone."""
    if name == "system":
        return {"PATH": os.environ["PATH"], "SH": "sh"}
    if name == "busybox" and shutil.which("busybox") is None:
        pytest.skip("no busybox on this machine")
    folder = tmp_path / f"bin-{name}"
    folder.mkdir()
    tools = ("sh", "awk", "tail", "ls", "sleep", "cp", "cat") if name == "busybox" else ("sleep",)
    for tool in tools:
        target = shutil.which("busybox") if name == "busybox" else shutil.which(tool)
        assert target is not None
        (folder / tool).symlink_to(target)
    return {"PATH": str(folder), "SH": str(folder / "sh") if name == "busybox" else shutil.which("sh") or "sh"}


@pytest.mark.parametrize("tools", ["system", "busybox"])
def test_a_large_metrics_file_is_copied_whole_in_blocks(tmp_path: Path, tools: str):
    """A MiB of metrics file is copied whole (followed, then at the end), by a bounded number of
    reads: the count is every read of the wrapper and all it ran, from the kernel's accounting of
    the processes a parent waited for."""
    env = toolset(tmp_path, tools)
    (tmp_path / "source.log").write_text("".join(f"{line}\n" for line in LINES))
    outer = "\"$@\"; echo; cat /proc/$$/io"
    done = subprocess.run(["sh", "-c", outer, "outer", env["SH"], "-c", WRAPPER, "katuna-metrics-file", "m.log",
                           "cp", "source.log", "m.log"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert list(file_lines(lines)) == LINES
    assert list(final_lines(lambda: lines)) == LINES
    reads = int(next(line.split()[1] for line in lines if line.startswith("syscr:")))
    assert reads < 20_000, f"{reads} reads to copy {len(LINES)} lines twice"


PHASES = """
import os, sys, time

def wait_for(flag):
    deadline = time.monotonic() + 10
    while not os.path.exists(flag) and time.monotonic() < deadline:
        time.sleep(0.02)

with open("m.log", "w") as f:
    f.write("acc=0.1\\nacc=0.2\\nacc=0.3\\n")
wait_for("first")
with open("m.log", "w") as f:
    f.write("acc=0.9\\n")
wait_for("truncated")
with open("new.log", "w") as f:
    f.write("acc=0.70\\nacc=0.80\\n")
os.rename("new.log", "m.log")
"""
"""Writes the metrics file, truncates it to one shorter line once the wrapper copied the first,
then puts a new file in its place once it copied that line (the test says when, by the flags
``first`` and ``truncated``; each wait gives up after 10 s, so a wrapper that never copies a line
fails the test instead of hanging it)."""


@pytest.mark.parametrize("tools", ["system", "busybox"])
def test_a_truncated_or_replaced_file_is_followed_from_its_start(tmp_path: Path, tools: str):
    env = toolset(tmp_path, tools)
    lines = streamed(tmp_path, PHASES, {b"acc=0.3\n": "first", b"acc=0.9\n": "truncated"}, env["SH"], env,
                     timeout=120).splitlines()
    assert list(file_lines(lines)) == ["acc=0.1", "acc=0.2", "acc=0.3", "acc=0.9", "acc=0.70", "acc=0.80"]
    assert list(final_lines(lambda: lines)) == ["acc=0.70", "acc=0.80"]


def test_an_image_without_awk_gets_the_shells_own_copy(tmp_path: Path):
    """With ``sh`` and ``sleep`` alone, the file is still copied line by line, a last line
    without its line break included, and printed whole at the end."""
    env = toolset(tmp_path, "bare")
    program = ("import time\nf = open('m.log', 'w'); f.write('loss=1\\nloss=2\\nlo'); f.flush(); time.sleep(0.4)\n"
               "f.write('ss=3'); f.close()")
    done = subprocess.run([env["SH"], "-c", WRAPPER, "katuna-metrics-file", "m.log", sys.executable, "-c", program],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    lines = done.stdout.splitlines()
    assert list(file_lines(lines)) == ["loss=1", "loss=2", "loss=3"]
    assert list(final_lines(lambda: lines)) == ["loss=1", "loss=2", "loss=3"]
