"""A fresh process that handles one event imports what that event needs, and nothing more.

A service scaled from zero pays for every import before its first answer, so the event path
must not pull in the dashboard (Flask, Jinja, Plotly), the cluster and cloud clients, YAML or
the plotting and science stacks. The provision script, run once per change to a pool, imports
its cloud's client and none of the search. The imports are checked, not timed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import study_definition

from functions.core.events import study_created
from functions.core.validate import parse_study
from functions.embedded import Embedded
from functions.settings import Settings

NOT_NEEDED = ("flask", "werkzeug", "jinja2", "plotly", "optuna_dashboard", "kubernetes", "google", "boto3",
              "botocore", "cloudevents", "prometheus_client", "rich", "yaml", "scipy", "matplotlib", "pandas",
              "sklearn", "sqlalchemy")
"""Packages handling a trial's end never needs (their top-level names)."""

HANDLE_ONE = """
import json, sys
from pathlib import Path
from functions.core.events import trial_finished
from functions.embedded import Embedded
from functions.settings import Settings

runner = Embedded(Settings(db=Path(sys.argv[1])))
record = runner.store.get_study("demo")
runner.broker.publish_and_handle(trial_finished("demo", record.uid, 0, 1, outcome="exited", exit_code=0))
states = {t.number: t.state for t in runner.store.trials("demo")}
loaded = sorted({name.split(".")[0] for name in sys.modules})
runner.close()
print(json.dumps({"states": states, "loaded": loaded}))
"""


@pytest.mark.slow
def test_handling_a_trial_end_in_a_fresh_process_imports_only_what_it_needs(tmp_path: Path):
    db = tmp_path / "katuna.db"
    definition = study_definition(mode="hang", maxTrials=10, parallelism=2)
    runner = Embedded(Settings(db=db))
    try:
        record = runner.submit(parse_study(definition), definition, tmp_path)
        suggested = runner.dispatcher.deliver(study_created("demo", record.uid))
        runner.dispatcher.deliver(suggested[0])
    finally:
        runner.close()

    out = subprocess.run([sys.executable, "-c", HANDLE_ONE, str(db)], capture_output=True, text=True, timeout=120,
                         check=True)
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["states"] == {"0": "FAIL", "1": "RUNNING", "2": "RUNNING", "3": "WAITING"}, \
        "the event was handled: trial 0 ended, the waiting trials took the free slots, another was asked for"
    assert [name for name in NOT_NEEDED if name in result["loaded"]] == []


@pytest.mark.parametrize(("cloud", "client"), [("gke", "google"), ("eks", "boto3")])
def test_the_provision_script_imports_its_clouds_client_and_no_optuna(cloud: str, client: str):
    """``python -m infra.provision`` reads katuna's settings and a pool's shape, never a study's
    search: Optuna (and the science stack under it) would cost every run a third of a second."""
    probe = (f"import json, sys; import infra.{cloud}, infra.provision; "
             "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    loaded = json.loads(out.stdout)
    assert client in loaded, "the probe imported the cloud's adapter"
    assert [name for name in ("optuna", "numpy", "scipy", "flask", "sqlite_utils") if name in loaded] == []
