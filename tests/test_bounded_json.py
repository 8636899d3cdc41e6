"""A JSON body is read as JSON, to the same data and within the same bounds as the YAML reader
keeps: only faster, and with escaped characters beyond the Basic Multilingual Plane read as the
characters they are."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import study_definition

from functions.adapters.web import create_app
from functions.core import bounded_json, bounded_yaml, yaml_bounds
from functions.runtime import Runtime
from functions.settings import Settings


def _yaml_only(text: str):
    """What the YAML reader alone makes of ``text``: the data, or its error's type and message."""
    loader = bounded_yaml._CoreLoader(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        return type(exc).__name__, str(exc)
    finally:
        loader.dispose()


def _read(text: str):
    try:
        return bounded_yaml.load(text)
    except yaml.YAMLError as exc:
        return type(exc).__name__, str(exc)


SAME = {
    "a study": json.dumps(study_definition()),
    "numbers": '{"i": -12, "f": 1e-05, "g": 2.5E3, "z": -0.0, "big": 123456789012345678901234567890}',
    "texts": r'{"s": "tab\tquote\"slash\/nul\u0000", "n": null, "b": [true, false]}',
    "a key twice": '{"a": 1, "b": {"c": 1, "c": 2}}',
    "an integer past the largest float": '{"a": ' + "9" * 400 + "}",
    "NaN": '{"a": NaN}',
    "a float past the largest": '{"a": 1e400}',
    "nesting at the bound": "[" * 63 + "]" * 63,
    "nesting past the bound": "[" * 65 + "]" * 65,
    "not JSON": "{a: 1, b: [x, y]}",
    "a top-level list": "[1, 2]",
}


@pytest.mark.parametrize("text", SAME.values(), ids=SAME.keys())
def test_json_reads_as_the_yaml_reader_reads_it(text: str):
    assert _read(text) == _yaml_only(text)


def test_json_reads_as_the_yaml_reader_reads_it_to_the_last_value_the_bound_admits(monkeypatch: pytest.MonkeyPatch):
    """At the bound of values and one past it, the two readers agree: the same data, then the
    same refusal. The bound is lowered to a thousand: the YAML reader alone takes seconds to
    compose a hundred thousand values, through the same count."""
    monkeypatch.setattr(yaml_bounds, "MAX_NODES", 1_000)
    at, past = (json.dumps({"junk": [0] * n}) for n in (997, 998))  # a mapping, its key and its list count too
    assert _read(at) == _yaml_only(at) == {"junk": [0] * 997}
    assert _read(past) == _yaml_only(past) == (
        "DocumentTooLarge", "holds more than 1,000 values (each mapping, list and scalar counts one), far more than "
        "any study needs")


def test_a_json_body_past_the_bound_of_values_is_refused_as_the_yaml_reader_refuses_it():
    with pytest.raises(yaml_bounds.DocumentTooLarge) as caught:
        bounded_yaml.load(json.dumps({"junk": [0] * 100_001}))
    assert str(caught.value) == yaml_bounds.too_many()
    assert "more than 100,000 values" in str(caught.value)


def test_a_json_body_of_many_values_is_read_by_the_json_parser_not_yaml():
    text = json.dumps({"junk": list(range(90_000))})
    assert bounded_json.read(text, yaml_bounds.MAX_NODES, yaml_bounds.MAX_DEPTH, yaml_bounds.MAX_INT_TEXT) \
        == {"junk": list(range(90_000))}


def test_an_escaped_character_beyond_the_basic_plane_is_the_character(tmp_path: Path):
    """``json.dumps`` writes an emoji as a pair of surrogate escapes; the YAML reader alone made
    them two lone surrogates, which a study may not hold, so the study was refused."""
    definition = {**study_definition(name="party"), "description": "done \U0001F389"}
    text = json.dumps(definition)
    assert "\\ud83c\\udf89" in text
    assert _yaml_only(text)["description"] != definition["description"]
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        client = create_app(runtime).test_client()
        assert client.post("/studies", data=text, headers={"Content-Type": "application/json"}).status_code == 201
        assert client.get("/studies/party").get_json()["description"] == "done \U0001F389"
    finally:
        runtime.close()


def _nested(levels: int) -> object:
    value: object = 1
    for level in range(levels):
        value = {"a": value} if level % 2 else [value]
    return value


@pytest.mark.parametrize("levels, bound, deeper", [(0, 0, False), (1, 0, True), (64, 64, False), (65, 64, True),
                                                   (5_000, 64, True)])
def test_nesting_past_a_bound_is_told_at_any_depth_without_recursion(levels: int, bound: int, deeper: bool):
    assert bounded_json.deeper_than(_nested(levels), bound) is deeper
    assert bounded_json.deeper_than({"wide": [_nested(3)] * 10_000}, 5) is False
