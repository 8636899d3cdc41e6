"""A study whose trials would all fail to enter their ``workingDir`` is refused at submission
wherever they run on this machine: by ``katuna run`` and by ``POST /studies`` to a service whose
trials run as local processes, naming the field, nothing stored. Where trials run on a cluster
the folder is the container's, inside its image, and is not looked for here."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import study_definition
from kube_stub import KubeStub

from functions.adapters.web import create_app
from functions.runtime import Runtime
from functions.settings import Settings


def _post(client, definition: dict):
    return client.post("/studies", data=yaml.safe_dump(definition), content_type="application/yaml")


def _names(client) -> list[str]:
    return [study["name"] for study in client.get("/studies").get_json()]


def test_a_local_service_refuses_a_working_dir_that_does_not_exist_naming_the_field(tmp_path: Path):
    """It stored the study, and its first trials failed to start ("working directory ... cannot
    be entered") before it stopped the study; ``katuna run`` refused it at once."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db", workdir=tmp_path))
    try:
        client = create_app(runtime).test_client()
        definition = study_definition(name="elsewhere", maxTrials=1, parallelism=1)
        definition["trialTemplate"]["workingDir"] = "examples/nowhere"
        answer = _post(client, definition)
        assert answer.status_code == 422, answer.get_json()
        assert answer.get_json()["problems"] == [{
            "path": "trialTemplate.workingDir",
            "message": f"expected a directory; {tmp_path / 'examples/nowhere'} is none"}]
        assert _names(client) == [], "nothing stored"
        (tmp_path / "examples/nowhere").mkdir(parents=True)
        assert _post(client, definition).status_code == 201
        assert _names(client) == ["elsewhere"]
    finally:
        runtime.close()


def test_a_local_service_checks_a_stored_studys_folder_from_where_it_was_first_run(tmp_path: Path):
    """Submitted again, a study is checked where its trials run: the folder it was first run
    from, not this service's."""
    first = tmp_path / "first"
    (first / "src").mkdir(parents=True)
    definition = study_definition(name="moved", maxTrials=1, parallelism=1)
    definition["trialTemplate"]["workingDir"] = "src"
    runtime = Runtime(Settings(db=tmp_path / "katuna.db", workdir=first))
    try:
        assert _post(create_app(runtime).test_client(), definition).status_code == 201
    finally:
        runtime.close()
    (tmp_path / "second").mkdir()
    runtime = Runtime(Settings(db=tmp_path / "katuna.db", workdir=tmp_path / "second"))
    try:
        assert _post(create_app(runtime).test_client(), definition).status_code == 200, "the stored study"
    finally:
        runtime.close()


@pytest.mark.slow
def test_a_service_running_trials_on_a_cluster_leaves_the_containers_folder_to_its_image(tmp_path: Path):
    kube = KubeStub(namespaces=("folders",))
    runtime = Runtime(Settings(db=tmp_path / "katuna.db", workdir=tmp_path, executor="kubernetes",
                               k8s_api=kube.url, k8s_namespace="folders"))
    try:
        definition = study_definition(name="in-image", maxTrials=1, parallelism=1)
        definition["trialTemplate"].update(image="python:3.12", workingDir="/opt/not-on-this-machine")
        answer = _post(create_app(runtime).test_client(), definition)
        assert answer.status_code == 201, answer.get_json()
    finally:
        runtime.close()
        kube.close()
