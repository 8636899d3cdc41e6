"""The ``katuna`` command as a user runs it: a real process, a real database file."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import select
import shlex
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import click
import pytest
import sqlite_utils
import yaml
from child_signals import interruptible
from click.testing import CliRunner, Result
from conftest import katib_job_experiment, run_file, shared_journal, study_definition, unlined
from http_helpers import Service, free_port, run_katuna
from proc_stat import alive, working_in
from started_katuna import StartedKatuna
from waiting import START_WAIT, eventually

from functions.adapters.sqlite_store import SqliteStore
from functions.adapters.web import create_app
from functions.cli import main as cli_main
from functions.cli_common import Command
from functions.cli_logs import _why_no_log
from functions.core.records import StudyRecord, TrialRecord
from functions.core.validate import parse_study
from functions.runtime import Runtime
from functions.settings import Settings

pytestmark = pytest.mark.slow

KATUNA = [str(Path(sys.executable).with_name("katuna"))]


@pytest.fixture(autouse=True)
def _nothing_left_running(tmp_path: Path) -> Iterator[None]:
    """A test that fails midway (a wait that times out on a loaded machine) leaves no ``katuna
    run`` of its folder running, nor any trial of it, to load the machine for the tests after."""
    yield
    for pid in working_in(tmp_path.resolve()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def katuna(*args: str, cwd: Path, check: bool = True, columns: int = 200) -> subprocess.CompletedProcess[str]:
    result = run_katuna(*args, cwd=cwd, env={**os.environ, "COLUMNS": str(columns)})
    if check and result.returncode != 0:
        raise AssertionError(f"katuna {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def write_study(path: Path, definition: dict) -> Path:
    path.write_text(yaml.safe_dump(definition))
    return path


def test_an_invalid_study_exits_2_lists_every_problem_and_stores_nothing(tmp_path: Path):
    definition = study_definition(name="Bad_Name", parallelism=0)
    definition["parameters"][0]["max"] = -10.0
    definition["objective"]["direction"] = "down"
    study = write_study(tmp_path / "bad.yaml", definition)
    result = here("run", str(study), cwd=tmp_path, check=False)
    assert result.returncode == 2
    lines = study.read_text().splitlines()

    def line(text: str) -> int:
        return next(number for number, written in enumerate(lines, 1) if written.lstrip(" -") == text)

    for expected in (f"name (line {line('name: Bad_Name')}): expected a DNS-1123 label",
                     f"parallelism (line {line('parallelism: 0')}): expected an integer >= 1",
                     f"parameters[0].max (line {line('max: -10.0')}): expected >= min (-5.0), got -10.0",
                     f"objective.direction (line {line('direction: down')}): expected minimize or maximize, got 'down'"):
        assert f"  - {expected}" in result.stderr
    assert not (tmp_path / "katuna.db").exists()


@pytest.mark.parametrize("executor", ["local", "kubernetes"])
def test_a_working_directory_missing_here_exits_2_naming_it_before_any_trial(tmp_path: Path, executor: str):
    """``katuna run`` runs its trials here whatever ``KATUNA_EXECUTOR`` says (that is
    ``katuna serve``'s), so it checks their working directory here."""
    study = write_study(tmp_path / "s.yaml", study_definition(trialTemplate={
        "command": [sys.executable, "-c", "print('loss=1')", "${trialParameters.x}"], "workingDir": "runs"}))
    result = run_katuna("run", str(study), cwd=tmp_path, env={**os.environ, "KATUNA_EXECUTOR": executor})
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"trialTemplate.workingDir: expected a directory; {tmp_path / 'runs'} is none" in unlined(result.stderr)
    assert not (tmp_path / "katuna.db").exists()
    (tmp_path / "runs").mkdir()
    assert katuna("run", str(study), cwd=tmp_path).returncode == 0


def test_a_stored_study_run_again_from_elsewhere_checks_its_working_directory_where_its_trials_run(
        tmp_path: Path):
    """A study run again (its budget raised) from another directory runs its trials where it was
    first run: its ``workingDir`` is checked there, not in the directory the command is run from."""
    first, elsewhere = tmp_path / "first", tmp_path / "elsewhere"
    (first / "runs").mkdir(parents=True)
    elsewhere.mkdir()
    definition = study_definition(maxTrials=1, parallelism=1, trialTemplate={
        "command": [sys.executable, "-c", "import os; print('loss=1'); print(os.getcwd())", "${trialParameters.x}"],
        "workingDir": "runs"})
    run_file(write_study(first / "s.yaml", definition))
    definition["maxTrials"] = 2
    again = katuna("run", str(write_study(elsewhere / "s.yaml", definition)), "--db", str(first / "katuna.db"),
                   cwd=elsewhere)
    assert again.returncode == 0
    assert here("logs", "demo", "1", "--db", str(first / "katuna.db"), cwd=elsewhere).stdout.splitlines()[-1] == \
        str(first / "runs")


def test_trials_at_once_writing_one_metrics_file_are_refused_as_each_would_read_the_others_lines(tmp_path: Path):
    """Before, the run only warned, and the trials took each other's metrics for their own."""
    shared = study_definition(maxTrials=2, parallelism=2, metricsCollector={"kind": "file", "path": "metrics.log"})
    shared["trialTemplate"]["command"] = ["sh", "-c", 'echo "loss=$1" >> metrics.log', "trial", "${trialParameters.x}"]
    refused = katuna("run", str(write_study(tmp_path / "shared.yaml", shared)), cwd=tmp_path, check=False, columns=500)
    assert refused.returncode == 2 and not (tmp_path / "metrics.log").exists()
    assert ("metricsCollector.path: every trial writes its metrics to metrics.log, and 2 would run at once on this "
            "machine (parallelism): each would read the lines of the trials running beside it") in unlined(refused.stderr)
    one_at_a_time = dict(shared, parallelism=1)
    assert katuna("run", str(write_study(tmp_path / "shared.yaml", one_at_a_time)), cwd=tmp_path).returncode == 0
    own = dict(shared, name="own", metricsCollector={"kind": "file", "path": "m-${trialSpec.Name}.log"})
    own["trialTemplate"] = dict(shared["trialTemplate"], command=[
        "sh", "-c", 'echo "loss=$1" >> "m-$2.log"', "trial", "${trialParameters.x}", "${trialSpec.Name}"])
    ran = katuna("run", str(write_study(tmp_path / "own.yaml", own)), cwd=tmp_path)
    assert ran.returncode == 0 and "metrics to" not in ran.stderr


def test_a_local_trial_runs_in_its_containers_working_directory_as_kubernetes_runs_it(tmp_path: Path):
    """Before, it ran in the study's folder, where a command reading files beside it found none."""
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "data.txt").write_text("0.25\n")
    experiment = katib_job_experiment("in-folder", {
        "workingDir": str(tmp_path / "work"),
        "command": ["sh", "-c", 'echo "loss=$(cat data.txt)"; echo "--lr=$1"', "trial", "${trialParameters.learningRate}"]})
    run_file(write_study(tmp_path / "exp.yaml", experiment))
    shown = json.loads(here("trials", "in-folder", "--json", cwd=tmp_path).stdout)
    assert [trial["value"] for trial in shown] == [0.25]


def test_a_containers_working_directory_missing_here_stops_the_run_saying_which_field_to_fix(tmp_path: Path):
    experiment = katib_job_experiment("no-folder", {
        "workingDir": str(tmp_path / "absent"), "command": ["sh", "-c", "echo loss=1", "${trialParameters.learningRate}"]})
    experiment["spec"].update(maxTrialCount=10, maxFailedTrialCount=10)
    ran = katuna("run", str(write_study(tmp_path / "exp.yaml", experiment)), cwd=tmp_path, check=False, columns=500)
    assert ran.returncode != 0
    assert f'working directory "{tmp_path / "absent"}" cannot be entered' in unlined(ran.stdout + ran.stderr)
    assert "Fix the workingDir of the trialSpec's primary container" in unlined(ran.stdout + ran.stderr)


def test_a_working_directory_with_placeholders_is_each_trials_own(tmp_path: Path):
    study = write_study(tmp_path / "s.yaml", study_definition(
        parameters=[{"name": "tool", "type": "categorical", "values": ["a", "b c"]}], algorithm={"name": "grid"},
        trialTemplate={"command": [sys.executable, "-c", "open('ran', 'w').close(); print('loss=1')"],
                       "workingDir": "runs/${trialParameters.tool}"}))
    for tool in ("a", "b c"):
        (tmp_path / "runs" / tool).mkdir(parents=True)
    run_file(study)
    assert (tmp_path / "runs" / "a" / "ran").exists() and (tmp_path / "runs" / "b c" / "ran").exists()


def test_every_commands_help_is_plain_text_not_the_markup_of_its_docstring():
    from functions.cli import COMMANDS, main

    for name in COMMANDS:
        shown = CliRunner().invoke(main, [name, "--help"]).output
        assert "``" not in shown and ":func:" not in shown and ":data:" not in shown, f"katuna {name} --help"


def test_the_list_of_commands_gives_each_whole_and_every_option_names_what_it_takes():
    """``katuna --help`` cuts no command's summary short, and no option's value is shown as
    click's ``INTEGER RANGE`` or ``FILE`` for a database path."""
    from functions.cli import COMMANDS, main

    listed = CliRunner().invoke(main, ["--help"]).output.split("Commands:")[1].split("\n\n")[0]
    assert [line.split()[0] for line in listed.strip().splitlines()] == sorted(COMMANDS)
    assert "..." not in listed
    for name in COMMANDS:
        shown = CliRunner().invoke(main, [name, "--help"]).output
        assert "INTEGER RANGE" not in shown and "--db FILE" not in shown, f"katuna {name} --help"


def test_the_consoles_colour_no_number_string_or_bracket_of_a_value():
    from functions.cli_common import console, errors

    for output in (console, errors):
        assert output.render_str("completed (max trials reached (4)) 'a' 0.5").spans == []


