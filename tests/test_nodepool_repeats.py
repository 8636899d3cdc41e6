"""A study's node pool listing an item twice (an instance type, an accelerator type) is refused
at submission, naming the repeat as the provisioning script's ``--instance-types`` does, and
nothing is stored; so is a GKE machine type of no Compute Engine shape, naming the field."""

from __future__ import annotations

import pytest
from conftest import study_definition

from functions.core.errors import InvalidStudy
from functions.core.validate import parse_study


def problems(definition: dict) -> list[tuple[str, str]]:
    with pytest.raises(InvalidStudy) as refused:
        parse_study(definition)
    return [(p.path, p.message) for p in refused.value.problems]


def test_an_instance_type_given_twice_is_refused_naming_the_repeat():
    definition = study_definition(name="twice", nodePool={
        "provider": "eks", "instanceTypes": ["m5.xlarge", "m5.xlarge", "m5a.xlarge", "m5a.xlarge"]})
    assert problems(definition) == [
        ("nodePool.instanceTypes[1]", "m5.xlarge given twice; expected each instance type once"),
        ("nodePool.instanceTypes[3]", "m5a.xlarge given twice; expected each instance type once")]
    definition["nodePool"]["instanceTypes"] = ["m5.xlarge", "m5a.xlarge"]
    assert parse_study(definition).node_pool.machine_types == ("m5.xlarge", "m5a.xlarge")


def test_an_accelerator_type_given_twice_is_refused_naming_the_repeat():
    definition = study_definition(name="gpus", nodePool={
        "provider": "gke", "machineType": "n1-standard-8",
        "accelerators": [{"type": "nvidia-tesla-t4"}, {"type": "nvidia-tesla-t4", "count": 1}]})
    assert problems(definition) == [
        ("nodePool.accelerators[1].type", "nvidia-tesla-t4 given twice; expected each accelerator type once")]
    definition["nodePool"]["accelerators"] = [{"type": "nvidia-tesla-t4", "count": 2}]
    assert parse_study(definition).node_pool.accelerators == (("nvidia-tesla-t4", 2),)


def test_the_service_refuses_a_repeated_instance_type_and_stores_nothing(client):
    definition = study_definition(name="repeated", nodePool={
        "provider": "eks", "instanceTypes": ["m5.xlarge", "m5.xlarge"]})
    answer = client.post("/studies", json=definition)
    assert answer.status_code == 422
    assert {"path": "nodePool.instanceTypes[1]",
            "message": "m5.xlarge given twice; expected each instance type once"} in [
        {"path": p["path"], "message": p["message"]} for p in answer.get_json()["problems"]]
    assert client.get("/studies/repeated").status_code == 404


@pytest.mark.parametrize("machine", ["E2-Standard-4", "e2 standard 4", "e2-standard-4 ", "e2_standard_4"])
def test_a_gke_machine_type_of_no_compute_engine_shape_is_refused_naming_the_field(machine: str):
    """Compute Engine names its machine types in lower-case letters, digits and '-': another name
    was taken at submission, and by the provisioning script's ``--dry-run``, only for GKE's
    create to refuse it once asked."""
    definition = study_definition(name="shape", nodePool={"provider": "gke", "machineType": machine})
    assert problems(definition) == [
        ("nodePool.machineType", "expected a Compute Engine machine type: lower-case letters, digits and '-', such "
                                 f"as e2-standard-4, got {machine!r}")]
    definition["nodePool"]["machineType"] = "n2d-custom-4-8192"
    assert parse_study(definition).node_pool.machine_types == ("n2d-custom-4-8192",)
