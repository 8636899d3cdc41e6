"""What every benchmark does with its figures: a table, a JSON file, a plot, ``name=value`` lines."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
"""Where a full-size run writes its figures: the ones docs/performance.md shows, kept in git."""
QUICK_RESULTS = Path(__file__).parent / "quick-results"
"""Where a ``--quick`` run writes unless given ``--out``: its tiny-size figures never replace the
full-size ones in :data:`RESULTS` (git ignores the folder)."""
OUT_HELP = "where results go (default benchmarks/results; with --quick, benchmarks/quick-results)"


def arguments(doc: str | None, quick: str) -> argparse.ArgumentParser:
    """The command line every benchmark starts from: its docstring as the help, ``--quick`` (a
    smoke run: what ``quick`` says) and ``--out``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--out", type=Path, default=None, help=OUT_HELP)
    return parser


def parsed(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's arguments, ``out`` the folder its results go to (:func:`out_dir`)."""
    args = parser.parse_args(argv)
    args.out = out_dir(args.out, args.quick)
    return args


def out_dir(out: Path | None, quick: bool) -> Path:
    """The folder a run writes its figures into: ``--out`` if given, else by its size."""
    return out or (QUICK_RESULTS if quick else RESULTS)


def machine() -> dict[str, Any]:
    """The machine the figures come from."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": model or platform.processor(), "python": platform.python_version()}


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A plain-text table, right-aligned numbers."""
    cells = [[h for h in headers]] + [[f"{c:.3g}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def save(name: str, result: dict[str, Any], out: Path | None = None) -> Path:
    """Write ``<name>.json`` (with the machine) into ``out`` (default ``benchmarks/results``; a
    script passes :func:`out_dir`)."""
    out = out or RESULTS
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps({**result, "machine": machine()}, indent=2, default=str))
    return path


def repeated_runs(name: str, runs: dict[str, list[float]], figures: dict[str, Any], out: Path | None,
                  title: str, rotation: int = 0) -> Path:
    """Print a table of repeated runs of measures in seconds (a row per round, a column per
    measure), save them with their ``figures``, and plot each measure's median as a bar under
    ``title`` (its names turned by ``rotation`` degrees)."""
    repeats = len(next(iter(runs.values())))
    print(table(["run", *runs], [[n + 1, *(round(v[n], 3) for v in runs.values())] for n in range(repeats)]))
    saved = save(name, {"repeats": repeats, "runs": runs, "figures": figures, "cpus": os.cpu_count()}, out)
    fig, ax = figure()
    ax.bar(list(runs), [statistics.median(values) for values in runs.values()])
    ax.set_ylabel("seconds (median)")
    ax.set_title(title)
    ax.tick_params(axis="x", labelrotation=rotation)
    save_plot(fig, name, out)
    return saved


def figure():
    """A new matplotlib figure drawn off-screen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6.4, 4.0), dpi=80)


def save_plot(fig, name: str, out: Path | None = None) -> Path:
    out = out or RESULTS
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def lines(figures: dict[str, Any]) -> None:
    """The closing ``name=value`` lines."""
    for key, value in figures.items():
        print(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
