"""What the CLI is given and what it prints, from a hostile point of view: files that are not
study files (binary, invalid UTF-8, devices, FIFOs, symlinks to them, huge files, secrets that
are not studies) and values that look like terminal markup or control sequences."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
import yaml
from conftest import study_definition, unlined
from test_cli import here, katuna

from functions.adapters.sqlite_store import SqliteStore

pytestmark = pytest.mark.slow

SECRET = "hunter2-secret-value"


def _binary(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 8)


def _invalid_utf8(path: Path) -> None:
    path.write_bytes(b"name: demo\ndescription: caf\xe9 " + SECRET.encode() + b"\n")


def _device(path: Path) -> None:
    path.symlink_to("/dev/zero")


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _symlink_to_fifo(path: Path) -> None:
    os.mkfifo(path.with_suffix(".fifo"))
    path.symlink_to(path.with_suffix(".fifo").name)


def _huge(path: Path) -> None:
    path.write_text(yaml.safe_dump(study_definition()) + f"# {SECRET}\n" + "#" * (1 << 20) + "\n")


FILES = {
    "binary": (_binary, "is not UTF-8 text (byte 128 cannot be decoded); expected a YAML or JSON text file"),
    "invalid-utf8": (_invalid_utf8, "is not UTF-8 text (byte 27 cannot be decoded); expected a YAML or JSON text file"),
    "device": (_device, "is a character device; expected a regular file"),
    "fifo": (_fifo, "is a FIFO; expected a regular file"),
    "symlink-to-fifo": (_symlink_to_fifo, "is a FIFO; expected a regular file"),
    "huge": (_huge, "is larger than 1048576 bytes (KATUNA_MAX_BODY); expected a smaller file"),
}


def _one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr and SECRET not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize("command", ["run", "convert", "render"])
@pytest.mark.parametrize("kind", sorted(FILES))
def test_a_file_that_is_not_a_small_utf8_regular_file_exits_2_naming_it(tmp_path: Path, kind: str, command: str):
    make, expected = FILES[kind]
    make(tmp_path / "study.yaml")
    result = here(command, "study.yaml", cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert _one_line_error(result.stderr) == f"error: study.yaml {expected}"
    assert SECRET not in result.stdout
    assert not (tmp_path / "katuna.db").exists()


@pytest.mark.parametrize("kind", ["binary", "fifo", "device", "missing"])
def test_a_warm_start_file_is_read_the_same_way_and_named_as_the_studys_field(tmp_path: Path, kind: str):
    make, expected = FILES.get(kind, (lambda path: None, "cannot open known.csv: No such file or directory"))
    make(tmp_path / "known.csv")
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study_definition(warmStart={"file": "known.csv"})))
    result = here("run", "study.yaml", cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and SECRET not in result.stderr
    shown = expected if kind == "missing" else f"known.csv {expected}".replace("a YAML or JSON", "a CSV or JSON")
    assert unlined(result.stderr).splitlines() == ["error: study.yaml is not a valid study:", f"  - warmStart.file: {shown}"]


def test_a_read_limit_set_large_reads_a_study_file_in_memory_of_its_size(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch):
    """A study file is read a chunk at a time: one read of the whole limit (2**53 bytes here)
    would ask for that much memory before reading a byte."""
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study_definition()))
    monkeypatch.setenv("KATUNA_MAX_BODY", str(2**53))
    result = katuna("convert", "study.yaml", cwd=tmp_path, check=False)
    assert (result.returncode, result.stderr) == (0, "")
    assert yaml.safe_load(result.stdout)["name"] == "demo"


DATABASES = {
    "directory": (lambda path: path.mkdir(), "it is a directory"),
    "fifo": (os.mkfifo, "it is a FIFO"),
    "device": (lambda path: path.symlink_to("/dev/zero"), "it is a character device"),
    "link-loop": (lambda path: path.symlink_to(path.name),
                  "it is a symbolic link that leads to no file (Too many levels of symbolic links)"),
    "dangling-link": (lambda path: path.symlink_to("/nonexistent/k.db"),
                      "it is a symbolic link to /nonexistent/k.db, which is not there"),
}


@pytest.mark.parametrize("kind", sorted(DATABASES))
def test_a_database_path_no_database_can_be_at_exits_2_naming_what_is_there_and_makes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str):
    """``KATUNA_DB`` (or ``--db``) naming a directory, a FIFO or a device, or a link leading to
    no file, is refused by every command in one line saying what is there: not read as a missing
    or empty database, and no trial-log folder made beside it by a run refused anyway."""
    make, what = DATABASES[kind]
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study_definition()))
    make(tmp_path / "k.db")
    monkeypatch.setenv("KATUNA_DB", "k.db")
    for command in (["run", "study.yaml"], ["studies"], ["show", "demo"], ["trials", "demo"]):
        result = here(*command, cwd=tmp_path, check=False)
        assert result.returncode == 2, (command, result.stderr)
        assert _one_line_error(result.stderr) == (f"error: cannot use the database k.db: {what}; expected an SQLite "
                                                  "database file, or a path where katuna creates one"), command
    assert sorted(path.name for path in tmp_path.iterdir()) == ["k.db", "study.yaml"]


DAMAGES = {
    "header": (0, b"\0" * 100, "file is not a database"),
    "schema": (100, bytes(range(256)) * 15, "database disk image is malformed"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_database_is_named_as_damaged_by_every_command_and_left_byte_for_byte(
        tmp_path: Path, damage: str):
    """A katuna database damaged in place (its header, or its schema's page, overwritten) is
    refused by every command in one line naming the file and saying it is damaged, not told as
    a matter of rights; nothing is written to it."""
    SqliteStore(tmp_path / "k.db").close()
    offset, garbage, why = DAMAGES[damage]
    with (tmp_path / "k.db").open("r+b") as file:
        file.seek(offset)
        file.write(garbage)
    before = (tmp_path / "k.db").read_bytes()
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study_definition()))
    for command in (["run", "study.yaml"], ["studies"], ["show", "demo"], ["delete", "demo"]):
        result = here(*command, "--db", "k.db", cwd=tmp_path, check=False)
        assert result.returncode == 2, (command, result.stderr)
        assert _one_line_error(result.stderr) == (
            f"error: cannot use the database k.db ({why}): the file is damaged, or is no SQLite database; katuna "
            "left it as it is: restore it from a backup (docs/reliability.md, Backups), or give --db (or "
            "KATUNA_DB) another path"), command
    assert (tmp_path / "k.db").read_bytes() == before


def test_a_damaged_page_of_a_studys_trials_is_told_as_damaged_by_every_command_that_reads_it(tmp_path: Path):
    """A page of the trials table overwritten, the file's header and schema intact: each
    command reading the trials says the database is damaged, in one line, never a traceback."""
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study_definition()))
    here("run", "study.yaml", "--db", "k.db", cwd=tmp_path)
    conn = sqlite3.connect(tmp_path / "k.db")
    page_size, = conn.execute("PRAGMA page_size").fetchone()
    root, = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'trials'").fetchone()
    conn.close()
    with (tmp_path / "k.db").open("r+b") as file:
        file.seek((root - 1) * page_size + 8)
        file.write(b"\xff" * 200)
    for command in (["studies"], ["show", "demo"], ["best", "demo"], ["trials", "demo"], ["run", "study.yaml"]):
        result = here(*command, "--db", "k.db", cwd=tmp_path, check=False)
        assert result.returncode == 2, (command, result.stderr)
        assert _one_line_error(result.stderr).startswith(
            "error: cannot use the database k.db (database disk image is malformed): the file is damaged"), command


def test_a_document_that_is_not_a_study_is_not_echoed_back(tmp_path: Path):
    (tmp_path / "credentials.yaml").write_text(f"AWS_SECRET_ACCESS_KEY_{SECRET}: x\ntoken: {SECRET}\n")
    result = here("run", "credentials.yaml", cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert _one_line_error(result.stderr).startswith("error: credentials.yaml is not a study: expected a YAML or JSON")


def test_a_yaml_error_says_where_without_quoting_the_file(tmp_path: Path):
    (tmp_path / "study.yaml").write_text(f'name: demo\npassword: "{SECRET}\n  more: [1\n')
    result = here("convert", "study.yaml", cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert "not valid YAML or JSON: found unexpected end of stream (line 4, column 1)" in result.stderr
    assert SECRET not in result.stderr and "Traceback" not in result.stderr


def test_a_symlink_to_a_study_file_is_read(tmp_path: Path):
    (tmp_path / "real.yaml").write_text(yaml.safe_dump(study_definition()))
    (tmp_path / "study.yaml").symlink_to("real.yaml")
    assert yaml.safe_load(katuna("convert", "study.yaml", cwd=tmp_path).stdout)["name"] == "demo"


MARKUP = ["[/x]", "[link=https://attacker.invalid]click[/link]", "[bold red]loud", "\x1b]8;;https://attacker.invalid\x07x",
          "\x1b[2J\u202eevil", ":-1:", ":thumbs_up:"]


def test_values_are_printed_as_they_are_never_as_markup_or_control_sequences(tmp_path: Path):
    definition = study_definition(maxTrials=len(MARKUP), parallelism=1,
                                  algorithm={"name": "grid"}, parameters=[
                                      {"name": "x", "type": "discrete", "values": [1.0]},
                                      {"name": "tag", "type": "categorical", "values": MARKUP}])
    definition["trialTemplate"]["env"] = {"TAG": "${trialParameters.tag}"}
    (tmp_path / "study.json").write_text(json.dumps(definition))
    ran = katuna("run", "study.json", cwd=tmp_path)
    shown = [katuna(*command, cwd=tmp_path).stdout
             for command in (["trials", "demo"], ["best", "demo"], ["show", "demo"], ["studies"])]
    for output in (ran.stdout, *shown):
        assert "\x1b" not in output and "\u202e" not in output
    for value in ("[/x]", "[link=https://attacker.invalid]click[/link]", "[bold red]loud",
                  "\\x1b]8;;https://attacker.invalid\\x07x", "\\x1b[2J\\u202eevil", ":-1:", ":thumbs_up:"):
        assert value in shown[0], f"{value!r} is shown as it is"


def test_an_output_encoding_without_a_character_gets_its_escape_not_a_traceback(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch):
    definition = study_definition(maxTrials=1, parallelism=1, description="étude", algorithm={"name": "grid"},
                                  parameters=[{"name": "x", "type": "discrete", "values": [1.0]},
                                              {"name": "tag", "type": "categorical", "values": ["日本"]}])
    definition["trialTemplate"]["env"] = {"TAG": "${trialParameters.tag}"}
    (tmp_path / "study.json").write_text(json.dumps(definition))
    monkeypatch.setenv("PYTHONIOENCODING", "ascii")
    ran = katuna("run", "study.json", cwd=tmp_path)
    shown = {command: katuna(command, "demo", cwd=tmp_path).stdout for command in ("show", "trials", "best")}
    missing = katuna("show", "日本", cwd=tmp_path, check=False)
    assert "\\u65e5\\u672c" in ran.stdout and "\\xe9tude" in shown["show"], shown["show"]
    assert all("\\u65e5\\u672c" in output for output in shown.values()), shown
    assert (missing.returncode, missing.stderr) == (1, f"error: no study named '\\u65e5\\u672c' in {tmp_path}/katuna.db\n")


def test_emoji_codes_and_markup_in_values_and_messages_are_printed_as_they_are(tmp_path: Path):
    definition = study_definition(maxTrials=1, parallelism=1, algorithm={"name": "grid"}, parameters=[
        {"name": "x", "type": "discrete", "values": [1.0]},
        {"name": "tag", "type": "categorical", "values": [":-1:"]},
        {"name": "mark", "type": "categorical", "values": ["[bold]:thumbs_up:"]}])
    definition["trialTemplate"]["env"] = {"TAG": "${trialParameters.tag}", "MARK": "${trialParameters.mark}"}
    (tmp_path / "study.json").write_text(json.dumps(definition))
    katuna("run", "study.json", cwd=tmp_path)
    show = katuna("show", "demo", cwd=tmp_path, columns=400).stdout
    assert "tag=:-1: mark=[bold]:thumbs_up:" in show, show
    missing = katuna("show", "no:-1:", cwd=tmp_path, check=False, columns=400)
    assert missing.returncode == 1
    assert "'no:-1:'" in missing.stderr, missing.stderr
    for output in (show, missing.stderr):
        assert "\U0001f44e" not in output and "\U0001f44d" not in output, "no code became an emoji"


def test_a_non_ascii_metric_name_is_refused_saying_ascii_letters_and_a_parameter_name_is_taken(tmp_path: Path):
    """The default metric filter reads ASCII names only; a parameter's name is any printable text."""
    study = study_definition(objective={"metric": "точность", "direction": "maximize"},
                             parameters=[{"name": "скорость", "type": "float", "min": 0.0, "max": 1.0}])
    study["trialTemplate"]["command"] = ["python", "train.py", "${trialParameters.скорость}"]
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study, allow_unicode=True), encoding="utf-8")
    result = here("run", "study.yaml", cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert "parameters[0]" not in result.stderr, result.stderr
    assert ("  - objective.metric: metric name 'точность' cannot be matched by the default metric filter: use ASCII "
            "letters (a-z, A-Z), digits, '_', '-' or '|', or a filter that reads it") in unlined(result.stderr)


def test_a_named_study_whose_every_other_field_is_misspelt_names_each_with_the_expected_fields(tmp_path: Path):
    (tmp_path / "study.yaml").write_text("name: demo\nobjectiv: {metric: loss}\nparameter: []\n")
    result = here("run", "study.yaml", cwd=tmp_path, check=False)
    assert result.returncode == 2
    lines = unlined(result.stderr).splitlines()
    assert lines[0] == "error: study.yaml is not a valid study:"
    for field in ("objectiv", "parameter"):
        assert (f"  - {field}: unknown field; expected one of algorithm, description, earlyStopping, initialTrials, "
                "kubernetes, maxFailedTrials, maxTrials, metricsCollector, name, nodePool, objective, parallelism, "
                "parameters, timeBudget, trialTemplate, warmStart") in lines


def test_a_warm_start_from_a_study_of_a_database_not_made_yet_leaves_no_database(tmp_path: Path):
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study_definition(warmStart={"study": "earlier"})))
    result = here("run", "study.yaml", "--db", "fresh.db", cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert unlined(result.stderr).splitlines() == [
        "error: study.yaml is not a valid study:",
        "  - warmStart.study: no study named 'earlier' in this database; expected the name of an earlier study "
        "whose completed trials the sampler learns from"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]



HISTORY_REFUSAL = ("- maxTrials: a study's Optuna history holds at most 3 trials (set by KATUNA_MAX_HISTORY), and this "
                   "study may create 4 (maxTrials): every process that serves the study first loads its whole history, "
                   "under a second at the limit. Run it as several studies of at most 3 trials (warmStart carries the "
                   "results of one into the next)")


@pytest.mark.parametrize("warm", [False, True])
def test_a_study_past_the_history_limit_is_refused_before_the_run_makes_a_database(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warm: bool):
    """As every other refused study: its problems listed (with a warm start from a study the new
    database cannot hold, both), exit 2, and no empty database left behind."""
    monkeypatch.setenv("KATUNA_MAX_HISTORY", "3")
    extra = {"warmStart": {"study": "earlier"}} if warm else {}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study_definition(maxTrials=4, **extra)))
    result = here("run", "study.yaml", "--db", "fresh.db", cwd=tmp_path, check=False)
    assert result.returncode == 2
    warm_refusal = ("- warmStart.study: no study named 'earlier' in this database; expected the name of an earlier "
                    "study whose completed trials the sampler learns from ")
    assert " ".join(unlined(result.stderr).split()) == \
        f"error: study.yaml is not a valid study: {warm_refusal if warm else ''}{HISTORY_REFUSAL}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]
