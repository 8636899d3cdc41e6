"""What the ``katuna`` commands share: the consoles, the common options, the settings and the
database a command works on, and how a command fails."""

from __future__ import annotations

import io
import os
import shlex
import sys
import textwrap
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console, ConsoleDimensions

from functions.adapters.local_outputs import check_log_dir
from functions.adapters.sqlite_errors import check_creatable, check_file
from functions.adapters.sqlite_store import SqliteStore
from functions.blas_threads import load_numpy_with_one_blas_thread, one_blas_thread
from functions.cli_flags import OptionsOnce
from functions.core.errors import KatunaError, LogsUnavailable, StudyNotFound
from functions.core.records import StudyRecord
from functions.core.strict_json import dumps
from functions.interrupts import loading
from functions.settings import Settings
from functions.terminal import UNBOUNDED, markup


class _Console(Console):
    """A rich console whose reader may go away (``katuna run ... | head``, a pager quit): what
    is printed from then on goes to /dev/null, and the command goes on to end with the status
    its work earned (the README's exit codes). rich's own answer to a broken pipe is exit 1,
    which reads as a failed study."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        nowhere = os.open(os.devnull, os.O_WRONLY)
        os.dup2(nowhere, self.file.fileno())
        os.close(nowhere)

    @property
    def size(self) -> ConsoleDimensions:
        """rich's size, but :data:`~functions.terminal.UNBOUNDED` wide where the output is no
        terminal (a pipe, a file) and ``COLUMNS`` gives no width: no table cell is cut there to
        the width of a terminal the output never reaches, so ``katuna studies | grep NAME``
        finds a long name whole."""
        size = super().size
        if self.is_terminal or self._width is not None or os.environ.get("COLUMNS", "").isdigit():
            return size
        return ConsoleDimensions(UNBOUNDED, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        """A size set is kept, as rich keeps it, whatever the output."""
        self._width, self._height = new_size


console = _Console(emoji=False, highlight=False)
errors = _Console(stderr=True, emoji=False, highlight=False)
"""Neither turns ``:name:`` codes into emoji nor colours what looks like a number, a string or a
bracket: values are data (a parameter value ``:-1:``, an address ``127.0.0.1:-1:``, a reason)
and are printed as they are (:mod:`functions.terminal`); only katuna's own markup styles a line."""


