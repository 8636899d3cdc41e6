"""The live progress display of ``katuna run``: trials done, failed, running, best, elapsed.

The study's name and the metric's name are shown escaped: rich renders these columns as markup.
"""

from __future__ import annotations

from contextlib import suppress

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from functions.core.ports import Store
from functions.core.spec import Study
from functions.terminal import markup


class StudyProgress:
    """A rich progress bar fed from the store on every broker tick."""

    def __init__(self, console: Console, store: Store, spec: Study) -> None:
        self._store = store
        self._spec = spec
        self._progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"), TextColumn("{task.fields[best]}"), TimeElapsedColumn(),
            console=console,
        )
        self._task = self._progress.add_task(markup(spec.name), total=spec.max_trials, counts="", best="")

    def __enter__(self) -> StudyProgress:
        self._progress.start()
        self.update()
        return self

    def __exit__(self, *exc: object) -> None:
        """Show the final counts; a terminal that hung up (SIGHUP) takes nothing more, and the
        run still has its trials to stop."""
        self.update()
        with suppress(OSError):
            self._progress.stop()

    def update(self) -> None:
        counts = self._store.count_trials(self._spec.name)
        text = f"done {counts.complete} · failed {counts.failed} · pruned {counts.pruned} · running {counts.running}"
        best = ""
        if not self._spec.multi_objective:
            top = self._store.best_trials(self._spec.name, 1)
            if top and top[0].values:
                best = markup(f"best {self._spec.objectives[0].metric}={top[0].values[0]:.6g}")
        self._progress.update(self._task, completed=counts.finished, counts=text, best=best)
