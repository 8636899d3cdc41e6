"""A study's ``description`` is kept, shown (``GET /studies/{name}``, ``katuna show``, the dashboard's
study page) and part of what makes a study submitted again the same one: through the real app
(Flask's test client on a real Runtime and a real SQLite file) and the real CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import app_client, study_definition

from functions.adapters.web import create_app
from functions.cli import main
from functions.runtime import Runtime
from functions.settings import Settings

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def served(tmp_path: Path) -> Iterator:
    with app_client(tmp_path / "katuna.db") as served:
        yield served


def test_a_study_shows_its_description_and_one_submitted_again_with_another_is_a_conflict(served):
    definition = study_definition(name="described", description="baseline, lr only")
    assert served.post("/studies", data=json.dumps(definition), headers=JSON).status_code == 201
    assert served.get("/studies/described").get_json()["description"] == "baseline, lr only"
    assert served.post("/studies", data=json.dumps(definition), headers=JSON).status_code == 200

    changed = served.post("/studies", data=json.dumps({**definition, "description": "with momentum"}), headers=JSON)
    assert changed.status_code == 409
    assert changed.get_json()["changed"] == ["description"]
    dropped = served.post("/studies", data=json.dumps({k: v for k, v in definition.items() if k != "description"}),
                          headers=JSON)
    assert (dropped.status_code, dropped.get_json()["changed"]) == (409, ["description"])
    assert served.get("/studies/described").get_json()["description"] == "baseline, lr only"


def test_a_study_without_a_description_shows_none(served):
    assert served.post("/studies", data=json.dumps(study_definition(name="plain")), headers=JSON).status_code == 201
    assert served.get("/studies/plain").get_json()["description"] is None
    assert 'id="study-description"' not in served.get("/ui/studies/plain").text


def test_the_dashboards_study_page_shows_the_description_as_text(served):
    """As written, markup and all, in its summary; a terminal's colour codes left out."""
    definition = study_definition(name="described", description="ünïcode <b>baseline</b> \x1b[31mred")
    assert served.post("/studies", data=json.dumps(definition), headers=JSON).status_code == 201
    page = served.get("/ui/studies/described").text
    assert '<dd id="study-description" class="description">ünïcode &lt;b&gt;baseline&lt;/b&gt; red</dd>' in page


def test_katuna_show_prints_the_description_under_the_status_line(tmp_path: Path):
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        definition = study_definition(name="described", description="baseline \x1b[31mred")
        created = create_app(runtime).test_client().post("/studies", data=json.dumps(definition), headers=JSON)
        assert created.status_code == 201
    finally:
        runtime.close()
    shown = CliRunner().invoke(main, ["show", "described", "--db", str(tmp_path / "katuna.db")])
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines()[1] == "baseline \\x1b[31mred"
    as_json = CliRunner().invoke(main, ["show", "described", "--json", "--db", str(tmp_path / "katuna.db")])
    assert json.loads(as_json.output)["description"] == "baseline \x1b[31mred"
