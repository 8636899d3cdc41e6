"""The study API under real gunicorn on loopback, queue mode (``katuna serve``)."""

from __future__ import annotations

import http.client
import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import study_definition
from http_helpers import Service, strict_loads
from openapi_spec_validator import validate
from test_cli import here

from functions.adapters.sqlite_store import SqliteStore

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("serve")
    running = Service(workdir)
    yield running
    running.close()


def post_study(service: Service, definition, content_type="application/yaml"):
    body = yaml.safe_dump(definition) if "yaml" in content_type else json.dumps(definition)
    return service.request("POST", "/studies", body, {"Content-Type": content_type})


def post_oversized(service: Service, size: int) -> int:
    """Announce a body over the limit and send its start: the service answers from the headers
    (sending all of it would race the service closing the connection)."""
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
    connection.putrequest("POST", "/studies")
    connection.putheader("Content-Type", "application/yaml")
    connection.putheader("Content-Length", str(size))
    connection.endheaders(b"# " + b"x" * 1022)
    status = connection.getresponse().status
    connection.close()
    return status


def test_a_posted_study_runs_to_completion_and_reads_like_the_cli(service: Service):
    status, headers, body = post_study(service, study_definition(name="api-demo", maxTrials=4))
    assert status == 201
    assert headers["Location"] == "/studies/api-demo"
    assert json.loads(body)["links"]["trials"] == "/studies/api-demo/trials"

    study = service.wait_for("api-demo")
    assert study["status"] == "completed" and study["counts"]["complete"] == 4
    assert study["best"]["value"] == min(t["value"] for t in service.json("GET", "/studies/api-demo/trials")[1])

    _, trials = service.json("GET", "/studies/api-demo/trials")
    cli = here("trials", "api-demo", "--json", "--db", str(service.workdir / "katuna.db"))
    assert trials == json.loads(cli.stdout)

    status, trial = service.json("GET", "/studies/api-demo/trials/0")
    assert status == 200
    assert [o["step"] for o in trial["observations"]] == [1, 2, 3, None]
    status, headers, logs = service.request("GET", "/studies/api-demo/trials/0/logs")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert logs.decode().splitlines()[-1] == f"loss={trial['value']:.6f}"


def test_nan_and_infinite_metrics_are_strict_json_by_name_in_the_api_the_dashboard_and_the_cli(service: Service):
    """JSON.parse, Go's encoding/json and jq refuse a bare NaN or Infinity: such a metric, its
    observations and the best trial holding it are written as "nan", "inf" and "-inf"."""
    definition = study_definition(name="wild", mode="wild-metrics", maxTrials=1, parallelism=1,
                                  objective={"metric": "loss", "direction": "minimize",
                                             "additionalMetrics": ["grad", "norm"]})
    assert post_study(service, definition)[0] == 201
    study = service.wait_for("wild")
    assert study["status"] == "completed", study
    named = {"grad": "nan", "norm": "-inf"}
    assert {k: v for k, v in study["best"]["metrics"].items() if k != "loss"} == named
    _, trials = service.json("GET", "/studies/wild/trials")
    assert [{k: v for k, v in t["metrics"].items() if k != "loss"} for t in trials] == [named]
    _, trial = service.json("GET", "/studies/wild/trials/0")
    seen = {(o["metric"], o["step"]): o["value"] for o in trial["observations"] if o["metric"] != "loss"}
    assert seen == {("grad", 1): "nan", ("norm", 1): "inf", ("grad", None): 0.5, ("norm", None): "-inf"}
    _, listed = service.json("GET", "/studies")
    assert [s["best"]["metrics"] for s in listed if s["name"] == "wild"] == [study["best"]["metrics"]]
    status, _, chart = service.request("GET", "/ui/studies/wild/plots/parallel")
    assert status == 200 and strict_loads(chart)["data"]
    db = str(service.workdir / "katuna.db")
    for command in (["show", "wild"], ["trials", "wild"], ["best", "wild"], ["studies"]):
        printed = here(*command, "--json", "--db", db)
        assert '"nan"' in printed.stdout and "NaN" not in printed.stdout, command
        strict_loads(printed.stdout)


def test_reposting_is_idempotent_and_a_different_definition_conflicts(service: Service):
    definition = study_definition(name="twice", maxTrials=1, parallelism=1)
    assert post_study(service, definition)[0] == 201
    assert post_study(service, definition, "application/json")[0] == 200
    status, _, body = post_study(service, {**definition, "algorithm": {"name": "random", "seed": 2}})
    assert status == 409
    conflict = json.loads(body)
    assert conflict["changed"] == ["algorithm.seed"]
    assert conflict["message"] == ("study 'twice' already exists with a different definition (changed: algorithm.seed); "
                                   "give it another name, or delete the stored study and its trials first "
                                   "(katuna delete twice, or DELETE /studies/twice)")
    service.wait_for("twice")
    assert len(service.json("GET", "/studies/twice/trials")[1]) == 1


