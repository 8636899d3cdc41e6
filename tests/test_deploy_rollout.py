"""A rollout's overlap: the old and the new revision's service write one database file.

The Knative Service places a new revision's pod on the running pod's node (where the
ReadWriteOnce volume is attached), so for a while two service processes share the database, as
two real ``katuna serve`` processes do here: each takes studies and handles the other's queued
events. Nothing may be lost or repeated, and the new one carries on alone once the old one stops.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from conftest import study_definition
from http_helpers import Service

pytestmark = pytest.mark.slow

TRIALS = 4


def submit(service: Service, name: str) -> None:
    definition = study_definition(name=name, maxTrials=TRIALS)
    status, _, body = service.request("POST", "/studies", json.dumps(definition), {"Content-Type": "application/json"})
    assert status == 201, body


def trials(service: Service, name: str) -> Counter:
    status, listed = service.json("GET", f"/studies/{name}/trials")
    assert status == 200
    return Counter(trial["state"] for trial in listed)


def test_two_revisions_on_one_database_lose_and_repeat_nothing(tmp_path):
    old = Service(tmp_path, workers=1)
    try:
        submit(old, "before")
        new = Service(tmp_path, workers=1)
        try:
            submit(new, "during")
            submit(old, "during-old")
            for name in ("before", "during", "during-old"):
                assert new.wait_for(name, timeout=120)["status"] == "completed"
            old.close()
            submit(new, "after")
            assert new.wait_for("after", timeout=120)["status"] == "completed"
            for name in ("before", "during", "during-old", "after"):
                assert trials(new, name) == Counter(COMPLETE=TRIALS)
        finally:
            new.close()
    finally:
        if old.process.poll() is None:
            old.close()
