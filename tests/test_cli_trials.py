"""``katuna trials``: every trial of a study of any size, by number, read from the database a
page at a time and written as it is read; ``--after`` and ``--limit`` give one page of it, the
same page as the API's; the output ends without an error when its reader goes away, and a full
disk fails the command in a line with exit 2."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import app_client, study_definition
from http_helpers import run_katuna

from functions.adapters.web import create_app
from functions.cli import main
from functions.cli_trials import TRIALS_READ
from functions.core.records import COMPLETE, FAILED, RUNNING, StudyRecord, TrialRecord
from functions.core.validate import parse_study
from functions.runtime import Runtime
from functions.settings import Settings

TRIALS = 2 * TRIALS_READ + 37


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Iterator[Path]:
    """A study of more trials than two reads hold, among them values JSON has no literal for."""
    base = tmp_path_factory.mktemp("trials")
    runtime = Runtime(Settings(db=base / "katuna.db"))
    store = runtime.store()
    definition = study_definition(name="big", maxTrials=TRIALS)
    store.add_study(StudyRecord(parse_study(definition), definition, str(base), "uid-big", status="completed"))
    with store.transaction():
        for number in range(TRIALS):
            value = float("nan") if number == TRIALS_READ else number / 7
            state = FAILED if number % 97 == 0 else COMPLETE
            store.add_trial(TrialRecord("big", number, {"x": number / 1000}, state, values=[value],
                                        metrics={"loss": value}))
    runtime.close()
    yield base / "katuna.db"


def _trials(db: Path, *options: str) -> tuple[int, str]:
    """The exit code, and the output: stdout, or stderr where the command failed."""
    result = CliRunner().invoke(main, ["trials", "big", "--db", str(db), *options])
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output


def _api_pages(db: Path) -> list[dict]:
    """Every trial, as the API's pages give them."""
    runtime = Runtime(Settings(db=db))
    try:
        client, found, after = create_app(runtime).test_client(), [], ""
        while page := client.get(f"/studies/big/trials?limit=300{after}").get_json():
            found += page
            after = f"&after={page[-1]['number']}"
        return found
    finally:
        runtime.close()


def test_the_json_of_every_trial_is_the_apis_in_one_list_laid_out_as_any_katuna_json(db: Path):
    code, output = _trials(db, "--json")
    assert code == 0, output
    listed = json.loads(output)
    assert [t["number"] for t in listed] == list(range(TRIALS))
    assert listed == _api_pages(db)
    assert listed[TRIALS_READ]["value"] == "nan"
    assert output == json.dumps(listed, indent=2) + "\n"


@pytest.mark.parametrize(("options", "numbers"), [
    (("--limit", "3"), [0, 1, 2]),
    (("--after", "5", "--limit", "2"), [6, 7]),
    (("--after", str(TRIALS_READ - 2), "--limit", str(TRIALS_READ + 4)), list(range(TRIALS_READ - 1, 2 * TRIALS_READ + 3))),
    (("--after", str(TRIALS - 3)), [TRIALS - 2, TRIALS - 1]),
    (("--after", str(TRIALS + 5)), []),
])
def test_after_and_limit_give_one_page_by_number_across_the_reads(db: Path, options: tuple[str, ...], numbers: list[int]):
    code, output = _trials(db, "--json", *options)
    assert code == 0, output
    assert [t["number"] for t in json.loads(output)] == numbers


def test_the_table_takes_the_same_page(db: Path):
    code, output = _trials(db, "--after", "40", "--limit", "2")
    assert code == 0, output
    rows = [line.split()[:2] for line in output.splitlines() if line.strip()[:1].isdigit()]
    assert rows == [["41", "COMPLETE"], ["42", "COMPLETE"]]


@pytest.mark.parametrize(("options", "named"), [
    (("--after", "-1"), "--after"), (("--after", "x"), "--after"), (("--limit", "0"), "--limit"),
])
def test_a_bad_page_is_refused_naming_the_option(db: Path, options: tuple[str, ...], named: str):
    code, output = _trials(db, "--json", *options)
    assert code == 2
    assert named in output


@pytest.mark.parametrize(("options", "named", "said"), [
    (("--order", ""), "--order", "expected FIELD[:desc], got an empty value"),
    (("--order", " "), "--order", "expected FIELD[:desc], got an empty value"),
    (("--state", ""), "--state", "got ''"), (("--state", "COMPLETE,"), "--state", "got 'COMPLETE,'"),
    (("--min", "value", ""), "--min", "got an empty BOUND for 'value'"),
    (("--max", "number", " "), "--max", "got an empty BOUND for 'number'"),
])
def test_an_empty_value_is_a_usage_error_naming_the_option(db: Path, options: tuple[str, ...], named: str, said: str):
    """The API takes an empty argument as absent (a form sends its empty fields); on a command
    line it is a mistake, which would list other trials than asked for."""
    code, output = _trials(db, "--json", *options)
    assert (code, f"Invalid value for '{named}': " in output, said in output) == (2, True, True), output


