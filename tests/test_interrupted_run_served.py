"""A ``katuna run`` interrupted beside a ``katuna serve`` on its database (the dashboard's), as a
person watching it on the dashboard would have it: the service goes on with the study, as it goes
on with any whose process is gone, and the run's last line says so and how to end it, where
"run the same command again" alone would have the person believe the study paused."""

from __future__ import annotations

import signal
from pathlib import Path

import yaml
from conftest import study_definition
from http_helpers import Service, run_katuna
from started_katuna import StartedKatuna
from waiting import START_WAIT, eventually

from functions.adapters.sqlite_store import SqliteStore
from functions.core.records import RUNNING


def test_an_interrupted_run_says_a_service_on_its_database_resumes_it_and_how_to_end_it(tmp_path: Path):
    definition = study_definition(maxTrials=4, parallelism=2)
    definition["trialTemplate"]["command"] += ["--until", str(tmp_path / "go")]
    definition["trialTemplate"]["env"] = {"PID_DIR": str(tmp_path)}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(definition))
    service = Service(tmp_path, workers=1)
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        run = StartedKatuna("run", "study.yaml", cwd=tmp_path, interruptible=True)
        try:
            eventually(lambda: len(list(tmp_path.glob("*.1.pid"))) == 2 and len(store.trials("demo", [RUNNING])) == 2,
                       "the run's two trials, their launches committed", timeout=START_WAIT)
            run.send_signal(signal.SIGINT)
            _, stderr = run.communicate(timeout=90)
        finally:
            run.kill()
        assert run.returncode == 130, stderr
        assert stderr.rstrip().endswith("Run the same command again to resume 'demo' (a katuna serve on this "
                                        "database resumes it by itself; katuna stop demo ends it)."), stderr
        eventually(lambda: len(list(tmp_path.glob("*.2.pid"))) == 2, "the service resuming the trials", timeout=60)
        assert run_katuna("stop", "demo", cwd=tmp_path).returncode == 0
        eventually(lambda: store.get_study("demo").status == "stopped", "the study stopped")
    finally:
        (tmp_path / "go").touch()
        service.close()
        store.close()