def test_bad_bodies_get_the_right_status_and_store_nothing(service: Service):
    before = service.json("GET", "/studies")[1]
    status, _, body = service.request("POST", "/studies", "name: [unclosed", {"Content-Type": "application/yaml"})
    assert status == 400 and json.loads(body)["problems"][0]["message"] == (
        "not valid YAML or JSON: expected ',' or ']', but got '<stream end>' (line 1, column 16)"), \
        "where the parser stopped, as the CLI says it, not its excerpt of a '<unicode string>'"
    assert json.loads(body)["message"] == ("unparseable study: not valid YAML or JSON: expected ',' or ']', but got "
                                           "'<stream end>' (line 1, column 16)"), "the message says what was refused"

    status, _, body = post_study(service, study_definition(name="Bad Name", parallelism=0))
    problems = {p["path"]: p["message"] for p in json.loads(body)["problems"]}
    assert status == 422
    assert json.loads(body)["message"].startswith("invalid study: name: expected a DNS-1123 label")
    assert json.loads(body)["message"].endswith(f"(and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''}: "
                                                "see problems)")
    assert problems["parallelism"] == "expected an integer >= 1, got 0"
    assert problems["name"].startswith("expected a DNS-1123 label")

    status, _, body = post_study(service, study_definition(name="warm", warmStart={"study": "nosuch"}))
    assert status == 422
    assert [p["path"] for p in json.loads(body)["problems"]] == ["warmStart.study"]

    assert service.request("POST", "/studies", "<study/>", {"Content-Type": "application/xml"})[0] == 415
    assert post_oversized(service, 2 << 20) == 413
    assert service.json("GET", "/studies")[1] == before


def test_unknown_studies_and_trials_are_404(service: Service):
    assert service.request("GET", "/studies/nope")[0] == 404
    assert service.request("POST", "/studies/nope/stop")[0] == 404
    assert service.request("DELETE", "/studies/nope")[0] == 404


def test_stop_then_delete(service: Service):
    definition = study_definition(name="to-delete", mode="hang", maxTrials=4)
    assert post_study(service, definition)[0] == 201
    service.wait_for("to-delete", statuses=("running",))
    status, study = service.json("POST", "/studies/to-delete/stop")
    assert status == 200 and study["status"] == "stopped" and study["reason"] == "stopped by user"
    assert service.request("DELETE", "/studies/to-delete")[0] == 204
    assert service.request("GET", "/studies/to-delete")[0] == 404
    assert post_study(service, definition)[0] == 201, "the name can be used again"
    service.request("DELETE", "/studies/to-delete")


def test_health_and_openapi(service: Service):
    assert service.json("GET", "/healthz") == (200, {"status": "ok"})
    assert service.json("GET", "/readyz") == (200, {"status": "ready"})
    status, document = service.json("GET", "/openapi.json")
    assert status == 200
    validate(document)


def test_auth_when_a_token_is_set(tmp_path: Path):
    token = "s3cret-0123456789abcdefgh"
    service = Service(tmp_path, workers=1, KATUNA_API_TOKEN=token)
    try:
        assert service.request("GET", "/studies")[0] == 401
        assert service.request("GET", "/studies", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert service.request("GET", "/studies", headers={"Authorization": f"Bearer {token}"})[0] == 200
        assert service.request("GET", "/healthz")[0] == 200
        status, _, body = post_study(service, study_definition(name="locked"))
        assert status == 401 and service.request(
            "GET", "/studies", headers={"Authorization": f"Bearer {token}"})[2] == b"[]"
    finally:
        service.close()


def test_four_workers_share_one_database_without_losing_or_repeating_anything(tmp_path: Path):
    from concurrent.futures import ThreadPoolExecutor

    service = Service(tmp_path, workers=4)
    try:
        names = [f"many-{i}" for i in range(6)]

        def submit(name: str) -> int:
            return post_study(service, study_definition(name=name, maxTrials=5, parallelism=2))[0]

        with ThreadPoolExecutor(max_workers=6) as pool:
            assert list(pool.map(submit, names)) == [201] * 6
            assert list(pool.map(submit, names)) == [200] * 6
        for name in names:
            study = service.wait_for(name, timeout=120)
            assert (study["status"], study["counts"]["complete"], study["trials"]) == ("completed", 5, 5), study
            logs = sorted(p.name for p in (tmp_path / "katuna-logs" / name).glob("*/*.log"))
            assert logs == [f"{n}.1.log" for n in range(5)], f"{name}: every trial launched once"
        assert "Traceback" not in (tmp_path / "serve.log").read_text()
    finally:
        service.close()
    copied = tmp_path / "copy"
    copied.mkdir()
    shutil.copy(tmp_path / "katuna.db", copied / "katuna.db")
    store = SqliteStore(copied / "katuna.db")
    assert {name: store.count_trials(name).complete for name in names} == dict.fromkeys(names, 5), \
        "a stopped service leaves the database file whole on its own: each worker folded its write-ahead log in"
    store.close()


def test_services_side_by_side_leave_no_control_socket_in_the_home_directory(tmp_path: Path):
    """gunicorn's control socket has one default path per user; two services would share it."""
    home = tmp_path / "home"
    home.mkdir()
    services = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        services.append(Service(tmp_path / name, workers=1, HOME=str(home)))
    try:
        assert all(service.request("GET", "/readyz")[0] == 200 for service in services)
        assert list(home.iterdir()) == []
    finally:
        for service in services:
            service.close()