def _to_a_closed_pipe(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``katuna ARGS...`` writing to a pipe whose reader is gone (``| head`` once it has enough)."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        return run_katuna(*args, cwd=cwd, stdout=Path(f"/proc/{os.getpid()}/fd/{writer}"))
    finally:
        os.close(writer)


def test_a_reader_that_goes_away_ends_the_output_not_the_command(db: Path):
    result = _to_a_closed_pipe("trials", "big", "--json", "--db", str(db), cwd=db.parent)
    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.parametrize("command", [("trials", "big", "--json"), ("show", "big", "--json")])
def test_a_full_disk_fails_the_command_in_a_line(db: Path, command: tuple[str, ...]):
    result = run_katuna(*command, "--db", str(db), cwd=db.parent, stdout=Path("/dev/full"))
    assert result.returncode == 2
    assert result.stderr.strip() == "error: cannot write the output: No space left on device"


def test_a_page_cut_by_limit_names_the_next_pages_key_and_following_them_lists_every_trial_once(db: Path):
    """Ordered by another field than the number, a page's next key holds the last trial's exact
    value, which the table shows rounded: the command says it on stderr, as the API's next link
    does, and nothing once the last page is listed."""
    listed: list[int] = []
    after: tuple[str, ...] = ()
    while True:
        result = CliRunner().invoke(main, ["trials", "big", "--db", str(db), "--json", "--order", "metric:loss:desc",
                                           "--limit", str(TRIALS_READ - 3), *after])
        assert result.exit_code == 0, result.output
        listed += [t["number"] for t in json.loads(result.stdout)]
        if not result.stderr:
            break
        prefix = "more trials follow: the next page is --after "
        assert result.stderr.startswith(prefix), result.stderr
        after = ("--after", result.stderr.removeprefix(prefix).split()[0])
    runtime = Runtime(Settings(db=db))
    try:
        client, expected, url = create_app(runtime).test_client(), [], "/studies/big/trials?order=metric:loss:desc"
        while url:
            answer = client.get(url)
            expected += [t["number"] for t in answer.get_json()]
            url = answer.headers.get("Link", "").partition(">")[0].removeprefix("<")
    finally:
        runtime.close()
    assert listed == expected and sorted(listed) == list(range(TRIALS))


def _dashboard_csv(db: Path, query: str) -> str:
    """The dashboard's Export CSV of the study ``big`` for the table's arguments ``query``."""
    with app_client(db) as client:
        answer = client.get(f"/ui/studies/big/trials.csv?{query}")
        assert answer.status_code == 200, answer.text
        return answer.text


@pytest.mark.parametrize(("options", "query", "first"), [
    ((), "", None),
    (("--state", "fail,Complete", "--order", "value:desc", "--min", "number", "40"),
     "state=FAIL&state=COMPLETE&sort=value&desc=1&field=number&min=40", None),
    (("--order", "metric:loss", "--limit", "7"), "sort=metric:loss", 7),
])
def test_csv_of_the_trials_asked_for_is_the_dashboards_export_of_the_same_trials(db: Path, options: tuple[str, ...],
                                                                                   query: str, first: int | None,
                                                                                   tmp_path: Path):
    """``katuna trials --csv``, its options filtering and ordering as the dashboard's table does:
    a column per metric and per parameter, streamed to the output, the same text as the
    dashboard's Export CSV of that table (a NaN written ``nan``, which pandas reads as NaN)."""
    output = tmp_path / "trials.csv"
    result = run_katuna("trials", "big", "--db", str(db), "--csv", *options, cwd=tmp_path, stdout=output)
    assert result.returncode == 0, result.stderr
    exported = _dashboard_csv(db, query)
    if first is not None:
        exported = "".join(exported.splitlines(keepends=True)[:first + 1])
    assert output.read_bytes().decode() == exported
    rows = list(csv.DictReader(io.StringIO(exported, newline="")))
    assert {"number", "state", "loss", "x", "attempt", "reason"} <= set(rows[0])
    assert first is None or len(rows) == first


def test_csv_is_read_whole_by_a_csv_reader_with_nan_and_a_reader_gone_away_ends_it_quietly(db: Path):
    result = run_katuna("trials", "big", "--db", str(db), "--csv", cwd=db.parent)
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [int(row["number"]) for row in rows] == list(range(TRIALS))
    assert rows[TRIALS_READ]["loss"] == "nan" and float(rows[7]["loss"]) == 1.0
    assert float(rows[1]["x"]) == 0.001
    unread = _to_a_closed_pipe("trials", "big", "--csv", "--db", str(db), cwd=db.parent)
    assert (unread.returncode, unread.stderr) == (0, "")


def test_csv_and_json_together_are_refused_naming_both(db: Path):
    result = run_katuna("trials", "big", "--db", str(db), "--csv", "--json", cwd=db.parent)
    assert result.returncode == 2
    assert "--json and --csv: give one of them" in result.stderr and result.stdout == ""


def test_docs_api_md_says_how_the_apis_listing_differs_from_the_cli_json_and_it_does(db: Path):
    """docs/api.md said the listing was "the same JSON as `katuna trials --json`", while the
    texts differ: it says the same fields and values, the API's on one line with its keys
    sorted, the CLI's indented in a trial's own order; each of which holds."""
    words = " ".join((Path(__file__).parents[1] / "docs/api.md").read_text().split())
    assert "the same JSON as" not in words
    assert ("A page of the trials listing holds the trials `katuna trials --json` prints, the same fields with the "
            "same values, which a JSON parser reads as equal; only the text differs: the API writes a page on one "
            "line with every object's keys in alphabetical order, `katuna trials --json` indents it and keeps a "
            "trial's fields in the order `number`, `state`, `params`, `value`, ...") in words
    code, output = _trials(db, "--json", "--limit", "5")
    assert code == 0, output
    runtime = Runtime(Settings(db=db))
    try:
        page = create_app(runtime).test_client().get("/studies/big/trials?limit=5").get_data(as_text=True)
    finally:
        runtime.close()
    listed = json.loads(output)
    assert json.loads(page) == listed
    assert page == json.dumps(listed, sort_keys=True, separators=(",", ":"))
    assert output == json.dumps(listed, indent=2) + "\n" and [*listed[0]][:4] == ["number", "state", "params", "value"]


@pytest.fixture
def halted(tmp_path: Path) -> Path:
    """A database holding ``halted``, a running study whose ``katuna run`` is gone (its runner a
    process that is no more), and ``live``, a running study no process of this machine claims;
    each with trial 0 complete and trial 1 running."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    store = runtime.store()
    for name, runner in (("halted", "999999999:1"), ("live", None)):
        definition = study_definition(name=name, maxTrials=4)
        store.add_study(StudyRecord(parse_study(definition), definition, str(tmp_path), f"uid-{name}",
                                    status="running"))
        store.update_study(name, runner=runner)
        with store.transaction():
            store.add_trial(TrialRecord(name, 0, {"x": 0.1}, COMPLETE, values=[0.5], metrics={"loss": 0.5}))
            store.add_trial(TrialRecord(name, 1, {"x": 0.2}, RUNNING))
    runtime.close()
    return tmp_path / "katuna.db"


@pytest.mark.parametrize(("study", "states", "numbers"), [
    ("halted", ("--state", "INTERRUPTED"), [1]), ("halted", ("--state", "interrupted"), [1]),
    ("halted", ("--state", "complete,Interrupted"), [0, 1]), ("halted", ("--state", "RUNNING"), [1]),
    ("live", ("--state", "INTERRUPTED"), []), ("live", ("--state", "INTERRUPTED,COMPLETE"), [0]),
    ("live", ("--state", "running"), [1]),
])
def test_the_interrupted_state_the_table_shows_is_one_the_state_filter_takes(halted: Path, study: str,
                                                                              states: tuple[str, ...],
                                                                              numbers: list[int]):
    """``INTERRUPTED`` stands for the running trials of an interrupted study, and for no trial
    of another: asked alone there it lists none, not all of them."""
    listed = CliRunner().invoke(main, ["trials", study, "--db", str(halted), *states, "--json"])
    assert listed.exit_code == 0, listed.output
    assert [t["number"] for t in json.loads(listed.stdout)] == numbers
    table = CliRunner().invoke(main, ["trials", study, "--db", str(halted), *states], env={"COLUMNS": "200"})
    rows = [line.split()[:2] for line in table.stdout.splitlines() if line.strip()[:1].isdigit()]
    shown = "INTERRUPTED" if study == "halted" else "RUNNING"
    assert rows == [[str(n), "COMPLETE" if n == 0 else shown] for n in numbers], table.stdout


@pytest.mark.parametrize(("options", "said"), [
    (("--state", "PRUNED"), "no trial matches the options given"),
    (("--min", "value", "99999"), "no trial matches the options given"),
    (("--after", str(TRIALS + 5)), "no trial matches the options given"),
])
@pytest.mark.parametrize("output", [(), ("--json",), ("--csv",)])
def test_a_listing_of_no_trial_says_so_on_stderr_and_succeeds(db: Path, options: tuple[str, ...], said: str,
                                                              output: tuple[str, ...]):
    """stdout holds the listing alone: for a table nothing (as ``kubectl get`` prints nothing
    there), for JSON an empty list and for CSV its header, which a program reads as no rows."""
    listed = CliRunner().invoke(main, ["trials", "big", "--db", str(db), *options, *output])
    assert (listed.exit_code, listed.stderr.strip()) == (0, said), listed.output
    empty = {(): "", ("--json",): "[]\n",
             ("--csv",): "number,state,loss,x,attempt,started (UTC),finished (UTC),duration (s),reason\n"}
    assert listed.stdout == empty[output]


def test_a_study_of_no_trial_yet_says_so_on_stderr(halted: Path):
    runtime = Runtime(Settings(db=halted))
    definition = study_definition(name="fresh", maxTrials=4)
    runtime.store().add_study(StudyRecord(parse_study(definition), definition, str(halted.parent), "uid-fresh",
                                          status="running"))
    runtime.close()
    listed = CliRunner().invoke(main, ["trials", "fresh", "--db", str(halted)])
    assert (listed.exit_code, listed.stderr.strip(), listed.stdout) == (0, "no trial stored yet", ""), listed.output
