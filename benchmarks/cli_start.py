"""How long a short ``katuna`` command takes, from its start to its exit: the list of commands
(``katuna --help``) and the list of a database's studies (``katuna studies``, on a database
holding one study), beside a bare Python started and ended (``python -c pass``), the floor
of any command.

Neither command loads Optuna or NumPy: a command's module is imported only when it is the one
asked for, and the commands that read stored studies read them without Optuna (``katuna run``
and ``katuna serve`` load it as they start).

Ends with ``python_s=``, ``cli_help_s=`` and ``cli_studies_s=``, each the median wall time.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import report
from process_exit import KATUNA, listed_database

NAME = "cli_start"


def seconds(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = report.arguments(__doc__, "2 runs of each (a smoke run)")
    parser.add_argument("-r", "--repeats", type=int, default=15, help="runs of each; the median counts")
    args = report.parsed(parser, argv)
    repeats = 2 if args.quick else args.repeats
    with tempfile.TemporaryDirectory() as name:
        commands = {"python": [sys.executable, "-c", "pass"], "cli_help": [*KATUNA, "--help"],
                    "cli_studies": [*KATUNA, "studies", "--db", str(listed_database(Path(name)))]}
        results: dict[str, list[float]] = {key: [] for key in commands}
        for _ in range(repeats):
            for key, command in commands.items():
                results[key].append(seconds(command))
    figures = {f"{key}_s": round(statistics.median(values), 4) for key, values in results.items()}
    report.repeated_runs(NAME, results, figures, args.out, "a short katuna command, start to exit")
    report.lines(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
