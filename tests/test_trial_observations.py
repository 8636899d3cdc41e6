"""A trial's observations a page at a time: a trial keeps up to 10,000 of each attempt over up to
100 attempts, so its view (``GET /studies/{name}/trials/{number}``, ``katuna show NAME NUMBER``
and the dashboard's trial page) holds the first 1,000 and the key the rest go on from, which
``GET /studies/{name}/trials/{number}/observations`` and ``katuna show --after`` page through."""

from __future__ import annotations

import contextlib
import json
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import app_client, study_definition

from functions.adapters.sqlite_store import SqliteStore
from functions.cli import main
from functions.core.metrics import Observation
from functions.core.records import COMPLETE, StudyRecord, TrialRecord
from functions.core.validate import parse_study

FIRST, SECOND = 1_500, 1_000
"""Observations of the trial's first attempt and of its second."""


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "katuna.db"
    store = SqliteStore(path)
    try:
        definition = study_definition()
        store.add_study(StudyRecord(parse_study(definition), definition, str(tmp_path), "uid-1"))
        store.add_trial(TrialRecord("demo", 0, {"x": 1.0}, COMPLETE, attempt=2, metrics={"loss": 0.5}))
        store.add_observations("demo", 0, 1, [Observation("loss", float(i), i) for i in range(FIRST)])
        store.add_observations("demo", 0, 2, [Observation("loss", float(i), i) for i in range(SECOND)])
    finally:
        store.close()
    return path


def _next(headers) -> str | None:
    found = re.fullmatch(r'<([^>]*)>; rel="next"', headers.get("Link", ""))
    return found[1] if found else None


def test_a_trials_view_holds_its_first_observations_and_the_listing_pages_through_every_one(db: Path):
    with app_client(db) as client:
        view = client.get("/studies/demo/trials/0").get_json()
        assert len(view["observations"]) == 1_000 and view["observationCount"] == FIRST + SECOND
        assert view["observations"][0] == {"attempt": 1, "metric": "loss", "value": 0.0, "step": 0, "timestamp": None}
        assert view["observationsAfter"] == "1~999"
        url: str | None = f"/studies/demo/trials/0/observations?limit=700&after={view['observationsAfter']}"
        seen = list(view["observations"])
        while url is not None:
            answer = client.get(url)
            assert answer.status_code == 200, answer.get_json()
            seen += answer.get_json()
            url = _next(answer.headers)
        assert [(o["attempt"], o["step"]) for o in seen] == \
            [(1, i) for i in range(FIRST)] + [(2, i) for i in range(SECOND)], "each once, in order"
        first = client.get("/studies/demo/trials/0/observations")
        assert len(first.get_json()) == 1_000 and _next(first.headers) == \
            "/studies/demo/trials/0/observations?limit=1000&after=1~999"
        for bad, named in (("after=1.999", "after: expected an observation's key"), ("limit=10001", "limit"),
                           ("offset=3", "offset: not a parameter")):
            refused = client.get(f"/studies/demo/trials/0/observations?{bad}")
            assert refused.status_code == 400 and refused.get_json()["message"].startswith(named), refused.get_json()
        assert client.get("/studies/demo/trials/7/observations").status_code == 404


def test_katuna_show_prints_a_page_of_observations_and_how_to_see_the_next(db: Path):
    first = CliRunner().invoke(main, ["show", "demo", "0", "--db", str(db)], env={"COLUMNS": "200"})
    assert first.exit_code == 0, first.output
    assert f"1,000 of 2,500 observations shown; more follow: katuna show demo 0 --after 1~999 --db {db}" in first.stdout
    last = CliRunner().invoke(main, ["show", "demo", "0", "--db", str(db), "--after", "2~0"], env={"COLUMNS": "200"})
    assert last.exit_code == 0, last.output
    assert "999 of 2,500 observations shown\n" in last.stdout and "more follow" not in last.stdout
    as_json = CliRunner().invoke(main, ["show", "demo", "0", "--db", str(db), "--json", "--after", "1~999"])
    assert [o["attempt"] for o in json.loads(as_json.stdout)["observations"]][499:501] == [1, 2]
    refused = CliRunner().invoke(main, ["show", "demo", "--db", str(db), "--after", "1~999"])
    assert refused.exit_code == 2 and "--after: given only with a trial's NUMBER" in refused.output
    malformed = CliRunner().invoke(main, ["show", "demo", "0", "--db", str(db), "--after", "x"])
    assert malformed.exit_code == 2 and "expected an observation's key" in malformed.output
    for given in (["--after", "x"], ["--after", "x", "--db", str(db)]):
        unnumbered = CliRunner().invoke(main, ["show", "demo", *given])
        assert unnumbered.exit_code == 2 and "--after: given only with a trial's NUMBER" in unnumbered.output, \
            "the number is what is missing, whatever the key"


@pytest.mark.parametrize("where", [".", "elsewhere"])
def test_the_next_page_katuna_show_names_is_a_command_that_shows_it_from_where_it_was_named(db: Path, where: str):
    """The command the hint names reaches the same database as the one that printed it: with
    ``--db`` where that is not the one a command finds by itself (``./katuna.db`` here, no
    ``KATUNA_DB``), so it never shows another database's study of the same name."""
    folder = db.parent / where
    folder.mkdir(exist_ok=True)
    with contextlib.chdir(folder):
        first = CliRunner().invoke(main, ["show", "demo", "0", "--db", str(db)], env={"COLUMNS": "200", "KATUNA_DB": None})
        hint = re.search(r"more follow: katuna (.*)", first.stdout)
        assert hint is not None, first.stdout
        assert ("--db" in hint[1]) == (where != "."), hint[1]
        following = CliRunner().invoke(main, shlex.split(hint[1]), env={"COLUMNS": "200", "KATUNA_DB": None})
    assert following.exit_code == 0, following.output
    assert "1,000 of 2,500 observations shown; more follow" in following.stdout, following.stdout


def test_the_dashboards_trial_page_shows_a_page_of_observations_with_a_link_to_the_next(db: Path):
    with app_client(db) as client:
        page = client.get("/ui/studies/demo/trials/0").get_data(as_text=True)
        assert "1000 of 2500 shown" in page and page.count('<tr><td class="">loss</td>') == 1_000
        assert 'href="/ui/studies/demo/trials/0?after=1~999"' in page
        rest = client.get("/ui/studies/demo/trials/0?after=2~0").get_data(as_text=True)
        assert "999 of 2500 shown" in rest and "the next" not in rest
