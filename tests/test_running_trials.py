"""``KATUNA_MAX_RUNNING_TRIALS``: a bound on the trials ``katuna serve`` runs at once across
every study, each study within its own ``parallelism``. A trial past it waits, stored
``WAITING``, and starts once another trial's end frees room."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import study_definition
from http_helpers import Service

from functions.settings import InvalidSetting, Settings

CONCURRENCY = ("touch {d}/$KATUNA_STUDY.$KATUNA_TRIAL; n=$(ls {d} | wc -l); sleep 0.5; "
               "rm {d}/$KATUNA_STUDY.$KATUNA_TRIAL; echo x=${{trialParameters.x}}; echo loss=$n")
"""A trial that reports as its loss how many trials ran when it started (itself included): a
file of its own in a shared folder while it runs. The largest such count is the most trials
that ever ran at once, since the trial that began last among them counted them all."""


@pytest.mark.slow
def test_studies_each_within_their_parallelism_run_no_more_trials_at_once_than_the_service_allows(tmp_path: Path):
    running = tmp_path / "running"
    running.mkdir()
    service = Service(tmp_path, workers=2, KATUNA_MAX_RUNNING_TRIALS="2")
    try:
        for name in ("first", "second", "third"):
            study = study_definition(name=name, parallelism=2, maxTrials=3,
                                     trialTemplate={"command": ["sh", "-c", CONCURRENCY.format(d=running)]})
            status, answer = service.json("POST", "/studies", body=json.dumps(study),
                                          headers={"Content-Type": "application/json"})
            assert status == 201, answer
        counts = []
        for name in ("first", "second", "third"):
            assert service.wait_for(name, timeout=120)["status"] == "completed"
            trials = service.json("GET", f"/studies/{name}/trials")[1]
            assert [trial["state"] for trial in trials] == ["COMPLETE"] * 3, trials
            counts += [trial["value"] for trial in trials]
    finally:
        service.close()
    assert max(counts) <= 2, counts


def test_the_service_wide_bound_is_a_positive_number_of_trials():
    assert Settings.from_env({}).max_running_trials == 1_000
    assert Settings.from_env({"KATUNA_MAX_RUNNING_TRIALS": "8"}).max_running_trials == 8
    with pytest.raises(InvalidSetting, match="KATUNA_MAX_RUNNING_TRIALS: expected a positive number of trials, got 0"):
        Settings.from_env({"KATUNA_MAX_RUNNING_TRIALS": "0"})
