"""A ``katuna`` command line that says two things where the command takes one (an option given
twice, whose last value click would keep without a word) or an empty value for what needs one
(``--db ""``, ``--host ""``, as ``"$VAR"`` with the variable unset gives them): a usage error,
exit 2, naming the option and what it expects, before anything is read or changed."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import study_definition
from http_helpers import run_katuna

from functions.core.records import COMPLETE, StudyRecord, TrialRecord
from functions.core.validate import parse_study
from functions.runtime import Runtime
from functions.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A completed study of three trials."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    store = runtime.store()
    definition = study_definition(name="demo", maxTrials=3)
    store.add_study(StudyRecord(parse_study(definition), definition, str(tmp_path), "uid-demo", status="completed"))
    with store.transaction():
        for number in range(3):
            store.add_trial(TrialRecord("demo", number, {"x": number / 10}, COMPLETE, values=[number / 7],
                                        metrics={"loss": number / 7}))
    runtime.close()
    return tmp_path / "katuna.db"


def refused(*args: str, cwd: Path) -> str:
    """The last line of what a refused command line says on stderr; it must exit 2 and print nothing."""
    result = run_katuna(*args, cwd=cwd)
    assert (result.returncode, result.stdout) == (2, ""), (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("args,words", [
    (("trials", "demo", "--limit", "1", "--limit", "2"), "Error: --limit: given 2 times; expected it once"),
    (("trials", "demo", "--order", "value", "--order", "value:desc"), "Error: --order: given 2 times; expected it once"),
    (("trials", "demo", "--after", "0", "--after", "1"), "Error: --after: given 2 times; expected it once"),
    (("show", "demo", "--db", "other.db"), "Error: --db: given 2 times; expected it once"),
    (("logs", "demo", "0", "--attempt", "1", "--attempt", "2"), "Error: --attempt: given 2 times; expected it once"),
    (("serve", "--host", "192.0.2.1", "--host", "192.0.2.2"), "Error: --host: given 2 times; expected it once"),
], ids=["trials-limit", "trials-order", "trials-after", "show-db", "logs-attempt", "serve-host"])
def test_an_option_given_twice_is_a_usage_error_naming_it_not_the_last_one_kept(db: Path, args: tuple[str, ...],
                                                                               words: str):
    """click would keep the last value; the API's listing refuses ``order`` and ``after`` given
    twice (``order: given 2 times; expected it once``): so does the command line it mirrors."""
    assert refused(*args, "--db", str(db), cwd=db.parent) == words


def test_a_plain_flag_or_a_repeatable_option_given_again_is_taken(db: Path):
    """A flag given again says the same thing; ``--state`` and ``--param`` are meant to repeat."""
    result = run_katuna("trials", "demo", "--db", str(db), "--json", "--json", "--state", "COMPLETE",
                        "--state", "FAIL", "--min", "value", "0", "--min", "number", "1", cwd=db.parent)
    assert result.returncode == 0, result.stderr
    assert '"number": 2' in result.stdout and '"number": 0' not in result.stdout


def test_delete_given_two_databases_deletes_nothing(db: Path):
    """Which database was meant is not for katuna to guess: the study stays where it is."""
    other = db.parent / "other.db"
    assert refused("delete", "demo", "--db", str(other), "--db", str(db), cwd=db.parent) == (
        "Error: --db: given 2 times; expected it once")
    assert '"name": "demo"' in run_katuna("show", "demo", "--db", str(db), "--json", cwd=db.parent).stdout
    assert not other.exists()


@pytest.mark.parametrize("command", [("studies",), ("show", "demo"), ("delete", "demo"), ("serve",),
                                     ("optuna-dashboard",)])
def test_an_empty_database_path_is_a_usage_error_naming_db(db: Path, command: tuple[str, ...]):
    """``--db ""`` would name the current folder, and the error speak of a database ``.``."""
    assert refused(*command, "--db", "", cwd=db.parent) == (
        "Error: Invalid value for '--db': expected the path of an SQLite database file, got ''")


@pytest.mark.parametrize("command", ["serve", "optuna-dashboard"])
@pytest.mark.parametrize("host", ["", " ", "[]"])
def test_an_empty_listening_address_is_a_usage_error_naming_host(db: Path, command: str, host: str):
    """An empty address is every address of the machine to the socket calls; the refusal named
    no option (``refusing to listen on  without an API token``)."""
    assert refused(command, "--db", str(db), "--host", host, cwd=db.parent) == (
        f"Error: Invalid value for '--host': expected an address to listen on (127.0.0.1, ::1 or [::1], a host "
        f"name), got {host!r}")