def test_run_then_inspect_with_json(tmp_path: Path):
    study = write_study(tmp_path / "study.yaml", study_definition(maxTrials=4))
    result = katuna("run", str(study), cwd=tmp_path)
    assert "Study demo: completed (max trials reached (4))" in result.stdout
    assert str(tmp_path / "katuna.db") in result.stdout

    studies = json.loads(here("studies", "--json", cwd=tmp_path).stdout)
    assert [(s["name"], s["status"], s["trials"]) for s in studies] == [("demo", "completed", 4)]

    trials = json.loads(here("trials", "demo", "--json", cwd=tmp_path).stdout)
    assert [t["number"] for t in trials] == [0, 1, 2, 3]
    assert {t["state"] for t in trials} == {"COMPLETE"}
    assert set(trials[0]) >= {"number", "state", "params", "value", "values", "metrics", "reason"}
    assert trials[0]["values"] == [trials[0]["value"]]
    assert set(trials[0]["metrics"]) == {"loss"}

    best = json.loads(here("best", "demo", "--json", cwd=tmp_path).stdout)
    assert best["value"] == min(t["value"] for t in trials)

    shown = json.loads(here("show", "demo", "--json", cwd=tmp_path).stdout)
    assert shown["counts"]["complete"] == 4 and shown["best"]["number"] == best["number"]

    again = katuna("run", str(study), cwd=tmp_path)
    assert "already completed" in again.stdout and "Nothing to run" in again.stdout
    assert len(json.loads(here("trials", "demo", "--json", cwd=tmp_path).stdout)) == 4


def test_a_run_with_the_kubernetes_executor_set_warns_that_its_trials_run_here(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch):
    """``KATUNA_EXECUTOR=kubernetes`` (which ``katuna stop`` of a study run as Jobs needs) does not
    make ``katuna run`` run Jobs: it says so before its trials start, on stderr."""
    monkeypatch.setenv("KATUNA_EXECUTOR", "kubernetes")
    ran = katuna("run", str(write_study(tmp_path / "study.yaml", study_definition(maxTrials=1, parallelism=1))),
                cwd=tmp_path)
    assert "warning: KATUNA_EXECUTOR=kubernetes is katuna serve's setting: katuna run runs every trial as a process " \
           "on this machine" in " ".join(ran.stderr.split())
    assert "Study demo: completed" in ran.stdout
    monkeypatch.delenv("KATUNA_EXECUTOR")
    assert "KATUNA_EXECUTOR" not in katuna("run", str(tmp_path / "study.yaml"), cwd=tmp_path).stderr


