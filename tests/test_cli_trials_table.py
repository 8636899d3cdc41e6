"""``katuna trials`` as a table: a study of more trials than :data:`HELD` is printed a page at a
time in the widths its rows were measured in, in the memory of a bounded number of trials at
any study size, and reads the same as the table of all its trials held at once."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import study_definition
from http_helpers import run_katuna
from rich.console import Console

from functions.cli_trial_table import HELD, trial_table
from functions.core.records import COMPLETE, FAILED, RUNNING, StudyRecord, TrialRecord
from functions.core.validate import parse_study
from functions.runtime import Runtime
from functions.settings import Settings

TRIALS = 6 * HELD + 7
PARAMETERS = [{"name": "x", "type": "float", "min": -5.0, "max": 5.0},
              {"name": "kernel", "type": "categorical", "values": ["poly", "rbf", "a-kernel-of-a-long-name"]}]


def _trial(study: str, number: int, reasons: bool) -> TrialRecord:
    """A trial; the widest cells (a long reason, a long kernel) are among the last, past the
    trials a table holds."""
    kernel = "a-kernel-of-a-long-name" if number == TRIALS - 2 else ("poly", "rbf")[number % 2]
    if reasons and number % 1000 == 999:
        reason = "exited with code 1; last lines:\nValueError: " + "word " * (number // 1000)
        return TrialRecord(study, number, {"x": number / 997, "kernel": kernel}, FAILED, reason=reason)
    state = RUNNING if number == TRIALS - 1 else COMPLETE
    return TrialRecord(study, number, {"x": number / 997, "kernel": kernel}, state,
                       values=None if state == RUNNING else [number / 7], metrics={"acc": number / 3})


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> Iterator[tuple[Path, dict[str, tuple[StudyRecord, list[TrialRecord]]]]]:
    """Two finished studies of :data:`TRIALS` trials, one with failures' reasons, one with none."""
    base = tmp_path_factory.mktemp("table")
    runtime = Runtime(Settings(db=base / "katuna.db"))
    store = runtime.store()
    studies = {}
    for name, reasons in (("reasons", True), ("plain", False)):
        definition = study_definition(name=name, maxTrials=TRIALS, parameters=PARAMETERS, objective={
            "metric": "loss", "direction": "minimize", "additionalMetrics": ["acc"]})
        definition["trialTemplate"]["env"] = {"KERNEL": "${trialParameters.kernel}"}
        record = StudyRecord(parse_study(definition), definition, str(base), f"uid-{name}", status="completed")
        store.add_study(record)
        trials = [_trial(name, number, reasons) for number in range(TRIALS)]
        with store.transaction():
            for trial in trials:
                store.add_trial(trial)
        studies[name] = (record, trials)
    runtime.close()
    yield base / "katuna.db", studies


def _held(record: StudyRecord, trials: list[TrialRecord], width: int) -> str:
    out = io.StringIO()
    Console(file=out, width=width, emoji=False, highlight=False).print(trial_table(record, trials))
    return out.getvalue()


@pytest.mark.parametrize("name", ["reasons", "plain"])
@pytest.mark.parametrize("width", [200, 60])
def test_a_table_of_more_trials_than_held_reads_as_the_table_of_all_of_them(stored, name: str, width: int):
    db, studies = stored
    result = run_katuna("trials", name, "--db", str(db), cwd=db.parent, env={**os.environ, "COLUMNS": str(width)},
                        timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout == _held(*studies[name], width)


TRACED = """
import sys, tracemalloc
tracemalloc.start()
import functions.entry
from functions.cli import main
try:
    main(sys.argv[1:], prog_name="katuna")
except SystemExit as exc:
    assert exc.code == 0, exc.code
sys.stdout.flush()
print(tracemalloc.get_traced_memory()[1], file=sys.stderr)
"""
"""The command, in a process of its own, then the most memory Python held meanwhile on stderr."""


def _peak(db: Path, *options: str) -> int:
    """The most memory Python held while ``katuna trials reasons`` ran, in a process of its own."""
    result = subprocess.run([sys.executable, "-c", TRACED, "trials", "reasons", "--db", str(db), *options],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    return int(result.stderr.splitlines()[-1])


def test_a_table_of_many_trials_is_printed_in_the_memory_of_the_table_of_those_it_holds(stored):
    """Held whole, the study's trials would take about three times what a table of :data:`HELD`
    of them does."""
    db, _ = stored
    assert _peak(db) < 1.2 * _peak(db, "--limit", str(HELD))
