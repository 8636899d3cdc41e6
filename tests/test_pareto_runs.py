"""Studies of several objectives run for real (``katuna run``, a real subprocess per trial, a real
SQLite file) and read back as a user of Optuna's multi-objective studies reads them: the front
against Optuna's own ``best_trials`` of the same storage, and the listings' filters and orders
on each objective's metric, whatever another metric of the trial holds (a NaN, an infinity)."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import app_client
from http_helpers import run_katuna
from test_cli import here

from functions.adapters.sqlite_store import SqliteStore

OUTCOMES = {
    0: "accuracy=0.91 latency=0.015 loss=0.3",
    1: "accuracy=0.95 latency=0.05 loss=nan",     # on the front, its loss NaN
    2: "accuracy=0.80 latency=0.01 loss=0.3",
    3: "accuracy=0.97 latency=0.09 loss=inf",     # on the front, its loss infinite
    4: "accuracy=0.99 latency=inf loss=0.1",      # fails: an objective is not finite
    5: "accuracy=0.93 latency=0.02 loss=0.2",     # beaten by none but 6, its twin: both on the front
    6: "accuracy=0.93 latency=0.02 loss=0.2",
    7: "accuracy=0.85 latency=0.08 loss=0.4",     # beaten
}
"""What each trial prints, by its parameter ``k``."""


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, dict]]:
    """A grid over ``k`` of two objectives and a collected loss, run to its end; its trials'
    JSON by ``k``."""
    folder = tmp_path_factory.mktemp("mo")
    (folder / "trial.py").write_text(f"import sys\nprint({OUTCOMES!r}[int(sys.argv[1])])\n")
    study = {"name": "mo", "algorithm": {"name": "grid"}, "parallelism": 2, "maxFailedTrials": 8,
             "objective": {"metrics": [{"name": "accuracy", "direction": "maximize"},
                                       {"name": "latency", "direction": "minimize"}], "additionalMetrics": ["loss"]},
             "parameters": [{"name": "k", "type": "int", "min": 0, "max": len(OUTCOMES) - 1}],
             "trialTemplate": {"command": [sys.executable, "trial.py", "${trialParameters.k}"]}}
    (folder / "mo.yaml").write_text(yaml.safe_dump(study))
    done = run_katuna("run", "mo.yaml", "--db", "katuna.db", cwd=folder)
    assert done.returncode == 0, done.stdout + done.stderr
    trials = json.loads(here("trials", "mo", "--db", str(folder / "katuna.db"), "--json").stdout)
    return folder / "katuna.db", {t["params"]["k"]: t for t in trials}


def numbers(ran: tuple[Path, dict[int, dict]], *ks: int) -> list[int]:
    return [ran[1][k]["number"] for k in ks]


def ordered(ran: tuple[Path, dict[int, dict]], *ties: tuple[int, ...], descending: bool = False) -> list[int]:
    """The numbers of the trials of each group of ``k`` in turn, a group's (tied) by number, in
    the order's direction."""
    return [n for tied in ties for n in sorted(numbers(ran, *tied), reverse=descending)]


def listed(db: Path, *options: str) -> list[int]:
    return [t["number"] for t in json.loads(here("trials", "mo", "--db", str(db), "--json", *options).stdout)]


def test_the_front_is_optunas_best_trials_of_the_same_storage(ran):
    db, by_k = ran
    store = SqliteStore(db, 5.0)
    try:
        theirs = optuna.load_study(study_name="mo", storage=store.optuna_storage()).best_trials
    finally:
        store.close()
    best = json.loads(here("best", "mo", "--db", str(db), "--json").stdout)
    assert sorted(t["number"] for t in best) == sorted(t.number for t in theirs) == sorted(numbers(ran, 0, 1, 2, 3, 5, 6))
    assert by_k[4]["state"] == "FAIL" and by_k[4]["metrics"]["accuracy"] == 0.99


def test_a_metric_filter_keeps_every_trial_whose_metric_is_in_range_whatever_its_other_metrics_hold(ran):
    """Trials 1 and 3 of the front hold a loss that is NaN or infinite, and trial 4 failed on an
    infinite latency: each still has its accuracy, which the range reads."""
    db, _ = ran
    assert listed(db, "--pareto", "--min", "metric:accuracy", "0.9") == sorted(numbers(ran, 0, 1, 3, 5, 6))
    assert listed(db, "--min", "metric:accuracy", "0.96") == sorted(numbers(ran, 3, 4))
    assert listed(db, "--min", "metric:latency", "0.085") == sorted(numbers(ran, 3, 4))
    assert listed(db, "--max", "metric:loss", "0.25") == sorted(numbers(ran, 4, 5, 6))


def test_an_order_by_a_metric_puts_each_trial_at_its_value_an_infinity_at_its_end_and_nan_last(ran):
    db, _ = ran
    assert listed(db, "--pareto", "--order", "metric:latency") == ordered(ran, (2,), (0,), (5, 6), (1,), (3,))
    assert listed(db, "--order", "metric:latency:desc") == ordered(ran, (4,), (3,), (7,), (1,), (5, 6), (0,), (2,),
                                                                   descending=True)
    assert listed(db, "--order", "metric:loss") == ordered(ran, (4,), (5, 6), (0, 2), (7,), (3,), (1,))


def test_the_apis_pages_in_a_metrics_order_go_on_past_an_infinity(ran):
    db, _ = ran
    with app_client(db) as client:
        seen, path = [], "/studies/mo/trials?order=metric:loss:desc&limit=1"
        while path:
            answer = client.get(path)
            assert answer.status_code == 200, answer.get_data(as_text=True)
            seen += [t["number"] for t in answer.get_json()]
            found = re.fullmatch(r'<([^>]+)>; rel="next"', answer.headers.get("Link", ""))
            path = found.group(1) if found else None
    losses = {t["number"]: t["metrics"]["loss"] for t in ran[1].values()}
    assert losses[seen[0]] == "inf" and losses[seen[-1]] == "nan"
    finite = [losses[n] for n in seen[1:-1]]
    assert all(math.isfinite(v) for v in finite) and finite == sorted(finite, reverse=True)
    assert sorted(seen) == sorted(losses)
