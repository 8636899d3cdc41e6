"""The progress line of ``katuna run`` as a terminal of a given width shows it: one line that
fits, the trials finished and the elapsed time always whole, the rest by priority."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import study_definition
from rich.console import Console

from functions.adapters.sqlite_store import SqliteStore
from functions.cli import main
from functions.cli_output import print_result
from functions.core.records import COMPLETE, FAIL, PRUNED, RUNNING, STOPPED_AT_END, StudyRecord, TrialRecord
from functions.core.validate import parse_study
from functions.progress import StudyProgress
from functions.settings import Settings

ELAPSED = re.compile(r" \d+:\d\d:\d\d$")


@pytest.fixture
def store(tmp_path: Path):
    s = SqliteStore(tmp_path / "k.db")
    yield s
    s.close()


def _study(store: SqliteStore, name: str = "quickstart") -> StudyRecord:
    """A study of 30 trials maximizing accuracy: 12 finished (9 complete, 3 failed), 2 running."""
    definition = study_definition(name=name, maxTrials=30, objective={"metric": "accuracy", "direction": "maximize"})
    record = store.add_study(StudyRecord(parse_study(definition), definition, "/tmp", uid="u"))
    for number in range(14):
        state = RUNNING if number >= 12 else FAIL if number % 4 == 0 else COMPLETE
        values = [0.9 + number / 1000] if state == COMPLETE else None
        store.add_trial(TrialRecord(name, number, {"x": 1.0}, state=state, values=values))
    return record


def _line(store: SqliteStore, record: StudyRecord, width: int, interactive: bool = True) -> str:
    """What a run's progress leaves on a console of ``width`` columns: the last view only,
    on a terminal (``interactive``) or in a pipe or a file; its spinner shown at its first frame
    (``⠋``), whichever frame the time the view took to draw had reached."""
    out = io.StringIO()
    with StudyProgress(Console(file=out, width=width, force_interactive=interactive), store, record):
        pass
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, lines
    return re.sub(r"^[\u2801-\u28ff] ", "⠋ ", lines[0])


def test_a_wide_terminal_shows_every_part(store: SqliteStore):
    line = _line(store, _study(store), 200)
    assert line.startswith("⠋ quickstart ━")
    assert line.endswith(" 12/30 done 9 · failed 3 · pruned 0 · running 2 best accuracy=0.911 0:00:00")


def test_a_pipe_or_a_file_gets_the_line_once_without_a_spinner(store: SqliteStore):
    assert _line(store, _study(store), 80, interactive=False) == \
        "quickstart 12/30 done 9 · failed 3 · running 2 best accuracy=0.911 0:00:00"


def test_an_80_column_terminal_drops_the_bar_and_the_zero_counts_before_anything_else(store: SqliteStore):
    assert _line(store, _study(store), 80) == "⠋ quickstart 12/30 done 9 · failed 3 · running 2 best accuracy=0.911 0:00:00"


def test_a_long_name_is_shortened_before_the_counts_go(store: SqliteStore):
    record = _study(store, "a-study-with-a-name-much-longer-than-its-line-has-room-for")
    assert _line(store, record, 80) == "⠋ a-study-with-a-… 12/30 done 9 · failed 3 · running 2 best 0.911 0:00:00"


@pytest.mark.parametrize("width", [100, 80, 70, 60, 50, 40, 30, 20, 15])
def test_every_width_gets_one_line_that_fits_with_the_trials_finished_and_the_elapsed_time_whole(
        store: SqliteStore, width: int):
    line = _line(store, _study(store), width)
    assert len(line) <= width
    assert " 12/30 " in f" {line}"
    assert ELAPSED.search(line), line


def test_a_study_another_process_deletes_or_replaces_mid_run_keeps_the_line_last_shown(store: SqliteStore):
    """The run's tick refreshes the line after each look; a study deleted between the two (the
    tick then ends the run, saying so), or replaced by another of its name, leaves the counts
    last shown, and no error."""
    record = _study(store)
    out = io.StringIO()
    with StudyProgress(Console(file=out, width=200), store, record) as progress:
        progress.update()
        store.delete_study(record.name)
        progress.update()
        store.add_study(StudyRecord(record.spec, record.definition, "/tmp", uid="another"))
        store.add_trial(TrialRecord(record.name, 0, {"x": 1.0}, state=COMPLETE, values=[0.123]))
    assert out.getvalue().splitlines()[-1].endswith("12/30 done 9 · failed 3 · pruned 0 · running 2 best accuracy=0.911 "
                                                    "0:00:00")


def _ended_early(store: SqliteStore) -> StudyRecord:
    """The study of :func:`_study` with a trial an early-stopping rule pruned and one its end stopped."""
    record = _study(store)
    store.add_trial(TrialRecord(record.name, 14, {"x": 1.0}, state=PRUNED, reason="pruned at step 3 by the median rule"))
    store.add_trial(TrialRecord(record.name, 15, {"x": 1.0}, state=PRUNED, reason=f"{STOPPED_AT_END} (goal reached)"))
    return record


def test_a_trial_the_studys_end_stopped_is_counted_stopped_not_pruned(store: SqliteStore, tmp_path: Path):
    """Stored ``PRUNED`` (Optuna has no other state for it), a trial stopped because its study
    ended was pruned by no rule: the progress line, ``katuna show`` and a run's summary count it
    ``stopped``, as Katib's Trial says ``Killed``, and ``pruned`` keeps the early-stopped alone."""
    record = _ended_early(store)
    assert _line(store, record, 200).endswith(" 14/30 done 9 · failed 3 · pruned 1 · stopped 1 · running 2 "
                                              "best accuracy=0.911 0:00:00")
    assert _line(store, record, 80, interactive=False) == \
        "14/30 done 9 · failed 3 · pruned 1 · stopped 1 · running 2 best 0.911 0:00:00"
    shown = CliRunner().invoke(main, ["show", record.name, "--db", str(tmp_path / "k.db")])
    assert shown.exit_code == 0, shown.output
    assert "trials: 16/30 (complete 9, failed 3, pruned 1, stopped 1, running 2, waiting 0)" in \
        " ".join(shown.stdout.split()), shown.stdout
    out = io.StringIO()
    print_result(Console(file=out, width=200), store, record, Settings(db=tmp_path / "k.db"))
    assert "Trials: 16 (9 complete, 3 failed, 1 pruned, 1 stopped as the study ended)" in out.getvalue()
