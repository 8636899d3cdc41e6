"""How many trials Optuna's storage holds for one study, against ``KATUNA_MAX_HISTORY``.

Each study keeps its Optuna state in a journal of its own, and a process loads all of that study's
(a snapshot of its trials, and the records after it) the first time it serves the study: its
next suggestion, a pruning decision. Other studies, deleted ones included, cost it
nothing. That load grows with the study's trials, and past some size it outlasts the 60 s a
``katuna serve`` worker is given. A study is therefore refused at submission when its
``maxTrials`` would take its history past the limit, and so is an ended Katib Experiment
restarted with a raised ``maxTrialCount`` whose added trials would; a study without
``maxTrials`` (ended by ``timeBudget``, a goal or the grid) is refused when its history is full,
and otherwise ends once it has made the trials that fit (:mod:`functions.core.trial_cap`).
What a load costs grows with each trial's values too, which
:mod:`functions.core.history_cells` bounds likewise (``KATUNA_MAX_HISTORY_CELLS``).

A dashboard's chart reads the study's history too (a copy of its own, which a worker keeps
for its charts), and what that read costs grows with each trial's values (its parameters,
intermediate values and objective values) as much as with its trials: 4,000 trials of 256
parameters took 13 s of CPU and 680 MB. So a chart reads at most :data:`CHART_CELLS` values of
one study's history, from its start, and a chart drawn from a history cut there says so.
"""

from __future__ import annotations

from functions.core.counted import counted
from functions.core.errors import Problem
from functions.core.limits import PREFIX

LOAD_SECONDS = 1.2e-4
"""About how long one trial of a study's history holds up a fresh process on a busy two-core
machine (12.4 s for the first trial of a study behind 100,000 trials, when every study's history
was loaded): ``benchmarks/history_load.py``."""

CHART_CELLS = 250_000
"""The most values a chart reads of one study's Optuna history: about 3 s of CPU and 80 MB
whatever the study's shape (``benchmarks/history_load.py``), the first 40,000 or so trials of a
study of three parameters, the first 965 of one of 256. A journal record is one value, and a
trial created whole (a warm start's known results) one more for each parameter, intermediate
value, attribute and objective value it holds."""


def history_problem(held: int, max_trials: int | None, limit: int, made: int = 0, known: int = 0) -> Problem | None:
    """Why a study of ``max_trials`` (None: no bound of its own) whose Optuna history holds
    ``held`` trials, ``made`` of them katuna's (0 for a new one, those of its earlier runs for a
    restarted one), and to which its warm start adds ``known`` results as trials of their own,
    does not fit under ``limit``; None when it fits."""
    added = None if max_trials is None else max(max_trials - made, 0)
    before = held + known
    if before < limit and (added is None or before + added <= limit):
        return None
    room = max(limit - before, 0)
    return Problem("maxTrials", f"a study's Optuna history holds at most {counted(limit, 'trial', ',')} (set by "
                                f"{PREFIX}MAX_HISTORY), and {_asked(max_trials, made, held, room, known)}: every "
                                f"process that serves the study first loads its whole history, {load_time(limit)} at "
                                f"the limit. Run it as several studies of at most {counted(limit, 'trial', ',')} (warmStart carries "
                                "the results of one into the next)")


def load_time(trials: int) -> str:
    """About how long a fresh process takes to load a history of ``trials``, in words: a limit
    set low for a small machine or a test loads in well under a second, never "about 0 s"."""
    seconds = trials * LOAD_SECONDS
    return "under a second" if seconds < 0.5 else f"about {seconds:.0f} s"


WARNED_STUDIES = 10
"""How many studies past the limit the warning at start names (the largest; the rest counted)."""


def history_warning(over: list[tuple[str, int]], count: int, limit: int) -> str | None:
    """What to tell the operator of a database in which studies' histories are past ``limit``
    already (grown under a raised limit, or by studies with no ``maxTrials`` that an earlier
    katuna did not cap): ``count`` of them,
    the largest ``over`` (``(name, trials)``, largest first); None when there are none."""
    if not over:
        return None
    name, held = over[0]
    cost = (f"({load_time(held)}{' for the largest' if count > 1 else ''}) the first time it serves "
            "that study, and gunicorn kills a worker busy for 60 s; other studies load only their own")
    if count == 1:
        return (f"the study {name!r} holds {held:,} trials in its Optuna history, past {PREFIX}MAX_HISTORY "
                f"({limit:,}): each worker loads all of them {cost}")
    return (f"{count:,} studies hold more trials in their Optuna history than {PREFIX}MAX_HISTORY ({limit:,}): "
            f"{named_studies(over, count)}; each worker loads a study's whole history {cost}")


def named_studies(over: list[tuple[str, int]], count: int) -> str:
    """The studies ``over`` with their sizes, and how many more of the ``count`` went unnamed."""
    named = ", ".join(f"{name!r} ({held:,})" for name, held in over)
    return named + (f" and {count - len(over):,} more" if count > len(over) else "")


def _asked(max_trials: int | None, made: int, held: int, room: int, known: int) -> str:
    if known:
        return _taken(max_trials, held, room, known)
    if room == 0:
        return f"this study's holds {held:,}"
    if made and max_trials is not None:
        return (f"this study, restarted with maxTrials {max_trials:,} after {counted(made, 'trial', ',')}, may add "
                f"{max_trials - made:,} (maxTrials) where {room:,} fit")
    if held:
        return f"this study's holds {held:,} and it may add {max_trials:,} (maxTrials) where {room:,} fit"
    return f"this study may create {max_trials:,} (maxTrials)"


def _taken(max_trials: int | None, held: int, room: int, known: int) -> str:
    """What a study whose warm start adds ``known`` results to its history asks of it, in words."""
    subject = f"this study's holds {held:,} and it" if held else "this study"
    takes = f"{subject} takes {known:,} known result{'' if known == 1 else 's'} (warmStart) as trials of its history"
    if room == 0 or max_trials is None:
        return takes
    return f"{takes} and may create {max_trials:,} (maxTrials) where {room:,} fit"
