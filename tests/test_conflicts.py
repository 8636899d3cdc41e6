"""Which fields a study submitted under a stored study's name changes, as its conflict names them."""

from __future__ import annotations

import json
import sys

from conftest import study_definition

from functions.core.conflicts import changed_paths, same_study, study_conflict
from functions.core.formats import load_definition
from functions.core.records import StudyRecord
from functions.core.resources import in_namespace
from functions.core.spec import Study
from functions.core.validate import parse_study


def stored(definition: dict) -> StudyRecord:
    return StudyRecord(parse_study(definition), definition, "/tmp", "uid-1")


def test_paths_go_into_mappings_by_key_and_into_lists_of_the_same_length_by_index():
    before = {"a": 1, "b": {"c": [1, {"d": 2}], "e": "x"}, "gone": 0, "list": [1, 2]}
    after = {"a": 1.0, "b": {"c": [1, {"d": 3}], "e": "y"}, "list": [1, 2, 3], "new": 0}
    assert changed_paths(before, after) == ["b.c[1].d", "b.e", "gone", "list", "new"]
    assert changed_paths(before, before) == []


def test_the_conflict_names_the_changed_fields_as_written_and_how_to_go_on():
    edited = study_definition(maxTrials=5, objective={"metric": "loss", "direction": "minimize", "goal": 0.1})
    edited["parameters"][0]["min"] = 0.5
    conflict = study_conflict(stored(study_definition(maxTrials=4)), parse_study(edited), edited)
    assert conflict.changed == ("objective.goal", "parameters[0].min", "maxTrials")
    assert str(conflict) == ("study 'demo' already exists with a different definition (changed: objective.goal, "
                             "parameters[0].min, maxTrials); give it another name, or delete the stored study and "
                             "its trials first (katuna delete demo, or DELETE /studies/demo)")


def test_the_conflict_told_on_another_database_names_it_in_its_delete_command():
    """``katuna run b.yaml --db other.db`` was told ``katuna delete demo``, which deletes at once
    the study of that name in ./katuna.db (or $KATUNA_DB), not the one that refused it."""
    edited = study_definition(maxTrials=5)
    conflict = study_conflict(stored(study_definition(maxTrials=4)), parse_study(edited), edited)
    assert conflict.on_database(" --db 'my runs.db'") == (
        "study 'demo' already exists with a different definition (changed: maxTrials); give it another name, or "
        "delete the stored study and its trials first (katuna delete demo --db 'my runs.db', or DELETE /studies/demo)")
    assert conflict.on_database("") == str(conflict)


def test_where_only_what_the_definition_reads_changed_the_normalised_studys_fields_are_named():
    definition = study_definition(maxTrials=4, warmStart={"file": "known.json"})

    def read(value: float) -> Study:
        return load_definition(definition, lambda path: json.dumps([{"params": {"x": 1.0}, "value": value}]))[0]

    stored = StudyRecord(read(0.5), definition, "/tmp", "uid-1")
    assert same_study(stored, read(0.5), definition) and not same_study(stored, read(0.7), definition)
    conflict = study_conflict(stored, read(0.7), definition)
    assert conflict.changed == ("warmStart.trials[0].values[0]",)


def test_the_same_document_is_another_study_in_another_namespace():
    """A study resource's namespace comes from the resource, not from the document it stands for."""
    definition = study_definition()
    record = StudyRecord(in_namespace(parse_study(definition), "team-a"), definition, "/tmp", "uid-1")
    assert same_study(record, in_namespace(parse_study(definition), "team-a"), definition)
    assert not same_study(record, in_namespace(parse_study(definition), "team-b"), definition)
    assert study_conflict(record, in_namespace(parse_study(definition), "team-b"), definition).changed == (
        "kubernetes.namespace",)


def test_a_long_list_of_changes_is_shortened_in_the_message_only():
    def wide(high: float) -> dict:
        definition = study_definition(parameters=[{"name": f"p{i}", "type": "float", "min": 0.0, "max": high}
                                                  for i in range(10)])
        definition["trialTemplate"]["command"] = [sys.executable, "-c", "print('loss=1')",
                                                  *(f"${{trialParameters.p{i}}}" for i in range(10))]
        return definition

    conflict = study_conflict(stored(wide(1.0)), parse_study(wide(2.0)), wide(2.0))
    assert conflict.changed == tuple(f"parameters[{i}].max" for i in range(10))
    assert "parameters[7].max and 2 more); give it" in str(conflict)
