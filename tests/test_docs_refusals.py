"""The refusals of a trial listing that the pages quote (docs/api.md's filters, the dashboard's
trial table, which reads them with the same code) are the service's own words: each is asked of
the real app (Flask's test client on a real Runtime and SQLite file), and a page quoting one
that no request here makes fails too, so a refusal quoted later is checked as well."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from conftest import app_client, study_definition
from doc_blocks import ROOT

from functions.core.records import StudyRecord
from functions.core.validate import parse_study
from functions.runtime import Runtime
from functions.settings import Settings

PAGES = ("docs/api.md", "docs/dashboard.md")
ASKED = {
    "state=DONE": "docs/api.md",
    "field=param:lr&min=0.5&max=0.1": "docs/api.md",
    "pareto=true": "docs/api.md",
    "param:optimizer=nadam": "docs/dashboard.md",
    "field=param:x&min=0,5": "docs/dashboard.md",
    "field=param:x&min=2.0&max=1.0": "docs/dashboard.md",
}
"""Each request's query, and the page that quotes what the service answers it."""
QUOTED = re.compile(r"`((?:min|max) of [\w:]+|state|pareto|field|order|after|param:\w+): [^`]+`")
"""A quoted refusal of a listing's argument, as the service words it: ``min of x: expected ...``."""


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A study of one objective, ``loss``, with the float parameters ``lr`` and ``x`` and the
    categorical ``optimizer`` (``adam``, ``sgd``) the pages' examples name."""
    base = tmp_path_factory.mktemp("refusals")
    runtime = Runtime(Settings(db=base / "katuna.db"))
    definition = study_definition(name="demo", parameters=[
        {"name": "lr", "type": "float", "min": 1.0e-4, "max": 1.0},
        {"name": "x", "type": "float", "min": -5.0, "max": 5.0},
        {"name": "optimizer", "type": "categorical", "values": ["adam", "sgd"]}],
        trialTemplate={"command": ["train", "${trialParameters.lr}", "${trialParameters.x}",
                                   "${trialParameters.optimizer}"]})
    runtime.store().add_study(StudyRecord(parse_study(definition), definition, str(base), "uid-demo",
                                          status="completed"))
    runtime.close()
    with app_client(base / "katuna.db") as served:
        yield served


def _text(page: str) -> str:
    """The page on one line, as a quote may be wrapped over several."""
    return " ".join((ROOT / page).read_text().split())


def _refusal(client, query: str) -> str:
    """The message of the listing's refusal of ``query``, the study's name written as the pages
    write it, ``{name}``."""
    answer = client.get(f"/studies/demo/trials?{query}")
    assert answer.status_code == 400, answer.get_data(as_text=True)
    return answer.get_json()["message"].replace("/studies/demo/", "/studies/{name}/")


@pytest.mark.parametrize("query", sorted(ASKED))
def test_each_refusal_a_page_quotes_is_the_services_answer(client, query: str):
    assert f"`{_refusal(client, query)}`" in _text(ASKED[query])


def test_every_refusal_of_a_listing_the_pages_quote_is_asked_here(client):
    quoted = {(page, match.group(0).strip("`")) for page in PAGES for match in QUOTED.finditer(_text(page))}
    asked = {(page, _refusal(client, query)) for query, page in ASKED.items()}
    assert sorted(quoted - asked) == []

