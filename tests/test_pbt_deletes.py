"""A deleted study of population-based training takes its local trials' checkpoints with it
(``checkpoints/`` in its folder of trial logs, up to a checkpoint's size a trial): ``katuna
delete`` and ``DELETE /studies/{name}`` delete that folder before the study's record, following
no link; the trial logs stay. Real parts: the CLI, the web app, an SQLite file, real folders."""

from __future__ import annotations

import os
import time
from pathlib import Path

from conftest import study_definition
from http_helpers import Service, run_katuna
from test_pbt_runs import experiment

from functions.adapters.local_checkpoints import dropped
from functions.adapters.sqlite_store import SqliteStore
from functions.adapters.web import create_app
from functions.core import pbt
from functions.core.records import StudyRecord
from functions.core.validate import parse_study
from functions.runtime import Runtime
from functions.settings import Settings

SETTINGS = {"suggestion_trial_dir": "/ckpt", "n_population": 5, "truncation_threshold": 0.2}


def stored(db: Path, name: str) -> Path:
    """An ended pbt study ``name`` in ``db``, its folder of trial logs holding a log and two
    trials' checkpoints (one a copy cut short); that folder."""
    definition = study_definition(name=name, algorithm={"name": pbt.NAME, "seed": 1, "settings": SETTINGS},
                                  maxTrials=20)
    store = SqliteStore(db)
    try:
        record = store.add_study(StudyRecord(parse_study(definition), definition, ".", f"uid-{name}",
                                             status="completed", created_at=time.time()))
    finally:
        store.close()
    logs = Settings(db=db).logs / record.log_folder
    for trial in ("0", "1", ".2.partial"):
        (logs / "checkpoints" / trial / "step").mkdir(parents=True)
        (logs / "checkpoints" / trial / "step" / "model.ckpt").write_bytes(b"weights")
    (logs / "0.1.log").write_text("loss=1\n")
    return logs


def test_katuna_delete_deletes_the_checkpoints_and_keeps_the_logs(tmp_path: Path):
    db = tmp_path / "katuna.db"
    logs = stored(db, "population")
    done = run_katuna("delete", "population", "--db", str(db), cwd=tmp_path, env={**os.environ, "COLUMNS": "300"})
    assert done.returncode == 0, done.stderr
    assert f"its checkpoints in {logs.resolve() / 'checkpoints'} deleted" in done.stdout
    assert not (logs / "checkpoints").exists() and (logs / "0.1.log").read_text() == "loss=1\n"


def test_the_apis_delete_deletes_the_checkpoints_and_keeps_the_logs(tmp_path: Path):
    db = tmp_path / "katuna.db"
    logs = stored(db, "population")
    runtime = Runtime(Settings(db=db))
    try:
        answer = create_app(runtime).test_client().delete("/studies/population")
    finally:
        runtime.close()
    assert answer.status_code == 204, answer.text
    assert not (logs / "checkpoints").exists() and (logs / "0.1.log").exists()


def test_a_link_a_trial_planted_is_deleted_never_followed(tmp_path: Path):
    """A link inside the checkpoints goes, what it names stays; a link on the way to them (the
    study's folder replaced by one) leaves everything behind it: the deletion is safe to repeat."""
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "checkpoints").mkdir(parents=True)
    (elsewhere / "checkpoints" / "precious").write_text("keep")
    logs = stored(tmp_path / "katuna.db", "population")
    (logs / "checkpoints" / "0" / "out").symlink_to(elsewhere)
    log_dir, folder = Settings(db=tmp_path / "katuna.db").logs, "population/uid-population"
    assert dropped(log_dir, folder, "uid-population")
    assert not (logs / "checkpoints").exists() and (elsewhere / "checkpoints" / "precious").exists()
    assert not dropped(log_dir, folder, "uid-population"), "nothing left to delete, and no error"
    os.rename(logs, tmp_path / "moved")
    logs.symlink_to(elsewhere)
    assert not dropped(log_dir, folder, "uid-population")
    assert (elsewhere / "checkpoints" / "precious").read_text() == "keep"
    assert not dropped(tmp_path / "no-logs", folder, "uid-population")


def started_trial(tmp_path: Path, service: Service) -> tuple[Path, Path]:
    """A pbt study posted to ``service`` whose trials save their checkpoints once stopped, with
    its first trial running: its folder of trial logs and the folder its trials tell of."""
    told = tmp_path / "told"
    told.mkdir()
    service.submit(experiment(f"--save-when-stopped={told}", parallel=1))
    deadline = time.monotonic() + 60
    while not (told / "started-0").exists():
        assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
        time.sleep(0.05)
    [logs] = (tmp_path / "katuna-logs" / "simple-pbt").iterdir()
    assert (logs / "checkpoints" / "0").is_dir()
    return logs, told


def saved(told: Path) -> None:
    """Once the stopped trial saved its checkpoint (it may, while the stop's grace lasts)."""
    deadline = time.monotonic() + 30
    while not (told / "saved-0").exists():
        assert time.monotonic() < deadline, "the stopped trial saved nothing"
        time.sleep(0.05)


def test_a_trial_that_saves_as_it_is_stopped_leaves_no_checkpoint_after_the_apis_delete(tmp_path: Path):
    """The deletion stops the study's trials, whose processes have a grace to end in; one that
    saves its checkpoint then is waited for, and what it saved is deleted with the rest."""
    service = Service(tmp_path, workers=1)
    try:
        logs, told = started_trial(tmp_path, service)
        status, _, body = service.request("DELETE", "/studies/simple-pbt")
        assert status == 204, body
        saved(told)
    finally:
        service.close()
    assert not (logs / "checkpoints").exists(), sorted(p.name for p in (logs / "checkpoints").rglob("*"))


def test_a_trial_that_saves_as_it_is_stopped_leaves_no_checkpoint_after_katuna_delete(tmp_path: Path):
    """``katuna delete`` of a study the service has just stopped ends what still runs of its
    trials (their grace included) before it deletes their checkpoints."""
    service = Service(tmp_path, workers=1)
    try:
        logs, told = started_trial(tmp_path, service)
        status, _, body = service.request("POST", "/studies/simple-pbt/stop")
        assert status in (200, 202, 204), body
        done = run_katuna("delete", "simple-pbt", cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        saved(told)
    finally:
        service.close()
    assert not (logs / "checkpoints").exists(), sorted(p.name for p in (logs / "checkpoints").rglob("*"))
