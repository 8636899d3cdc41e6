"""A local trial reporting faster than its pace has steps passed over, but never one its study's
rule needs: medianstop judges a trial at its ``start_step``-th step on the best of all of them,
so each of those is reported, in order, however fast the trial prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import study_definition

from functions.adapters.local_pace import BURST
from functions.adapters.local_progress import ProgressReports
from functions.adapters.local_run import LocalRun
from functions.core.events import Event
from functions.core.launch import first_launch
from functions.core.validate import parse_study

PRINTED = 300


def _reported(tmp_path: Path, early_stopping: dict[str, object]) -> list[int]:
    """The steps reported of a real trial process printing :data:`PRINTED` losses at once, its
    pace's clock standing still (the burst spent, nothing more goes until the output ends)."""
    spec = parse_study(study_definition(earlyStopping=early_stopping))
    launch = first_launch(spec)
    assert launch.progress is not None
    published: list[Event] = []
    script = f"for i in range({PRINTED}): print(f'loss={{1 / (i + 1)}}')"
    run = LocalRun(launch, subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE))
    try:
        ProgressReports(published.append, clock=lambda: 0.0).stream(run, (tmp_path / "log").open("wb"),
                                                                   launch.progress)
    finally:
        run.started.wait(60)
    return [event.data["step"] for event in published]


def test_a_fast_trial_reports_every_step_up_to_the_one_medianstop_judges_it_at_then_the_latest(tmp_path: Path):
    steps = _reported(tmp_path, {"algorithm": "medianstop", "settings": {"start_step": 250}})
    assert steps == [*range(1, 251), PRINTED]


def test_a_rule_judging_as_it_goes_gets_the_burst_then_the_latest_step(tmp_path: Path):
    steps = _reported(tmp_path, {"algorithm": "median"})
    assert steps == [*range(1, BURST + 1), PRINTED]
