"""``katuna optuna-dashboard``: Optuna's own dashboard over the journal in katuna's database."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request

import pytest
from conftest import run_study, study_definition
from http_helpers import KATUNA, free_port

pytestmark = pytest.mark.slow


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_optuna_dashboard_reads_the_study_from_katunas_database(embedded, tmp_path):
    record = run_study(embedded, study_definition(name="od-demo"), tmp_path)
    assert record.status == "completed"
    trials = embedded.store.trials("od-demo")
    port = free_port()
    log = (tmp_path / "dashboard.log").open("w")
    server = subprocess.Popen([KATUNA, "optuna-dashboard", "--db", str(tmp_path / "katuna.db"), "--port", str(port)],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                summaries = get(base + "/api/studies")["study_summaries"]
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "dashboard.log").read_text()
                time.sleep(0.2)
        [summary] = [s for s in summaries if s["study_name"] == "od-demo"]
        detail = get(f"{base}/api/studies/{summary['study_id']}")
        assert sorted(t["number"] for t in detail["trials"]) == [t.number for t in trials]
        assert {t["number"]: t["values"][0] for t in detail["trials"]} == {t.number: t.values[0] for t in trials}
        assert detail["trials"][0]["params"][0]["name"] == "x"
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def test_optuna_dashboard_names_a_missing_database(tmp_path):
    result = subprocess.run([KATUNA, "optuna-dashboard", "--db", str(tmp_path / "none.db")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "no database at" in result.stderr
    assert not (tmp_path / "none.db").exists()