def test_a_different_definition_under_the_same_name_is_refused_naming_what_changed_and_how_to_go_on(tmp_path: Path):
    run_file(write_study(tmp_path / "a.yaml", study_definition(maxTrials=1, parallelism=1)))
    edited = study_definition(maxTrials=2, parallelism=1)
    edited["parameters"][0]["max"] = 4.0
    write_study(tmp_path / "b.yaml", edited)
    result = katuna("run", "b.yaml", cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr == ("error: study 'demo' already exists with a different definition (changed: "
                             "maxTrials, parameters[0].max); it has ended (completed: max trials reached (1)) and "
                             "does not restart: parameters cannot change (only maxTrials, parallelism, "
                             "maxFailedTrials can); give it another name, or delete the stored study and its trials "
                             "first (katuna delete demo, or DELETE /studies/demo)\n")
    shutil.copy(tmp_path / "katuna.db", tmp_path / "other.db")
    elsewhere = here("run", "b.yaml", "--db", "other.db", cwd=tmp_path, check=False)
    assert elsewhere.returncode == 2
    assert elsewhere.stderr.endswith(" (katuna delete demo --db other.db, or DELETE /studies/demo)\n"), \
        "followed as printed, the hint deletes the study that refused this one"


def test_a_finished_study_run_again_with_more_trials_goes_on_where_it_ended(tmp_path: Path):
    """As Optuna's ``optimize`` called again: the trials it has stay (and are not run again),
    the sampler sees them, and the raised budget runs the rest; a study that ended otherwise,
    or a budget not above its trials, is refused saying so."""
    study = write_study(tmp_path / "study.yaml", study_definition(maxTrials=2, parallelism=1))
    run_file(study)
    before = json.loads(here("trials", "demo", "--json", cwd=tmp_path).stdout)
    write_study(study, study_definition(maxTrials=4, parallelism=2))
    katuna("run", str(study), cwd=tmp_path)
    after = json.loads(here("trials", "demo", "--json", cwd=tmp_path).stdout)
    assert [t["number"] for t in after] == [0, 1, 2, 3] and after[:2] == before
    assert all(t["state"] == "COMPLETE" for t in after)
    shown = json.loads(here("show", "demo", "--json", cwd=tmp_path).stdout)
    assert (shown["status"], shown["maxTrials"], shown["reason"]) == ("completed", 4, "max trials reached (4)")

    goal = write_study(tmp_path / "goal.yaml", study_definition(
        name="goal", maxTrials=3, parallelism=1, objective={"metric": "loss", "direction": "minimize", "goal": 100.0}))
    run_file(goal)
    write_study(goal, study_definition(name="goal", maxTrials=5, parallelism=1,
                                       objective={"metric": "loss", "direction": "minimize", "goal": 100.0}))
    refused = katuna("run", str(goal), cwd=tmp_path, check=False)
    assert refused.returncode == 2 and ("does not restart: only a study that ended by reaching maxTrials restarts "
                                        "(with maxTrials raised)") in refused.stderr


def test_a_finished_study_run_again_with_only_its_parallelism_changed_is_told_to_raise_max_trials(tmp_path: Path):
    """The one way on that keeps the study's trials is named: a raised maxTrials restarts it
    with the new parallelism (or maxFailedTrials, or a lower maxTrials), not another name alone."""
    study = write_study(tmp_path / "study.yaml", study_definition(maxTrials=2, parallelism=1))
    run_file(study)
    write_study(study, study_definition(maxTrials=2, parallelism=2))
    refused = here("run", str(study), cwd=tmp_path, check=False)
    assert refused.returncode == 2
    assert refused.stderr == ("error: study 'demo' already exists with a different definition (changed: parallelism); "
                              "it has ended (completed: max trials reached (2)): maxTrials above its 2 trials "
                              "restarts it with the changes; give it another name, or delete the stored study and its "
                              "trials first (katuna delete demo, or DELETE /studies/demo)\n")
    write_study(study, study_definition(maxTrials=3, parallelism=2))
    assert here("run", str(study), cwd=tmp_path).returncode == 0
    assert json.loads(here("show", "demo", "--json", cwd=tmp_path).stdout)["trials"] == 3


def test_delete_refuses_a_running_study_then_deletes_it_once_stopped_freeing_its_name(tmp_path: Path):
    _, process = _held_run(tmp_path)
    try:
        refused = katuna("delete", "demo", cwd=tmp_path, check=False)
        assert (refused.returncode, refused.stdout) == (1, "")
        assert refused.stderr == ("error: study 'demo' is running (or was interrupted, and a run would resume it): "
                                  "stop it first with katuna stop demo, then delete it\n")
        (tmp_path / "elsewhere").mkdir()
        elsewhere = here("delete", "demo", "--db", str(tmp_path / "katuna.db"), cwd=tmp_path / "elsewhere", check=False)
        assert f"stop it first with katuna stop demo --db {tmp_path / 'katuna.db'}, then delete it" in elsewhere.stderr, \
            "the stop it names reaches the database the delete was given"
        assert {t["state"] for t in _trials(tmp_path / "katuna.db")} >= {"RUNNING"}
        katuna("stop", "demo", cwd=tmp_path)
        process.communicate(timeout=30)
    finally:
        process.kill()
    trials = len(_trials(tmp_path / "katuna.db"))
    deleted = katuna("delete", "demo", cwd=tmp_path)
    [uid] = (path.name for path in (tmp_path / "katuna-logs" / "demo").iterdir())
    assert deleted.stdout == (f"Deleted study 'demo' and its {trials} trial(s) from {tmp_path / 'katuna.db'}; "
                              f"its trial logs stay in {tmp_path / 'katuna-logs' / 'demo' / uid}.\n")
    assert _trials(tmp_path / "katuna.db") == []
    gone = here("show", "demo", cwd=tmp_path, check=False)
    assert gone.returncode == 1 and "no study named 'demo'" in gone.stderr
    again = katuna("delete", "demo", cwd=tmp_path, check=False)
    assert again.returncode == 1 and f"no study named 'demo' in {tmp_path / 'katuna.db'}" in again.stderr
    assert run_file(write_study(tmp_path / "other.yaml", study_definition(maxTrials=1, parallelism=1))).status == \
        "completed"


def _printing_study(path: Path, words: str) -> None:
    """A one-trial study named demo whose trial prints ``words`` and its metric."""
    command = [sys.executable, "-c", f"print({words!r}); print('loss=1.0')", "${trialParameters.x}"]
    write_study(path, study_definition(maxTrials=1, parallelism=1, trialTemplate={"command": command}))


def test_the_logs_delete_keeps_stay_whole_when_a_study_of_the_same_name_runs_again(tmp_path: Path):
    _printing_study(tmp_path / "s.yaml", "first run")
    run_file(tmp_path / "s.yaml")
    deleted = katuna("delete", "demo", cwd=tmp_path).stdout
    kept = Path(deleted.split("its trial logs stay in ", 1)[1].removesuffix(".\n"))
    _printing_study(tmp_path / "s.yaml", "second run")
    run_file(tmp_path / "s.yaml")
    assert (kept / "0.1.log").read_text().startswith("first run\n")
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        served = create_app(runtime).test_client().get("/studies/demo/trials/0/logs").get_data(as_text=True)
    finally:
        runtime.close()
    assert served.startswith("second run\n")


READ_COMMANDS = (["studies"], ["show", "demo"], ["trials", "demo"], ["best", "demo"], ["stop", "demo"],
                 ["delete", "demo"], ["optuna-dashboard", "--port", str(free_port())])


def _foreign_databases(folder: Path) -> list[Path]:
    """Another program's SQLite files: one with a table, one that also numbers its schema."""
    paths = [folder / "app.db", folder / "versioned.db"]
    for path, version in zip(paths, (0, 3)):
        with closing(sqlite3.connect(path)) as conn, conn:
            conn.execute("CREATE TABLE notes (body TEXT)")
            conn.execute("INSERT INTO notes VALUES ('mine')")
            conn.execute(f"PRAGMA user_version = {version}")
    return paths


def in_process(*args: str, env: dict[str, str] | None = None) -> Result:
    """The command run by the CLI in this process (with ``env`` added to the environment): for
    refusals made before anything runs, where a process of its own per command would only add
    its start-up."""
    from functions.cli import main

    return CliRunner(env=env).invoke(main, list(args))


def here(*args: str, cwd: Path | None = None, check: bool = True,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command run by the CLI in this process (from the folder ``cwd``, with ``env``), its
    result as :func:`katuna` gives one: for refusals, and for the reads of what a ``katuna run``
    stored (JSON, exit statuses, errors), where a process of its own per command would only add
    its start-up. What a process adds (its exit through the console script, an output closed or
    full, tables as wide as ``COLUMNS`` says) is tested with :func:`katuna`. An exception other
    than the CLI's own exit fails the test, as a traceback would."""
    with contextlib.chdir(cwd or Path.cwd()):
        result = in_process(*args, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    done = subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)
    if check and done.returncode != 0:
        raise AssertionError(f"katuna {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def test_every_command_refuses_another_programs_sqlite_file_leaving_it_byte_for_byte(tmp_path: Path):
    study = write_study(tmp_path / "s.yaml", study_definition(maxTrials=1, parallelism=1))
    for path in _foreign_databases(tmp_path):
        before = path.read_bytes()
        for command in [*READ_COMMANDS, ["run", str(study)]]:
            result = in_process(*command, "--db", str(path))
            assert (result.exit_code, result.stderr) == (2, (
                f"error: {path} is an SQLite database, but not katuna's (its tables: notes); katuna left it as it "
                "is: give --db (or KATUNA_DB) a katuna database, or a new path\n")), command
            assert path.read_bytes() == before, command
        assert sorted(p.name for p in tmp_path.glob(f"{path.stem}*")) == [path.name]


def test_every_command_and_the_service_refuse_a_database_a_newer_katuna_migrated_leaving_it_byte_for_byte(
        tmp_path: Path):
    """An older katuna (a rollback, or the old revision of a rollout) would misread tables a
    newer one changed, and its writes could break them."""
    from functions.adapters.sqlite_migrations import MIGRATIONS

    path = tmp_path / "newer.db"
    SqliteStore(path).close()
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    before = path.read_bytes()
    refusal = (f"error: {path} was migrated by a newer katuna (schema {len(MIGRATIONS) + 1}; this katuna knows schema "
               f"{len(MIGRATIONS)} at most); katuna left it as it is: upgrade katuna to use it\n")
    study = write_study(tmp_path / "s.yaml", study_definition(maxTrials=1, parallelism=1))
    for command in [*READ_COMMANDS, ["run", str(study)], ["serve", "--port", str(free_port())]]:
        result = in_process(*command, "--db", str(path))
        assert (result.exit_code, result.stderr.splitlines(keepends=True)[-1]) == (2, refusal), command
        assert path.read_bytes() == before, command
    with pytest.raises(Exception, match="migrated by a newer katuna") as refused:
        Runtime(Settings(db=path))
    assert refused.type.__name__ == "NewerDatabase"
    assert path.read_bytes() == before


def test_read_commands_leave_an_empty_file_empty_and_run_makes_it_a_database(tmp_path: Path):
    empty = tmp_path / "empty.db"
    empty.touch()
    for command in READ_COMMANDS:
        result = in_process(*command, "--db", str(empty))
        assert (result.exit_code, result.stderr) == (2, f"error: no database at {empty}: the file is empty (give "
                                                         "--db PATH or set KATUNA_DB; katuna run or katuna serve "
                                                         "creates it)\n")
        assert empty.stat().st_size == 0
    write_study(tmp_path / "s.yaml", study_definition(maxTrials=1, parallelism=1))
    katuna("run", "s.yaml", "--db", str(empty), cwd=tmp_path)
    assert "demo" in here("studies", "--db", str(empty), cwd=tmp_path).stdout


def test_render_prints_the_job_alone_without_optunas_log_lines(tmp_path: Path):
    """Without --params, render asks the study's sampler for its first trial's parameters."""
    study = Path(__file__).parent.parent / "examples" / "trial-image" / "study.yaml"
    rendered = katuna("render", str(study), cwd=tmp_path)
    assert rendered.stderr == ""
    assert "kind: Job" in rendered.stdout


@pytest.mark.parametrize("study", ["examples/trial-image/study.yaml", "examples/katib-experiment.yaml"])
def test_render_prints_a_jobs_identity_before_its_spec_as_kubectl_does(study: str):
    """A Katib Experiment's Job too, whose ``metadata`` katuna adds to the ``trialSpec``."""
    rendered = in_process("render", str(Path(__file__).parent.parent / study))
    assert rendered.exit_code == 0, rendered.output
    assert list(yaml.safe_load(rendered.stdout))[:4] == ["apiVersion", "kind", "metadata", "spec"]


def test_render_refuses_a_job_field_a_job_does_not_have_as_run_and_the_cluster_do(tmp_path: Path):
    """A misspelt ``resources`` would print a Job whose requests the API server drops unread;
    ``katuna run`` and a cluster's dry run refuse it, as Katib's webhook does, and so does render."""
    doc = katib_job_experiment("misspelt", {"command": ["python3", "train.py", "--lr=${trialParameters.learningRate}"],
                                            "resource": {"requests": {"cpu": "1"}}})
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    rendered = in_process("render", str(tmp_path / "experiment.yaml"))
    assert rendered.exit_code == 2 and rendered.stdout == ""
    assert "  - spec.trialTemplate.trialSpec.spec.template.spec.containers[0].resource (line " in rendered.stderr
    assert "unknown field: a batch/v1 Job has no such field" in rendered.stderr


def test_a_study_whose_run_was_interrupted_reads_as_interrupted_not_running(tmp_path: Path):
    """Whatever trial-log folder the reading command sees: the database names the run."""
    _, process = _held_run(tmp_path)
    elsewhere = {"KATUNA_LOG_DIR": str(tmp_path / "other-logs")}
    try:
        assert "status: running " in here("show", "demo", cwd=tmp_path).stdout
        assert json.loads(here("show", "demo", "--json", cwd=tmp_path).stdout)["interrupted"] is False
        assert json.loads(here("show", "demo", "--json", cwd=tmp_path, env=elsewhere).stdout)["interrupted"] is False
        assert "RUNNING" in katuna("trials", "demo", cwd=tmp_path, columns=200).stdout
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 130
    finally:
        process.kill()
        process.communicate()
    _assert_interrupted(tmp_path)
    assert json.loads(here("show", "demo", "--json", cwd=tmp_path, env=elsewhere).stdout)["interrupted"] is True
    shown = " ".join(here("show", "demo", cwd=tmp_path).stdout.split())
    assert "interrupted 2, waiting" in shown and "running 2" not in shown, shown
    listed = katuna("trials", "demo", cwd=tmp_path, columns=200).stdout
    assert listed.count("INTERRUPTED") == 2 and "RUNNING" not in listed, listed
    assert "demo trial 0  state: INTERRUPTED  attempt 1" in here("show", "demo", "0", cwd=tmp_path).stdout
    assert [t["state"] for t in json.loads(here("trials", "demo", "--json", cwd=tmp_path).stdout)].count("RUNNING") == 2


KILLED_AT_FIRST_LAUNCH = ("import os, signal; from functions.adapters.local_executor import LocalExecutor; "
                          "LocalExecutor.launch = lambda self, launch: os.kill(os.getpid(), signal.SIGKILL); "
                          "from functions.entry import main; main()")
"""``katuna run``, killed outright as it is about to start its first trial."""


def test_a_run_killed_before_its_first_trial_started_leaves_its_study_interrupted(tmp_path: Path):
    study = write_study(tmp_path / "study.yaml", study_definition(maxTrials=2, parallelism=1))
    killed = subprocess.run([sys.executable, "-c", KILLED_AT_FIRST_LAUNCH, "run", str(study)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert json.loads(here("show", "demo", "--json", cwd=tmp_path).stdout)["counts"]["running"] == 0
    _assert_interrupted(tmp_path)
    katuna("run", str(study), cwd=tmp_path)
    assert json.loads(here("show", "demo", "--json", cwd=tmp_path).stdout)["interrupted"] is False


def _assert_interrupted(tmp_path: Path) -> None:
    """``show``, ``studies`` and their JSON all say the study ``demo`` was interrupted."""
    assert "status: interrupted (the katuna process that ran it is gone) " in katuna("show", "demo", cwd=tmp_path).stdout
    assert "interrupted (the katuna process that ran it is gone)" in katuna("studies", cwd=tmp_path, columns=400).stdout
    shown = json.loads(here("show", "demo", "--json", cwd=tmp_path).stdout)
    assert (shown["status"], shown["interrupted"]) == ("running", True)
    assert [(s["status"], s["interrupted"]) for s in json.loads(here("studies", "--json", cwd=tmp_path).stdout)] == \
        [("running", True)]


def test_ctrl_c_kills_trials_and_a_rerun_resumes_without_repeating_finished_ones(tmp_path: Path):
    definition = study_definition(maxTrials=6, parallelism=2)
    definition["trialTemplate"]["command"] += ["--sleep", "1.5"]
    definition["trialTemplate"]["maxAttempts"] = 1
    definition["trialTemplate"]["env"] = {"PID_DIR": str(tmp_path)}
    study = write_study(tmp_path / "study.yaml", definition)
    process = StartedKatuna("run", str(study), cwd=tmp_path, interruptible=True)
    db = tmp_path / "katuna.db"
    eventually(lambda: _complete(db) >= 2, "two complete trials", timeout=START_WAIT)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "Run the same command again to resume" in stderr
    for pid_file in tmp_path.glob("*.pid"):
        assert not alive(pid_file.read_text())
    before = {t["number"]: t for t in _trials(db) if t["state"] == "COMPLETE"}
    interrupted = [t["number"] for t in _trials(db) if t["state"] == "RUNNING"]

    katuna("run", str(study), cwd=tmp_path)
    after = {t["number"]: t for t in _trials(db)}
    assert len(after) == 6 and all(t["state"] == "COMPLETE" for t in after.values())
    for number, trial in before.items():
        assert after[number]["finished_at"] == trial["finished_at"], "finished trials are not run again"
    assert sorted(p.name for n in before for p in tmp_path.glob(f"{n}.*.pid")) == [f"{n}.1.pid" for n in sorted(before)]
    assert all(after[n]["attempt"] == 2 for n in interrupted), "an interrupted attempt runs again as a new one"
    assert all(after[n]["reason"].startswith("attempt 1 interrupted: the katuna process running it stopped")
               for n in interrupted), "never counted as a lost run: maxAttempts is 1"


def test_ctrl_c_ends_any_other_command_with_130_as_it_ends_run_not_with_a_studys_exit_1(tmp_path: Path):
    """``katuna logs`` of a long log, its reader paused (a pager): Ctrl-C ends it with 130, the
    status of a command ended by SIGINT, never 1, which says the study failed or is missing."""
    definition = study_definition(maxTrials=1, parallelism=1)
    definition["trialTemplate"]["command"] = [sys.executable, "-c",
                                              "x = ${trialParameters.x}; print('x' * (1 << 21)); print('loss=1')"]
    run_file(write_study(tmp_path / "study.yaml", definition))
    process = subprocess.Popen([*KATUNA, "logs", "demo", "0"], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, preexec_fn=interruptible)
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.read(10) == b"x" * 10, "the log is being printed"
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 130
    assert process.stderr.read().decode() == "\nInterrupted (SIGINT).\n"
    process.stdout.close()
    process.stderr.close()


def test_ctrl_c_while_a_run_loads_optuna_exits_130_in_a_line_not_a_traceback_from_an_import(tmp_path: Path):
    """A run loads NumPy and Optuna as it starts (a few tenths of a second): SIGINT sent once
    NumPy is loading, while it and Optuna still load, ends the command as it ends one that runs."""
    study = write_study(tmp_path / "study.yaml", study_definition(maxTrials=1, parallelism=1))
    process = subprocess.Popen([*KATUNA, "run", str(study)], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    maps = Path(f"/proc/{process.pid}/maps")
    deadline = time.monotonic() + 30
    while "numpy" not in maps.read_text() and time.monotonic() < deadline:
        time.sleep(0.002)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert (process.returncode, stdout, stderr) == (130, "", "\nInterrupted (SIGINT).\n")
    assert not (tmp_path / "katuna.db").exists(), "nothing was stored"


INTERRUPTED_IN_A_DROPPING_CALLBACK = """
import os, signal, sys, weakref

class Held:
    pass

class SignalAtTheCli:
    \"\"\"Ctrl-C as the CLI's module is imported, in a weakref's callback, where Python drops
    exceptions (as in the callback that frees an import's module lock).\"\"\"

    def find_spec(self, name, path=None, target=None):
        if name == "functions.cli":
            held = Held()
            kept = weakref.ref(held, lambda ref: os.kill(os.getpid(), signal.SIGINT))
            del held
        return None

sys.meta_path.insert(0, SignalAtTheCli())
sys.argv = ["katuna", *sys.argv[1:]]
from functions.entry import main
main()
"""


def test_ctrl_c_that_comes_where_python_drops_exceptions_while_the_cli_loads_still_ends_it_with_130(tmp_path: Path):
    """Ctrl-C while the CLI loads, come as Python runs code whose exceptions it drops (every
    import frees its module lock in such a callback): the command ends as any does on Ctrl-C,
    130 and one line, instead of going on with a traceback on stderr and exit 0."""
    study = write_study(tmp_path / "study.yaml", study_definition(maxTrials=1, parallelism=1))
    result = subprocess.run([sys.executable, "-c", INTERRUPTED_IN_A_DROPPING_CALLBACK, "run", str(study)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60, preexec_fn=interruptible)
    assert (result.returncode, result.stdout, result.stderr) == (130, "", "\nInterrupted (SIGINT).\n")
    assert not (tmp_path / "katuna.db").exists(), "nothing was stored"


@pytest.mark.timeout(90)
def test_ctrl_c_while_a_run_waits_for_the_database_exits_130_in_a_line_storing_nothing(tmp_path: Path):
    """Before its trials start (the write lock held by another connection, say), Ctrl-C ends a
    run as it does later: exit 130, one line saying how to go on, and the study not stored."""
    run_file(write_study(tmp_path / "first.yaml", study_definition(name="first", maxTrials=1, parallelism=1)))
    study = write_study(tmp_path / "study.yaml", study_definition(maxTrials=1, parallelism=1))
    db = tmp_path / "katuna.db"
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        process = StartedKatuna("run", str(study), cwd=tmp_path, interruptible=True,
                                env={**os.environ, "KATUNA_BUSY_TIMEOUT": "10"})
        eventually(lambda: _has_open(process.pid, db), "the run opened the database", timeout=START_WAIT)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert (process.returncode, stdout) == (130, ""), stderr
    assert stderr.strip() == "Interrupted (SIGINT): no trial was running. Run the same command again to go on."
    assert [s["name"] for s in json.loads(here("studies", "--json", cwd=tmp_path).stdout)] == ["first"]


def _has_open(pid: int, path: Path) -> bool:
    """Whether the process ``pid`` has the file at ``path`` open."""
    with_links = Path(f"/proc/{pid}/fd")
    try:
        return any(os.readlink(fd) == str(path) for fd in with_links.iterdir())
    except OSError:
        return False


def _held_study(tmp_path: Path, *extra: str) -> Path:
    """A study of 4 trials, 2 at a time, each of which waits after its first epoch until the
    file ``go`` exists (its pid in ``<trial>.<attempt>.pid``)."""
    definition = study_definition(maxTrials=4, parallelism=2)
    definition["trialTemplate"]["command"] += ["--until", str(tmp_path / "go"), *extra]
    definition["trialTemplate"]["env"] = {"PID_DIR": str(tmp_path)}
    return write_study(tmp_path / "study.yaml", definition)


def _held_run(tmp_path: Path) -> tuple[Path, StartedKatuna]:
    """:func:`_held_study` and the ``katuna run`` of it, once two of its trials run (the run is
    killed if they never do)."""
    study = _held_study(tmp_path)
    process = StartedKatuna("run", str(study), cwd=tmp_path, interruptible=True)
    try:
        _wait_for_two_running_trials(tmp_path)
    except BaseException:
        process.kill()
        process.communicate()
        raise
    return study, process


def _wait_for_two_running_trials(tmp_path: Path, while_waiting: Callable[[], None] = lambda: None) -> None:
    """Until two trials' processes run and the store has both as running (a process starts
    before the transaction that marks its trial running commits)."""
    def both() -> bool:
        return len(list(tmp_path.glob("*.1.pid"))) == 2 and \
            [t["state"] for t in _trials(tmp_path / "katuna.db")].count("RUNNING") == 2

    deadline = time.monotonic() + START_WAIT
    while time.monotonic() < deadline and not both():
        while_waiting()
        time.sleep(0.1)
    assert both()


def _assert_no_trial_outlives(tmp_path: Path) -> None:
    """No process of the study's trials is left (any left is killed, and the test fails)."""
    left = _attempt_processes(_uid(tmp_path / "katuna.db"))
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == [], "no trial process outlives the run"


def _assert_resumes(study: Path, tmp_path: Path, interrupted: int) -> None:
    """Run again, the study ends, its interrupted trials run again as new attempts."""
    db = tmp_path / "katuna.db"
    running = [t["number"] for t in _trials(db) if t["state"] == "RUNNING"]
    assert len(running) == interrupted
    (tmp_path / "go").touch()
    katuna("run", str(study), cwd=tmp_path)
    after = {t["number"]: t for t in _trials(db)}
    assert len(after) == 4 and {t["state"] for t in after.values()} == {"COMPLETE"}
    assert all(after[n]["attempt"] == 2 for n in running), "each interrupted trial ran again as a new attempt"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_or_sighup_stops_the_trials_like_ctrl_c_and_a_rerun_resumes(tmp_path: Path, sig: signal.Signals):
    study, process = _held_run(tmp_path)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=30)
    _assert_no_trial_outlives(tmp_path)
    assert process.returncode == 128 + sig
    assert f"Interrupted ({sig.name}): running trials were stopped. Run the same command again to resume" in stderr
    _assert_resumes(study, tmp_path, interrupted=2)


def test_a_run_killed_outright_takes_its_trials_whole_process_trees_with_it(tmp_path: Path):
    """A ``katuna run`` killed with SIGKILL runs no shutdown; its trials, each leading a session of
    its own with a background child and deaf to SIGTERM, still end with it (everything they
    started), instead of running on unwatched. The next run counts their attempts as lost and
    runs them again."""
    definition = yaml.safe_load(_held_study(tmp_path, "--ignore-sigterm").read_text())
    definition["trialTemplate"]["command"] = ["/bin/sh", "-c", 'sleep 600 & exec "$0" "$@"',
                                              *definition["trialTemplate"]["command"]]
    study = write_study(tmp_path / "study.yaml", definition)
    process = StartedKatuna("run", str(study), cwd=tmp_path)
    try:
        _wait_for_two_running_trials(tmp_path)
        uid = _uid(tmp_path / "katuna.db")
        assert len(_attempt_processes(uid)) == 4, "each trial and its background child"
    finally:
        process.kill()
        process.communicate()
    try:
        eventually(lambda: not _attempt_processes(uid), "every process of the trials ended")
    finally:
        _assert_no_trial_outlives(tmp_path)
    _assert_resumes(study, tmp_path, interrupted=2)
    lost = [t["reason"] for t in _trials(tmp_path / "katuna.db") if t["attempt"] == 2]
    assert len(lost) == 2 and all("its run was lost" in (reason or "") for reason in lost), lost


def test_closing_the_terminal_of_a_run_stops_its_trials(tmp_path: Path):
    """A real hang-up: the run's controlling terminal goes away (SIGHUP, then every write to it fails)."""
    study = _held_study(tmp_path)
    terminal, their_end = os.openpty()
    process = subprocess.Popen([*KATUNA, "run", str(study)], cwd=tmp_path, stdin=their_end, stdout=their_end,
                               stderr=their_end, start_new_session=True, preexec_fn=_take_terminal)
    os.close(their_end)
    try:
        _wait_for_two_running_trials(tmp_path, lambda: _drain(terminal))
    finally:
        os.close(terminal)
    code = process.wait(timeout=30)
    _assert_no_trial_outlives(tmp_path)
    assert code == 128 + signal.SIGHUP
    _assert_resumes(study, tmp_path, interrupted=2)


def test_a_second_ctrl_c_while_trials_are_stopped_does_not_abort_the_stopping(tmp_path: Path):
    study = _held_study(tmp_path, "--ignore-sigterm")
    process = StartedKatuna("run", str(study), cwd=tmp_path, interruptible=True)
    _wait_for_two_running_trials(tmp_path)
    process.send_signal(signal.SIGINT)
    eventually(lambda: list(tmp_path.glob("*.1.term")), "the run begins to stop its trials")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    _assert_no_trial_outlives(tmp_path)
    assert process.returncode == 130
    assert "Aborted!" not in stderr
    assert "SIGINT again: still stopping 2 running trial(s)" in stderr
    assert stderr.rstrip().endswith("Run the same command again to resume 'demo' (a katuna serve on this database "
                                    "resumes it by itself; katuna stop demo ends it).")
    _assert_resumes(study, tmp_path, interrupted=2)


def test_stop_from_another_process_ends_a_running_study(tmp_path: Path):
    definition = study_definition(mode="hang", maxTrials=4)
    study = write_study(tmp_path / "study.yaml", definition)
    process = StartedKatuna("run", str(study), cwd=tmp_path, interruptible=True)
    db = tmp_path / "katuna.db"
    deadline = time.monotonic() + START_WAIT
    while time.monotonic() < deadline and sum(t["state"] == "RUNNING" for t in _trials(db)) < 2:
        time.sleep(0.1)
    assert "stopped" in katuna("stop", "demo", cwd=tmp_path).stdout
    stdout, _ = process.communicate(timeout=30)
    assert process.returncode == 1
    assert "Study demo: stopped (stopped by user)" in stdout
    assert {t["state"] for t in _trials(db)} == {"PRUNED"}


def test_a_stop_and_delete_of_a_suspended_runs_study_say_its_trials_stop_once_it_resumes(tmp_path: Path):
    """A ``katuna run`` suspended with Ctrl-Z acts on nothing: its trials (each in a session of
    its own) run on, so the stop says so, and names the process to resume."""
    _, process = _held_run(tmp_path)
    uid = _uid(tmp_path / "katuna.db")
    process.send_signal(signal.SIGSTOP)
    try:
        waiting = f"its katuna run (process {process.pid}) is suspended, and its trials run on until it resumes"
        assert waiting in katuna("stop", "demo", cwd=tmp_path).stdout
        assert len(_attempt_processes(uid)) == 2, "the trials run on meanwhile"
        assert waiting in katuna("delete", "demo", cwd=tmp_path).stdout
    finally:
        process.send_signal(signal.SIGCONT)
    _, stderr = process.communicate(timeout=60)
    left = _attempt_processes(uid)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == [], "the run stopped its trials once it resumed"
    assert process.returncode == 1 and "was deleted by another process (its trials were stopped)" in stderr


def test_a_run_whose_study_another_process_deletes_ends_in_one_line_its_trials_stopped(tmp_path: Path):
    """``DELETE /studies/{name}`` through ``katuna serve`` on the run's database removes the study
    the run is running: the run stops its trials and ends with exit 1 and one line saying so, no
    traceback."""
    _, process = _held_run(tmp_path)
    uid = _uid(tmp_path / "katuna.db")
    service = Service(tmp_path, workers=1)
    try:
        assert service.request("DELETE", "/studies/demo")[0] == 204
    finally:
        service.close()
    stdout, stderr = process.communicate(timeout=60)
    left = _attempt_processes(uid)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == [], "no trial process outlives the run"
    assert process.returncode == 1
    assert stderr.endswith("\nerror: study 'demo' was deleted by another process (its trials were stopped)\n"), stderr
    assert "Traceback" not in stdout + stderr
    assert _trials(tmp_path / "katuna.db") == []


@pytest.mark.parametrize("elsewhere", ["same folders", "another log folder", "the database through a link"])
def test_a_run_of_a_study_another_run_runs_is_refused_and_leaves_that_run_as_it_was(tmp_path: Path, elsewhere: str):
    """A second ``katuna run`` of a study another live run runs would share its parallelism, and,
    with trial logs in another folder (``KATUNA_LOG_DIR``, or the database reached through a link,
    whose logs go beside the link), see none of its trials and run each again as lost: it is
    refused, naming the study and the process, and the first run goes on, resumable as ever."""
    study, process = _held_run(tmp_path)
    (tmp_path / "alias.db").symlink_to(tmp_path / "katuna.db")
    how = {"same folders": ([], {}), "another log folder": ([], {"KATUNA_LOG_DIR": str(tmp_path / "other-logs")}),
           "the database through a link": (["--db", str(tmp_path / "alias.db")], {})}[elsewhere]
    try:
        second = run_katuna("run", str(study), *how[0], cwd=tmp_path, env={**os.environ, "COLUMNS": "200", **how[1]})
        assert second.returncode == 2, second.stdout + second.stderr
        assert second.stderr == (f"error: study 'demo' is running in another `katuna run` (process {process.pid}) "
                                 "on this database; follow it with `katuna show demo`, or stop that process first "
                                 "to run it here\n")
        trials = _trials(tmp_path / "katuna.db")
        assert [t["state"] for t in trials].count("RUNNING") == 2 and {t["attempt"] for t in trials} == {1}
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
    assert process.returncode == 130
    _assert_no_trial_outlives(tmp_path)


def test_of_two_runs_of_a_study_started_at_once_one_runs_it_and_the_other_is_refused(tmp_path: Path):
    """Before either has started a trial, no trial process tells one run of the other (each may
    find the study stored by the other): the claim in the database does, one transaction at a time."""
    study = _held_study(tmp_path)
    runs = [subprocess.Popen([*KATUNA, "run", str(study)], cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, preexec_fn=interruptible) for _ in range(2)]
    try:
        deadline = time.monotonic() + START_WAIT  # two fresh katuna processes, one to store and claim the study
        while all(run.poll() is None for run in runs) and time.monotonic() < deadline:
            time.sleep(0.05)
        refused = [run for run in runs if run.poll() is not None]
        assert len(refused) == 1 and refused[0].returncode == 2, [run.poll() for run in runs]
        assert "is running in another `katuna run` (process " in refused[0].communicate()[1]
    finally:
        for run in runs:
            if run.poll() is None:
                run.send_signal(signal.SIGINT)
                run.communicate(timeout=60)
    _assert_no_trial_outlives(tmp_path)


def test_a_service_on_the_database_leaves_a_study_a_live_run_runs_to_it_whatever_its_log_folder(tmp_path: Path):
    """A ``katuna serve`` whose trial logs go elsewhere finds none of a ``katuna run``'s attempts:
    were it to look after the run's study, it would take each running trial as lost and run it
    again, while the run did likewise with its attempts. It leaves the study to the run, which
    ends it as if alone."""
    study, process = _held_run(tmp_path)
    service = Service(tmp_path, workers=2, KATUNA_LOG_DIR=str(tmp_path / "service-logs"))
    try:
        time.sleep(3)
        trials = _trials(tmp_path / "katuna.db")
        assert [t["state"] for t in trials].count("RUNNING") == 2 and {t["attempt"] for t in trials} == {1}
        assert not list((tmp_path / "service-logs").rglob("*.log"))
        (tmp_path / "go").touch()
        stdout, stderr = process.communicate(timeout=120)
    finally:
        service.close()
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stdout + stderr
    assert [(t["state"], t["attempt"]) for t in _trials(tmp_path / "katuna.db")] == [("COMPLETE", 1)] * 4
    _assert_no_trial_outlives(tmp_path)


def test_the_database_is_private_to_its_owner_in_new_folders_only_it_can_enter(tmp_path: Path):
    tmp_path.chmod(0o755)
    study = write_study(tmp_path / "study.yaml", study_definition(maxTrials=1, parallelism=1))
    db = tmp_path / "new" / "folder" / "katuna.db"
    katuna("run", str(study), "--db", str(db), cwd=tmp_path)
    assert [_mode(p) for p in (tmp_path / "new", tmp_path / "new" / "folder", db)] == [0o700, 0o700, 0o600]
    assert _mode(tmp_path) == 0o755, "a folder that already exists keeps its permissions"
    store = SqliteStore(db)
    try:
        store.add_study(StudyRecord(parse_study(study_definition(name="other")), {}, str(tmp_path), uid="other"))
        assert {_mode(Path(f"{db}{suffix}")) for suffix in ("-wal", "-shm")} == {0o600}
    finally:
        store.close()


def test_delete_refuses_a_study_that_follows_a_kubernetes_resource_and_keeps_it(tmp_path: Path):
    """katuna delete cannot ask the cluster whether the resource is still there (which would
    bring the study back): it refuses, naming the resource and how to delete it."""
    origin = {"kind": "Experiment", "namespace": "team", "name": "demo", "uid": "u-1", "generation": 1,
              "apiVersion": "kubeflow.org/v1beta1"}
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        store.add_study(StudyRecord(parse_study(study_definition()), {}, str(tmp_path), uid="u-1", status="completed",
                                    origin=origin))
    finally:
        store.close()
    refused = katuna("delete", "demo", cwd=tmp_path, check=False)
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr.startswith("error: study 'demo' follows the Experiment 'demo' in namespace 'team' "
                                     "(kubeflow.org/v1beta1)"), refused.stderr
    assert "kubectl delete experiments.kubeflow.org demo -n team" in refused.stderr
    assert " ".join(refused.stderr.split()).endswith(
        "which can then be deleted with DELETE /studies/demo of the service that watches it (katuna delete cannot "
        "ask the cluster whether the resource is gone)"), refused.stderr
    assert here("show", "demo", cwd=tmp_path).returncode == 0


def test_commands_on_an_unknown_study_say_so_and_where_they_looked(tmp_path: Path):
    SqliteStore(tmp_path / "katuna.db").close()
    result = here("show", "nope", cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert f"no study named 'nope' in {tmp_path / 'katuna.db'}" in result.stderr


@pytest.mark.parametrize("command", [("show", "demo"), ("trials", "demo", "--json"), ("best", "demo"),
                                     ("stop", "demo"), ("delete", "demo"), ("studies",)])
@pytest.mark.parametrize("db", [None, "new/typo.db"])
def test_commands_that_read_refuse_a_missing_database_and_create_nothing(tmp_path: Path, command: tuple[str, ...],
                                                                         db: str | None):
    result = here(*command, *(["--db", db] if db else []), cwd=tmp_path, check=False)
    assert (result.returncode, result.stdout) == (2, "")
    assert f"error: no database at {tmp_path / (db or 'katuna.db')} (give --db PATH or set KATUNA_DB" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("objective", [{"metric": "loss", "direction": "minimize"},
                                       {"metrics": [{"name": "loss", "direction": "minimize"},
                                                    {"name": "size", "direction": "maximize"}]}])
def test_a_failed_study_exits_1_whenever_it_is_run_and_has_no_best_trial(tmp_path: Path, objective: dict):
    study = write_study(tmp_path / "study.yaml", study_definition(mode="crash", maxTrials=2, parallelism=1,
                                                                  objective=objective))
    first = katuna("run", str(study), cwd=tmp_path, check=False)
    again = katuna("run", str(study), cwd=tmp_path, check=False)
    assert (first.returncode, again.returncode) == (1, 1)
    assert "Best trials" not in first.stdout, "no empty table"
    assert "No trial completed. The last of 2 failed, trial 1: exited with code 3" in first.stdout
    assert "\n  about to fail\n" in first.stdout, "the last lines it printed follow"
    assert "already failed" in again.stdout and "Nothing to run" in again.stdout
    table = here("best", "demo", cwd=tmp_path, check=False)
    as_json = here("best", "demo", "--json", cwd=tmp_path, check=False)
    assert (table.returncode, as_json.returncode) == (1, 1)
    assert "error: study 'demo' has no completed trial\n" in table.stderr
    assert json.loads(as_json.stdout) is None


def test_a_failed_runs_summary_names_a_command_that_lists_the_reasons_from_its_database(tmp_path: Path):
    """A run on a database given by ``--db`` names that database in the command it prints to
    read every trial's reason, which, run as printed, lists them (with no ``--db`` it would read
    ``./katuna.db``: none, or another database's study of the same name)."""
    study = write_study(tmp_path / "study.yaml", study_definition(mode="crash", maxTrials=1, parallelism=1))
    ran = katuna("run", str(study), "--db", "runs/other.db", cwd=tmp_path, check=False)
    assert ran.returncode == 1, ran.stderr
    hint = re.search(r"Every trial's reason: katuna (.*)", ran.stdout)
    assert hint is not None and hint[1] == "trials demo --json --db runs/other.db", ran.stdout
    listed = here(*shlex.split(hint[1]), cwd=tmp_path)
    assert [trial["reason"].startswith("exited with code 3") for trial in json.loads(listed.stdout)] == [True]


def test_a_failed_runs_summary_names_the_failure_the_studys_reason_names(tmp_path: Path):
    """Trial 0 fails after trial 1 has: the summary's last failure is the one that ended last,
    as the study's reason has it, not the highest-numbered one."""
    script = ('if [ "$KATUNA_TRIAL" = 0 ]; then while [ ! -e one-ended ]; do sleep 0.05; done; sleep 0.5; '
              'echo "trial 0 ends"; else echo "trial 1 ends"; touch one-ended; fi; exit 3')
    study = write_study(tmp_path / "study.yaml", study_definition(
        maxTrials=2, parallelism=2, trialTemplate={"command": ["sh", "-c", script, "sh", "${trialParameters.x}"]}))
    result = katuna("run", str(study), cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert "; no trial succeeded; the latest, trial 0: exited with code 3" in unlined(result.stdout)
    assert "No trial completed. The last of 2 failed, trial 0: exited with code 3" in result.stdout
    assert "\n  trial 0 ends\n" in result.stdout


def test_logs_prints_what_a_trial_printed_and_names_what_is_not_there(tmp_path: Path):
    run_file(write_study(tmp_path / "study.yaml", study_definition(mode="silent", maxTrials=1, parallelism=1)))
    log = next((tmp_path / "katuna-logs" / "demo").glob("*/0.1.log")).read_bytes()
    for asked, printed in ((), tmp_path / "printed"), (("--attempt", "1"), tmp_path / "printed-attempt"):
        assert run_katuna("logs", "demo", "0", *asked, cwd=tmp_path, stdout=printed).returncode == 0
        assert printed.read_bytes() == log and b"training without reporting the objective\n" in log
    beyond = here("logs", "demo", "0", "--attempt", "2", cwd=tmp_path, check=False)
    assert (beyond.returncode, beyond.stderr) == (1, "error: trial 0 of 'demo' has run 1 attempt(s); --attempt goes "
                                                     "up to 1\n")
    missing = here("logs", "demo", "5", cwd=tmp_path, check=False)
    assert (missing.returncode, missing.stderr) == (1, "error: study 'demo' has no trial 5\n")
    elsewhere = run_katuna("logs", "demo", "0", cwd=tmp_path,
                           env={**os.environ, "KATUNA_LOG_DIR": str(tmp_path / "other"), "COLUMNS": "500"})
    assert elsewhere.returncode == 1 and elsewhere.stderr.endswith(
        ": its file is not in the trial-log folder: removed, or the study's logs went to another folder (KATUNA_LOG_DIR "
        "as it was set where the study ran)\n"), elsewhere.stderr
    assert "Errno" not in elsewhere.stderr and "has not started" not in elsewhere.stderr
    huge = here("logs", "demo", str(2**64), cwd=tmp_path, check=False)
    assert huge.returncode == 2 and "is not in the range 0<=x<=9223372036854775807" in huge.stderr
    unwritable = run_katuna("logs", "demo", "0", cwd=tmp_path, stdout=Path("/dev/full"))
    assert (unwritable.returncode, unwritable.stderr) == (2, "error: cannot write the output: No space left on device\n")
    assert here("trials", "demo", "--after", str(2**64), cwd=tmp_path, check=False).returncode == 2


@pytest.mark.parametrize(("runs_on", "state", "started", "attempt", "why"), [
    ("kubernetes", "COMPLETE", 1.0, None, "the trial ran on Kubernetes, whose pods keep its log"),
    ("local", "WAITING", None, None, "the attempt has not started (the trial is WAITING)"),
    ("local", "WAITING", 1.0, None, "the attempt has not started (the trial is WAITING)"),
    ("local", "WAITING", 1.0, 1, "its file is not in the trial-log folder: removed"),
    ("local", "COMPLETE", 1.0, None, "its file is not in the trial-log folder: removed"),
], ids=["on a cluster", "never started", "a retry not started", "the earlier attempt's", "ran here"])
def test_a_missing_log_is_explained_by_what_is_known_of_its_trial(runs_on, state, started, attempt, why):
    record = StudyRecord(parse_study(study_definition()), study_definition(), ".", "uid", runs_on=runs_on)
    trial = TrialRecord("demo", 0, {}, state, attempt=2 if attempt else 1, started_at=started)
    assert _why_no_log(record, trial, attempt, FileNotFoundError(2, "No such file or directory")).startswith(why)


@pytest.mark.timeout(120)
def test_every_command_that_prints_fails_in_a_line_on_a_full_disk(tmp_path: Path):
    """Output a full disk refuses ends the command with exit 2 and one line, never a traceback;
    a run's study is stored and run all the same."""
    study = write_study(tmp_path / "study.yaml", study_definition(maxTrials=1, parallelism=1))
    image = Path(__file__).parent.parent / "examples" / "trial-image" / "study.yaml"
    for command in (("run", str(study)), ("run", str(study)), ("studies",), ("show", "demo"), ("trials", "demo"),
                    ("best", "demo"), ("convert", str(study)), ("render", str(image)), ("stop", "demo"),
                    ("delete", "demo"), ("--help",), ("--version",), ("trials", "--help"), ("serve", "-h")):
        result = run_katuna(*command, cwd=tmp_path, stdout=Path("/dev/full"), timeout=60)
        assert result.returncode == 2 and "Traceback" not in result.stderr, (command, result.stderr)
        assert result.stderr.splitlines()[-1] == "error: cannot write the output: No space left on device", command
    assert json.loads(here("studies", "--json", cwd=tmp_path).stdout) == []


def test_every_commands_help_is_written_as_its_other_output_is():
    """Each command's ``--help`` goes through :class:`~functions.cli_common.Command`, which fails
    on a full disk in a line, as the commands tried above do."""
    context = click.Context(cli_main)
    assert isinstance(cli_main, Command) and all(isinstance(cli_main.get_command(context, name), Command)
                                                 for name in cli_main.list_commands(context))


@pytest.mark.parametrize("asked", [["--help"], ["trials", "--help"], ["--version"]])
def test_help_and_version_to_a_reader_gone_away_end_quietly(asked: list[str]):
    """A reader that went away (``| head``) ends the help as it ends any command's output: no
    traceback, exit 0."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        result = run_katuna(*asked, cwd=Path.cwd(), stdout=Path(f"/proc/{os.getpid()}/fd/{writer}"), timeout=60)
    finally:
        os.close(writer)
    assert (result.returncode, result.stderr) == (0, "")


def test_a_trial_that_never_reported_its_objective_says_what_was_expected_and_what_it_printed_last(tmp_path: Path):
    study = write_study(tmp_path / "study.yaml", study_definition(mode="silent", maxTrials=1, parallelism=1))
    run = katuna("run", str(study), cwd=tmp_path, check=False, columns=400)
    assert run.returncode == 1
    assert ("No trial completed. The last of 1 failed, trial 0: metrics unavailable: objective 'loss' never "
            "reported (expected lines like loss=<number> on its output; its last lines report Validation-loss: "
            "is the name in objective.metric misspelt?); last lines:\n"
            "  training without reporting the objective\n  Validation-loss=0.5\n") in run.stdout
    listed = katuna("trials", "demo", cwd=tmp_path, columns=400).stdout
    assert ": … Validation-loss=0.5" in listed, "the reason's line ends on the last line the trial printed"


def failed_run(tmp_path: Path, definition: dict, code: str) -> subprocess.CompletedProcess[str]:
    """``katuna run`` of the study, its trials running the Python ``code`` (given their ``x``),
    asserted to exit 1 as a failed study does; its output as wide as 400 columns."""
    definition["trialTemplate"]["command"] = [sys.executable, "-c", code, "${trialParameters.x}"]
    run = katuna("run", str(write_study(tmp_path / "study.yaml", definition)), cwd=tmp_path, check=False, columns=400)
    assert run.returncode == 1, run.stdout + run.stderr
    return run


def test_an_objective_printed_with_a_colon_says_the_default_rule_reads_name_equals_value(tmp_path: Path):
    """Keras prints ``- loss: 0.2345 - accuracy: 0.91``; the default rule reads ``name=value`` only,
    so the reason says what the trial printed and what to print instead, or which field reads it."""
    definition = study_definition(maxTrials=1, parallelism=1)
    run = failed_run(tmp_path, definition, "import sys; print('1/1 - loss: 0.25 - acc: 0.9')")
    assert ("metrics unavailable: objective 'loss' never reported (expected lines like loss=<number> on its "
            "output; its last lines print loss with a colon (loss: 0.25), which is no name=value: print "
            "loss=0.25, or give metricsCollector.filters a rule that reads it); last lines:\n"
            "  1/1 - loss: 0.25 - acc: 0.9\n") in run.stdout


def test_an_objective_printed_with_a_colon_stops_the_run_after_three_trials_saying_what_to_fix(tmp_path: Path):
    """Keras' ``- loss: 0.25`` on every trial: 3 trials of 5, not all of them, though
    ``maxFailedTrials`` allows 4 failures; every later trial would print the same."""
    definition = study_definition(maxTrials=5, parallelism=1, maxFailedTrials=4)
    run = failed_run(tmp_path, definition, "import sys; print('1/1 - loss: ' + sys.argv[1])")
    assert ("Study demo: failed (every trial printed its objective with a colon: objective 'loss' never reported, "
            "while the first 3 trials print loss: <number>, which is no name=value; every later trial would fail "
            "alike, so the study stops. Have the trials print loss=<number>, or give metricsCollector.filters a "
            "rule that reads it") in run.stdout
    assert "Trials: 3 (0 complete, 3 failed, 0 pruned)" in run.stdout


def test_a_misspelt_objective_stops_the_run_after_three_trials_saying_what_to_fix(tmp_path: Path):
    """``metric: los`` where the trial prints ``loss=``: 3 trials of 4, not all of them, though
    ``maxFailedTrials`` allows 3 failures."""
    definition = study_definition(maxTrials=4, parallelism=1, maxFailedTrials=3,
                                  objective={"metric": "los", "direction": "minimize"})
    run = failed_run(tmp_path, definition, "import sys; print('loss=' + sys.argv[1])")
    assert ("Study demo: failed (every trial reported other metrics than its objective: objective 'los' never "
            "reported, while the first 3 trials report loss; every later trial would fail alike, so the study "
            "stops. Fix the name in objective.metric") in run.stdout
    assert "Trials: 3 (0 complete, 3 failed, 0 pruned)" in run.stdout


CONDITIONAL = [{"name": "x", "type": "float", "min": -5.0, "max": 5.0},
               {"name": "kernel", "type": "categorical", "values": ["poly", "rbf"]},
               {"name": "degree", "type": "int", "min": 2, "max": 5, "when": {"kernel": ["poly"]}},
               {"name": "learning_rate_schedule", "type": "categorical",
                "values": ["cosine_with_restarts", "linear_warmup_then_decay"]},
               {"name": "weight_decay", "type": "float", "min": 1e-6, "max": 0.1, "log": True},
               {"name": "dropout_probability", "type": "float", "min": 0.0, "max": 0.5}]
"""Parameters of a study too wide for 80 columns, ``degree`` only where ``kernel`` is ``poly``."""


def _conditional_study(tmp_path: Path, parameters: list[dict]) -> Path:
    """A study of 6 trials over ``parameters`` (given to the trial in its environment) that
    collects ``size`` and ``epoch`` besides its objective ``loss``."""
    definition = study_definition(maxTrials=6, parameters=parameters,
                                  objective={"metric": "loss", "direction": "minimize",
                                             "additionalMetrics": ["size", "epoch"]})
    definition["trialTemplate"]["env"] = {p["name"].upper(): f"${{trialParameters.{p['name']}}}" for p in parameters[1:]}
    return write_study(tmp_path / "study.yaml", definition)


def test_trials_shows_additional_metrics_and_a_dash_for_a_parameter_a_trial_does_not_have(tmp_path: Path):
    run_file(_conditional_study(tmp_path, CONDITIONAL[:3]))
    trials = json.loads(here("trials", "demo", "--json", cwd=tmp_path).stdout)
    assert {"degree" in t["params"] for t in trials} == {True, False}, "the seed gives trials with and without degree"
    lines = katuna("trials", "demo", cwd=tmp_path).stdout.splitlines()
    assert lines[1].split() == ["trial", "state", "loss", "size", "epoch", "x", "kernel", "degree"]
    rows = {int(line.split()[0]): line.split() for line in lines[3:] if line.strip()}
    for trial in trials:
        assert rows[trial["number"]][2:5] == [f"{trial['value']:.6g}", f"{trial['metrics']['size']:.4g}", "1"]
        assert rows[trial["number"]][7] == str(trial["params"].get("degree", "—"))
    assert "None" not in "\n".join(lines)


def test_output_to_a_pipe_is_never_cut_to_a_width_and_has_no_spinner(tmp_path: Path):
    """Where the output is no terminal and COLUMNS says nothing, lines are as long as they
    need: ``katuna studies | grep NAME`` finds a long name, and a run's progress line, printed
    once as it ends, has no spinner frame."""
    name = "a-study-whose-name-is-longer-than-a-narrow-terminal-has-room"
    study = write_study(tmp_path / "study.yaml", study_definition(name=name, maxTrials=1, parallelism=1))
    piped = {key: value for key, value in os.environ.items() if key != "COLUMNS"}

    def run(*args: str) -> str:
        """The command's standard output, a pipe (its output is far below a pipe's 64 KiB)."""
        reader, writer = os.pipe()
        with os.fdopen(reader) as output:
            try:
                ran = run_katuna(*args, cwd=tmp_path, env=piped, stdout=Path(f"/proc/{os.getpid()}/fd/{writer}"))
            finally:
                os.close(writer)
            assert ran.returncode == 0, ran.stderr
            return output.read()

    assert run("run", str(study)).startswith(f"{name} ━")
    assert [line for line in run("studies").splitlines() if name in line][0].split()[1:6] == \
        [name, "│", "-", "│", "completed"]
    assert f"{name}  status: completed  reason: max trials reached (1)\n" in run("show", name)


def test_a_wide_trials_table_fits_80_columns_keeping_every_number_whole(tmp_path: Path):
    run_file(_conditional_study(tmp_path, CONDITIONAL))
    trials = json.loads(here("trials", "demo", "--json", cwd=tmp_path).stdout)
    output = katuna("trials", "demo", cwd=tmp_path, columns=80).stdout
    lines = output.splitlines()
    assert max(map(len, lines)) <= 80
    assert lines[1].split() == ["trial", "state", "loss", "metrics", "params"]
    words = output.split()
    for trial in trials:
        assert f"{trial['value']:.6g}" in words and f"size={trial['metrics']['size']:.4g}" in words
        assert f"kernel={trial['params']['kernel']}" in words
        assert ("degree" in trial["params"]) == (f"degree={trial['params'].get('degree')}" in words)
    assert "None" not in output and "…" not in output


@pytest.mark.parametrize("columns", [1, 5])
def test_a_terminal_a_few_columns_wide_gets_every_table_squeezed_not_a_traceback(tmp_path: Path, columns: int):
    definition = study_definition(maxTrials=3, objective={"metrics": [{"name": "loss", "direction": "minimize"},
                                                                      {"name": "size", "direction": "maximize"}]})
    katuna("run", str(write_study(tmp_path / "multi.yaml", definition)), cwd=tmp_path, columns=columns)
    katuna("run", str(write_study(tmp_path / "single.yaml", study_definition(name="single", maxTrials=2))),
           cwd=tmp_path, columns=columns)
    for command in (("show", "demo"), ("best", "demo"), ("trials", "demo"), ("best", "single"), ("studies",)):
        assert katuna(*command, cwd=tmp_path, columns=columns).stderr == "", command


def test_show_of_a_multi_objective_study_prints_its_pareto_front_with_the_directions(tmp_path: Path):
    definition = study_definition(maxTrials=6, objective={"metrics": [{"name": "loss", "direction": "minimize"},
                                                                      {"name": "size", "direction": "maximize"}]})
    run_file(write_study(tmp_path / "study.yaml", definition))
    front = json.loads(here("best", "demo", "--json", cwd=tmp_path).stdout)
    lines = [line.strip() for line in katuna("show", "demo", cwd=tmp_path).stdout.splitlines()]
    title = lines.index("Pareto front (loss minimize, size maximize)")
    assert lines[title + 2].split() == ["trial", "loss", "size", "x"]
    shown = [line.split() for line in lines[title + 4:] if line.strip()]
    assert shown == [[str(t["number"]), f"{t['values'][0]:.6g}", f"{t['values'][1]:.6g}", f"{t['params']['x']:.3g}"]
                     for t in front]
    assert len(front) >= 2


def test_trials_of_a_multi_objective_study_mark_its_pareto_front_as_the_dashboard_and_the_csv_do(tmp_path: Path):
    """A ``pareto`` column after the state, ``◆ front`` on the trials of the front, blank on the
    others: the trials the JSON listing marks ``pareto: true``."""
    definition = study_definition(maxTrials=6, objective={"metrics": [{"name": "loss", "direction": "minimize"},
                                                                      {"name": "size", "direction": "maximize"}]})
    run_file(write_study(tmp_path / "study.yaml", definition))
    listed = json.loads(here("trials", "demo", "--json", cwd=tmp_path).stdout)
    assert {t["pareto"] for t in listed} == {True, False}
    lines = here("trials", "demo", cwd=tmp_path, env={"COLUMNS": "200"}).stdout.splitlines()
    assert lines[1].split() == ["trial", "state", "pareto", "loss", "size", "x"]
    rows = {int(line.split()[0]): line.split() for line in lines[3:] if line.strip()}
    assert {number: row[2:4] == ["◆", "front"] for number, row in rows.items()} == {
        t["number"]: t["pareto"] for t in listed}
    assert {len(row) for number, row in rows.items() if number not in [t["number"] for t in listed if t["pareto"]]} == {5}


def test_a_run_ends_on_a_sample_of_a_large_pareto_front_as_show_prints_it_not_the_whole_front(tmp_path: Path):
    definition = study_definition(maxTrials=25, parallelism=5, parameters=[
        {"name": "x", "type": "float", "min": 0.0, "max": 2.0}])
    definition["objective"] = {"metrics": [{"name": "loss", "direction": "minimize"},
                                           {"name": "size", "direction": "minimize"}]}
    ran = katuna("run", str(write_study(tmp_path / "study.yaml", definition)), cwd=tmp_path).stdout
    shown = katuna("show", "demo", cwd=tmp_path).stdout
    assert len(json.loads(here("best", "demo", "--json", cwd=tmp_path).stdout)) == 25, "every trial is on the front"
    title = "Pareto front (loss minimize, size minimize): 20 of its 25 trials, spread along it (katuna best lists all)"
    assert title in ran and title in shown
    rows = [line.split() for line in ran.split(title)[1].split("Results:")[0].splitlines()]
    assert len([row for row in rows if row and row[0].isdigit()]) == 20, ran


@pytest.mark.timeout(60)
def test_serve_on_a_port_in_use_exits_2_at_once_naming_the_port(tmp_path: Path):
    """The port is found taken before gunicorn starts: no worker is started and gunicorn never
    tries the port, which it would try again and again, logging each try ("Connection in use",
    "Retrying in 1 second") before giving up."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = katuna("serve", "--port", str(port), cwd=tmp_path, check=False)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (f"error: port {port} is already in use on 127.0.0.1 (another katuna serve?): "
                             "stop what listens there, or choose another port with --port\n"), "one line, no retries"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.timeout(90)
@pytest.mark.parametrize("host, url", [("::1", "[::1]"), ("[::1]", "[::1]"), ("127.0.0.2", "127.0.0.2")])
def test_serve_listens_on_any_loopback_address_and_answers_requests_naming_it(tmp_path: Path, host: str, url: str):
    """An IPv6 address written bare or in brackets; another address of 127/8, which a browser's
    page sends as its Host (an address no rebinding can point elsewhere)."""
    service = Service(tmp_path, workers=1, host=host)
    try:
        assert service.json("GET", "/studies") == (200, [])
        status, _, body = service.request("POST", "/studies", json.dumps(study_definition(name="here", maxTrials=1, parallelism=1)),
                                       {"Content-Type": "application/json", "Origin": service.base})
        assert status == 201, body
    finally:
        service.close()
    assert f"Listening at: http://{url}:{service.port}" in (tmp_path / "serve.log").read_text()


def _trials(db: Path) -> list[dict]:
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM trials")]
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _complete(db: Path) -> int:
    return sum(t["state"] == "COMPLETE" for t in _trials(db))


def _uid(db: Path) -> str:
    conn = sqlite3.connect(db, timeout=10)
    try:
        return conn.execute("SELECT uid FROM studies").fetchone()[0]
    finally:
        conn.close()


def _attempt_processes(uid: str) -> list[int]:
    """The live processes whose environment marks them as an attempt of the study's trials."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or not alive(proc.name):
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(item.startswith(f"KATUNA_ATTEMPT_ID={uid}/".encode()) for item in environ):
            found.append(int(proc.name))
    return found


def _take_terminal() -> None:
    """Make the terminal on stdin the controlling terminal of the new session, as a login does."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _drain(terminal: int) -> None:
    """Read what the run wrote to its terminal, so that it never waits for room to write."""
    while select.select([terminal], [], [], 0)[0]:
        try:
            if not os.read(terminal, 65536):
                return
        except OSError:
            return


@pytest.mark.timeout(60)
@pytest.mark.parametrize("command", [("run", "study.yaml"), ("serve", "--port", str(free_port()))])
def test_an_unusable_trial_log_folder_exits_2_naming_it_before_any_study_is_stored(tmp_path: Path, command):
    """No trial could start: the command refuses at once, naming the folder and KATUNA_LOG_DIR,
    instead of storing the study and retrying its first trials without end; it leaves no new
    database behind."""
    write_study(tmp_path / "study.yaml", study_definition(maxTrials=2))
    (tmp_path / "a-file").write_text("")
    logs = tmp_path / "a-file" / "logs"
    result = run_katuna(*command, cwd=tmp_path, env={**os.environ, "KATUNA_LOG_DIR": str(logs)}, timeout=60)
    assert (result.returncode, result.stdout) == (2, ""), result.stdout + result.stderr
    assert result.stderr.splitlines()[-1] == (f"error: cannot use the trial-log folder {logs}: Not a directory; katuna "
                                              "needs to create it and write in it (KATUNA_LOG_DIR names another folder)")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "katuna.db").exists(), "no database is left behind"


@pytest.mark.timeout(120)
def test_a_database_another_writer_holds_is_read_and_a_write_exits_2_saying_it_is_busy(tmp_path: Path):
    """Reading needs no write lock (not even to learn that no migration is due); a command that
    must write waits KATUNA_BUSY_TIMEOUT, then exits 2 with one line instead of a traceback,
    naming the database, as a user with several cannot tell which one is held otherwise."""
    run_file(write_study(tmp_path / "study.yaml", study_definition(maxTrials=2)))
    write_study(tmp_path / "other.yaml", study_definition(name="other", maxTrials=2))
    writer = sqlite3.connect(tmp_path / "katuna.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    env = {**os.environ, "KATUNA_BUSY_TIMEOUT": "0.2", "COLUMNS": "200"}
    try:
        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return run_katuna(*args, cwd=tmp_path, env=env, timeout=60)

        for command, shown in ((("studies",), "demo"), (("show", "demo"), "completed"), (("trials", "demo"), "COMPLETE"),
                               (("best", "demo", "--json"), '"state": "COMPLETE"')):
            read = run(*command)
            assert (read.returncode, read.stderr) == (0, ""), read.stdout + read.stderr
            assert shown in read.stdout, read.stdout
        for command in (("run", "other.yaml"), ("delete", "demo")):
            write = run(*command)
            assert write.returncode == 2, write.stdout + write.stderr
            assert write.stderr.splitlines()[-1] == ("error: the database katuna.db is busy: another writer held it "
                                                     "past the busy timeout (KATUNA_BUSY_TIMEOUT); retry later"), \
                write.stderr
            assert "Traceback" not in write.stderr
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert [study["name"] for study in json.loads(here("studies", "--json", cwd=tmp_path).stdout)] == ["demo"]


def test_a_command_finding_a_migration_due_and_the_database_held_exits_2_saying_so(tmp_path: Path,
                                                                                  monkeypatch: pytest.MonkeyPatch):
    """Every command migrates a database an older katuna made before using it, under the write
    lock; another process holding it (migrating it, perhaps, which takes minutes for a large
    database) past KATUNA_BUSY_TIMEOUT makes the command exit 2 with one line that says so."""
    from functions.adapters.sqlite_migrations import MIGRATIONS

    path = tmp_path / "katuna.db"
    SqliteStore(path).close()
    older = sqlite_utils.Database(sqlite3.connect(path, isolation_level=None))
    shared_journal(older, [])  # as katuna kept it before the twenty-sixth migration
    older.execute("PRAGMA user_version = 25")
    older.close()
    monkeypatch.setenv("KATUNA_BUSY_TIMEOUT", "0.2")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        for command in READ_COMMANDS[:4]:
            result = in_process(*command, "--db", str(path))
            assert (result.exit_code, result.stderr) == (2, (
                f"error: the database {path} is busy: it is due a one-off migration (schema 25 to "
                f"{len(MIGRATIONS)}), which another katuna process may be running (minutes, for a large database), "
                "and the write lock was held past the busy timeout (KATUNA_BUSY_TIMEOUT); retry later\n")), command
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert in_process("studies", "--db", str(path)).exit_code == 0


def _unread(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A katuna command whose standard output nobody reads (``| head`` that has ended): a pipe
    whose reading end is closed before the command writes to it."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        return run_katuna(*args, cwd=tmp_path, stdout=Path(f"/proc/{os.getpid()}/fd/{writer}"))
    finally:
        os.close(writer)


def test_a_run_whose_output_nobody_reads_exits_with_its_studys_status(tmp_path: Path):
    """The exit codes keep their meaning when the reader of the output went away: 0 for a study
    that completed, 1 for one that failed, on every run of it."""
    fine = write_study(tmp_path / "fine.yaml", study_definition(name="fine", maxTrials=2))
    broken = write_study(tmp_path / "broken.yaml", study_definition(name="broken", mode="crash", maxTrials=1, parallelism=1))
    for study, code in ((fine, 0), (broken, 1)):
        for _ in range(2):
            result = _unread(tmp_path, "run", str(study))
            assert result.returncode == code, result.stderr
            assert "Traceback" not in result.stderr and "error" not in result.stderr, result.stderr
    assert json.loads(here("show", "fine", "--json", cwd=tmp_path).stdout)["status"] == "completed"
    shown = _unread(tmp_path, "trials", "fine")
    assert (shown.returncode, shown.stderr) == (0, "")


def test_a_command_started_without_a_standard_output_exits_with_what_its_work_earned(tmp_path: Path):
    """A standard output closed before katuna starts (``>&-``, a daemon's): what would be
    printed goes nowhere, and the exit code is the command's own, without a traceback."""
    def closed(*args: str) -> subprocess.CompletedProcess[str]:
        process = StartedKatuna(*args, cwd=tmp_path, stdout_closed=True)
        _, stderr = process.communicate(timeout=120)
        return subprocess.CompletedProcess(args, process.wait(), None, stderr)

    study = write_study(tmp_path / "study.yaml", study_definition(maxTrials=2))
    assert closed("run", str(study)).returncode == 0
    for command in (("studies",), ("show", "demo", "--json"), ("trials", "demo"), ("best", "demo"),
                    ("logs", "demo", "0"), ("convert", str(study)), ("--help",)):
        result = closed(*command)
        assert (result.returncode, result.stderr) == (0, ""), command
    assert closed("show", "none").returncode == 1
    assert json.loads(here("show", "demo", "--json", cwd=tmp_path).stdout)["status"] == "completed"


def test_a_reasons_line_ends_on_what_the_trial_printed_not_on_an_earlier_attempts_note():
    from functions.cli_trial_table import reason_cell

    reason = ("exited with code 3; last lines:\ntraining\nabout to fail\n"
              "attempt 1 interrupted: the katuna process running it stopped, and ended it")
    assert reason_cell(reason) == "exited with code 3; last lines: … about to fail"
    assert reason_cell("attempt 1 preempted: Job demo-0 disappeared") == "attempt 1 preempted: Job demo-0 disappeared"
    assert reason_cell("") == ""
