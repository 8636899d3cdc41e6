"""How many trials Optuna's storage holds for the whole database, against ``KATUNA_MAX_HISTORY``.

Optuna's state is one journal for the whole database, and a process loads all of it (a snapshot
of every study's trials) the first time it serves any study: a new study's first suggestion,
a chart, a pruning decision. So that load grows with every trial the database has held, deleted
studies' included, and past some size it outlasts the 60 s a ``katuna serve`` worker is given.
A new study is therefore refused at submission when the history is full, or when its
``maxTrials`` would overflow it, and so is an ended Katib Experiment restarted with a raised
``maxTrialCount`` whose added trials would; the studies already stored run on.
"""

from __future__ import annotations

from functions.core.errors import Problem
from functions.core.limits import PREFIX

LOAD_SECONDS = 1.2e-4
"""About how long one trial of the history holds up a fresh process on a busy two-core machine
(12.4 s for a new study's first trial behind 100,000): ``benchmarks/history_load.py``."""


def history_problem(held: int, max_trials: int | None, limit: int, made: int = 0) -> Problem | None:
    """Why a study of ``max_trials`` (None: no bound of its own) that has ``made`` trials already
    (0 for a new one, those of its earlier runs for a restarted one, held in the history) does
    not fit a history of ``held`` trials under ``limit``; None when it fits."""
    added = None if max_trials is None else max(max_trials - made, 0)
    if held < limit and (added is None or held + added <= limit):
        return None
    room = max(limit - held, 0)
    return Problem("maxTrials", f"this database's Optuna history holds {held:,} trials, of at most {limit:,} "
                                f"(set by {PREFIX}MAX_HISTORY), and {_asked(max_trials, made, room)}: every process "
                                f"that serves a study first loads the whole history, about "
                                f"{held * LOAD_SECONDS:.0f} s for this one. Submit the study to a new database "
                                "(katuna serve --db, katuna run --db); deleting studies does not make room, as "
                                "Optuna keeps a deleted study's trials in its history")


def history_warning(held: int, limit: int) -> str | None:
    """What to tell the operator of a database whose history is past ``limit`` already (grown by
    an older katuna, a raised limit, or studies with no ``maxTrials``); None within it."""
    if held <= limit:
        return None
    return (f"this database's Optuna history holds {held:,} trials, past {PREFIX}MAX_HISTORY ({limit:,}): "
            f"each worker loads all of them (about {held * LOAD_SECONDS:.0f} s) the first time it serves any "
            "study, and gunicorn kills a worker busy for 60 s; new studies are refused. Put new studies in a "
            "new database (--db)")


def _asked(max_trials: int | None, made: int, room: int) -> str:
    if room == 0:
        return "it is full"
    if made and max_trials is not None:
        return (f"this study, restarted with maxTrials {max_trials:,} after {made:,} trials, may add "
                f"{max_trials - made:,} (maxTrials) where {room:,} fit")
    return f"this study may add {max_trials:,} (maxTrials) where {room:,} fit"
