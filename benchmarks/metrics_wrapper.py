"""How long the File collector's wrapper on Kubernetes takes to copy a metrics file to the log.

The wrapper (:data:`functions.core.file_collector.WRAPPER`) is run by this machine's ``sh``
around ``cp source m.log``: it follows ``m.log`` while the command runs and prints it whole once
the command ended, a copy each. Two ways: with ``ls``, ``tail`` and ``awk`` on its ``PATH`` (the
block copy, as an image with busybox or GNU coreutils runs it), and with ``sleep`` alone (the
shell's own copy, a ``read`` builtin that reads a byte per system call, as every image ran it
before). Timed is the wrapper from start to exit; counted are the read system calls of it and
of all it ran (``syscr`` of ``/proc/PID/io`` of a shell that waited for it).

Ends with ``block_s=`` and ``shell_s=`` (medians), ``block_reads=``, ``shell_reads=`` and
``megabytes=``.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import report

from functions.core.file_collector import WRAPPER, final_lines

NAME = "metrics_wrapper"
LINE = "loss={:.6f} step={} lr=0.001 accuracy=0.912345 epoch=12\n"
"""A line of the metrics file: a report as a training loop prints one each step."""


def metrics_file(path: Path, megabytes: float) -> int:
    """A metrics file of about ``megabytes`` MB at ``path``; its number of lines."""
    count = int(megabytes * 1e6 / len(LINE.format(0.5, 100_000)))
    path.write_text("".join(LINE.format(i / count, i) for i in range(count)))
    return count


def copy(folder: Path, path: str, count: int) -> tuple[float, int]:
    """Seconds the wrapper takes to copy the file twice, and the read system calls it made."""
    (folder / "m.log").unlink(missing_ok=True)
    outer = "\"$@\"; echo; cat /proc/$$/io"
    start = time.perf_counter()
    shell = shutil.which("sh") or "/bin/sh"
    done = subprocess.run([shell, "-c", outer, "outer", shell, "-c", WRAPPER, "katuna-metrics-file", "m.log",
                           "cp", "source.log", "m.log"], cwd=folder, env={"PATH": path},
                          capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    lines = done.stdout.splitlines()
    if len(list(final_lines(lambda: lines))) != count:
        raise SystemExit("the wrapper's end copy is not the whole file")
    return seconds, int(next(line.split()[1] for line in lines if line.startswith("syscr:")))


def shell_only(folder: Path) -> str:
    """A ``PATH`` holding ``sleep``, ``cp`` and ``cat`` alone: no ``ls``, ``tail`` nor ``awk``."""
    bare = folder / "bare-bin"
    bare.mkdir(exist_ok=True)
    for tool in ("sleep", "cp", "cat"):
        found = shutil.which(tool)
        if found is None:
            raise SystemExit(f"no {tool} on this machine")
        (bare / tool).unlink(missing_ok=True)
        (bare / tool).symlink_to(found)
    return str(bare)


def main(argv: list[str] | None = None) -> int:
    parser = report.arguments(__doc__, "a 0.2 MB file, 2 runs of each (a smoke run)")
    parser.add_argument("--mb", type=float, default=14.0, help="the metrics file's size in MB")
    parser.add_argument("-r", "--repeats", type=int, default=3, help="runs of each; the median counts")
    args = report.parsed(parser, argv)
    megabytes, repeats = (0.2, 2) if args.quick else (args.mb, args.repeats)
    runs: dict[str, list[float]] = {"block": [], "shell": []}
    reads: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        count = metrics_file(folder / "source.log", megabytes)
        paths = {"block": "/usr/local/bin:/usr/bin:/bin", "shell": shell_only(folder)}
        for _ in range(repeats):
            for way, path in paths.items():
                seconds, reads[way] = copy(folder, path, count)
                runs[way].append(seconds)
    figures = {"block_s": statistics.median(runs["block"]), "shell_s": statistics.median(runs["shell"]),
               "block_reads": reads["block"], "shell_reads": reads["shell"], "megabytes": megabytes}
    report.repeated_runs(NAME, runs, figures, args.out, f"a {megabytes:g} MB metrics file copied by the wrapper")
    report.lines(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