def _db_path(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """``--db``: a path, given at all; an empty one (``--db "$DB"`` with the variable unset) would
    name the current folder, and the command would speak of a database ``.``."""
    if value is not None and not value.strip():
        raise click.BadParameter(f"expected the path of an SQLite database file, got {value!r}")
    return value


db_option = click.option("--db", type=click.Path(dir_okay=False), default=None, metavar="PATH", callback=_db_path,
                         help="SQLite database (default: $KATUNA_DB or ./katuna.db).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def warn(message: str) -> None:
    errors.print(f"[yellow]warning:[/yellow] {markup(message)}", highlight=False)


def warn_if_root() -> None:
    """A study's commands run as the user katuna runs as: as root, every trial has the whole
    machine, and can read the service's memory (its token with it)."""
    if os.geteuid() == 0:
        warn("katuna runs as root, so every trial's command runs as root too, able to read this process's memory "
             "and environment: run it as an unprivileged user")


def warn_of_executor(settings: Settings) -> None:
    """``katuna run`` runs every trial as a process here, whatever ``KATUNA_EXECUTOR`` says: one
    set to ``kubernetes`` (as ``katuna stop`` of a study whose trials are Jobs needs it) is
    answered with a warning before any trial starts, not with processes where Jobs were meant."""
    if settings.runs_jobs:
        warn("KATUNA_EXECUTOR=kubernetes is katuna serve's setting: katuna run runs every trial as a process on this "
             "machine. To run the trials as Kubernetes Jobs, submit the study to katuna serve --executor kubernetes "
             "(POST /studies)")


def escape_what_the_output_cannot_encode() -> None:
    """Where the standard output or error takes an encoding other than UTF-8 (a Latin-1 locale,
    ``PYTHONIOENCODING=ascii``), a character it has no byte for is written as its escape
    (``\\u65e5``) instead of ending the command with a traceback: a study's description, a
    parameter's value or a path may hold any character."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


def settings_for(db: str | None) -> Settings:
    return Settings.from_env().with_db(db)


def on_database(settings: Settings) -> str:
    """The ``--db`` that a command katuna tells the user to run next needs to reach the database
    of ``settings``: none where it is the one that command finds by itself (``KATUNA_DB``, else
    ``./katuna.db``: :attr:`Settings.found_db`, read with the rest; the same file through a link
    too), so that a hint followed as printed never reads another database, nor another study of
    the same name."""
    if settings.found_db.resolve() == settings.db.resolve():
        return ""
    return f" --db {shlex.quote(str(settings.db))}"


def existing_db(db: str | None) -> Path:
    """The database a command that only reads (or stops) studies uses; exit 2 when there is
    none: opening it would create an empty one, and a mistyped ``--db`` would then look like
    a database whose studies are gone. An empty file is none either: it is left empty."""
    path = settings_for(db).db
    check_file(path)
    if not path.exists() or path.stat().st_size == 0:
        empty = ": the file is empty" if path.exists() else ""
        fail(f"no database at {path.absolute()}{empty} (give --db PATH or set KATUNA_DB; katuna run or katuna "
             "serve creates it)", 2)
    return path


def fail(message: str, code: int = 1) -> NoReturn:
    errors.print(f"[red]error:[/red] {markup(message)}", highlight=False, soft_wrap=True)
    sys.exit(code)


def print_json(value: Any) -> None:
    """``value`` as strict JSON: NaN and the infinities by name (:mod:`functions.core.strict_json`)."""
    with writing_output():
        click.echo(dumps(value, indent=2, default=str))


def print_json_list(items: Iterable[Any]) -> None:
    """``items`` as the JSON list :func:`print_json` prints, written an item at a time, so a
    list of any length never has to be held whole."""
    with writing_output():
        first = True
        for item in items:
            click.echo(("[\n" if first else ",\n") + textwrap.indent(dumps(item, indent=2, default=str), "  "), nl=False)
            first = False
        click.echo("[]" if first else "\n]")


def print_text(chunks: Iterable[str]) -> None:
    """``chunks`` of text written to standard output as they come (a CSV export of any length)."""
    with writing_output():
        for chunk in chunks:
            click.echo(chunk, nl=False)


@contextmanager
def writing_output() -> Iterator[None]:
    """Output written to standard output: a reader that went away ends the output, not the
    command (as :class:`_Console`), and so does a standard output closed before the command
    started (``>&-``: Python's ``sys.stdout`` is None, to which rich and click write nothing);
    a disk that is full fails the command with exit 2, in a line."""
    try:
        yield
        if sys.stdout is not None:
            sys.stdout.flush()
    except BrokenPipeError:
        console.on_broken_pipe()
    except OSError as exc:
        console.on_broken_pipe()
        fail(f"cannot write the output: {exc.strerror or exc}", 2)


def tell(message: str) -> None:
    """A line on stderr, if there is still somewhere to write it (a hung-up terminal is gone)."""
    with suppress(OSError):
        errors.print(message, highlight=False, soft_wrap=True)


class Command(OptionsOnce):
    """A katuna command whose ``--help`` fails as its output does (:func:`writing_output`): a
    full disk ends it with exit 2 and a line, not a traceback; a reader gone away (``| head``)
    ends it, done, as it ends any command's output. An option given twice is a usage error
    (:class:`~functions.cli_flags.OptionsOnce`)."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        with writing_output():
            return super().make_context(info_name, args, parent, **extra)
        raise click.exceptions.Exit(0)


class ReadingCommand(Command):
    """A command that reads (or prints) what is stored and starts no process: it loads neither
    Optuna nor NumPy unless what it reads needs them (a Pareto front), and then NumPy with one
    BLAS thread (:func:`~functions.blas_threads.one_blas_thread`, held while it runs: no process
    of its own would inherit it)."""

    def invoke(self, ctx: click.Context) -> Any:
        with one_blas_thread():
            return super().invoke(ctx)


class TuningCommand(Command):
    """A command that asks, runs, stops or serves studies with Optuna: NumPy is loaded with one
    BLAS thread (:mod:`functions.blas_threads`) and Optuna with its INFO lines ("A new study
    created") silenced, which are not katuna's, before it runs; Ctrl-C meanwhile ends it as it
    ends one running (:func:`~functions.interrupts.loading`)."""

    def invoke(self, ctx: click.Context) -> Any:
        with loading():
            load_numpy_with_one_blas_thread()
            import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return super().invoke(ctx)


def open_store(db: str | None) -> SqliteStore:
    """The existing database's store, which waits at most ``KATUNA_BUSY_TIMEOUT`` for another
    writer (reading needs no wait)."""
    settings = settings_for(db)
    return SqliteStore(existing_db(db), settings.busy_timeout, network=settings.network_rule(service=False))


def with_study(db: str | None, name: str) -> tuple[SqliteStore, StudyRecord]:
    """The existing database's store and the study ``name`` in it; exit 1 naming the database
    when the study is not there (exit 2 when the database cannot be read now)."""
    store = open_store(db)
    try:
        return store, store.get_study(name)
    except KatunaError as exc:
        store.close()
        fail(looked_in(exc, store.path, name), failure_code(exc))


def failure_code(exc: KatunaError) -> int:
    """A command's exit code for an error: 2 for the database's (busy past the timeout, or
    unusable), which trying again later or fixing the setup may cure; 1 for the study's."""
    return 2 if exc.retryable else 1


def looked_in(exc: KatunaError, db: Path, name: str) -> str:
    """The error, naming the database when the study ``name`` is not in it (the wrong one,
    perhaps), and saying so when ``name`` is a file's path (:func:`_given_a_file`)."""
    if not isinstance(exc, StudyNotFound):
        return str(exc)
    return f"{exc} in {db.absolute()}{_given_a_file(name)}"


def _given_a_file(name: str) -> str:
    """A hint for a study file given where a command takes a study's name (``katuna show
    study.yaml``): the commands but ``run``, ``convert`` and ``render`` take the name, and the
    file's own, where it reads as a mapping with one, is the name to give. Empty where ``name``
    is no regular file."""
    if not os.path.isfile(name):
        return ""
    defined = _defined_name(name)
    which = f"it defines the study {defined!r}" if defined else "it defines no study name katuna could read"
    return (f"; {name} is a file: this command takes a study's name, not its file ({which}; `katuna studies` "
            "lists the stored studies)")


def _defined_name(path: str) -> str | None:
    """The name the study file at ``path`` gives its study: its ``name``, or a Katib
    Experiment's, StudyJob's or katuna resource's ``metadata.name``; None where the file cannot
    be read as a mapping with one. Read within the default ``KATUNA_MAX_BODY``, in the bounds a
    study file is read in (:mod:`functions.core.bounded_yaml`)."""
    import yaml

    from functions.core import bounded_yaml
    from functions.userfiles import read_text

    try:
        data = bounded_yaml.load(read_text(path, Settings.max_body, "a YAML or JSON text file"))
    except (KatunaError, yaml.YAMLError):
        return None
    if not isinstance(data, dict):
        return None
    metadata = data.get("metadata")
    named = data.get("name") if "name" in data else metadata.get("name") if isinstance(metadata, dict) else None
    return named if isinstance(named, str) and named else None


Opened = TypeVar("Opened")


def opened_beside_logs(settings: Settings, opening: Callable[[], Opened],
                       closing: Callable[[Opened], None] = lambda opened: None) -> Opened:
    """What ``opening`` opens on the database, the trial-log folder checked too (its
    :class:`LogsUnavailable` names it), in the order that leaves nothing behind a refusal: a
    database that exists is opened first (``closing`` it where the folder is refused), so one
    that is not katuna's is refused before a folder is made beside it; a new one is made only
    after, its folder proved writable first (a read-only one is named as the database's)."""
    if not settings.db.exists():
        check_creatable(settings.db)
        check_log_dir(settings.logs)
        return opening()
    opened = opening()
    try:
        check_log_dir(settings.logs)
    except LogsUnavailable:
        closing(opened)
        raise
    return opened
