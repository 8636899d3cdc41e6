"""A real ``katuna serve`` without a token, attacked as a web page in the user's browser would:
cross-site writes, rebound host names, bodies over the limit, huge numbers; the CSV export
opened in a spreadsheet; and what a browser may keep of the answers, and how scripts reach it."""

from __future__ import annotations

import csv
import gzip
import http.client
import io
import json
import os
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest
import yaml
from conftest import study_definition
from http_helpers import Service, free_port, refused_start

from functions.adapters.web.guard import host_allowed
from functions.core import trial_csv
from functions.core.records import TrialRecord
from functions.core.validate import parse_study
from functions.settings import Settings

HUGE = str(1 << 64)
GZIP_MAGIC = b"\x1f\x8b"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    service = Service(tmp_path_factory.mktemp("guard"), workers=1, KATUNA_MAX_BODY="65536")
    yield service
    service.close()


def _studies(service: Service) -> list[str]:
    return [s["name"] for s in service.json("GET", "/studies")[1]]


def _study_json(name: str) -> str:
    return json.dumps(study_definition(name=name, maxTrials=1, parallelism=1))


@pytest.mark.slow
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/xml"])
def test_a_study_in_a_type_a_cross_site_form_can_send_is_refused(service: Service, content_type: str):
    status, _, body = service.request("POST", "/studies", _study_json("plain"), {"Content-Type": content_type})
    assert status == 415
    assert "application/json" in json.loads(body)["message"]
    assert "plain" not in _studies(service)


@pytest.mark.parametrize("content_type", ["application/yaml", "application/x-yaml", "text/yaml",
                                          "text/x-yaml; charset=utf-8"])
def test_a_study_is_taken_as_yaml_under_each_name_clients_send_yaml_by(service: Service, content_type: str):
    """``text/yaml`` and ``text/x-yaml`` were refused (415) though katuna reads YAML; none of
    them is a type a cross-site form or a no-cors fetch can send."""
    name = f"y{len(content_type)}"
    body = yaml.safe_dump(study_definition(name=name, maxTrials=1, parallelism=1))
    status, _, answer = service.request("POST", "/studies", body, {"Content-Type": content_type})
    assert status == 201, answer
    assert name in _studies(service)


def test_a_body_in_a_coding_katuna_does_not_decode_is_refused_naming_it_and_nothing_stored(service: Service):
    """Read as it is, a gzipped study was refused as text that is not UTF-8, and a plain one
    labelled ``br`` taken as if the header were not there."""
    coded = {"gzip": gzip.compress(_study_json("coded").encode()), "br": _study_json("coded").encode()}
    for coding, body in coded.items():
        status, _, answer = service.request("POST", "/studies", body, {"Content-Type": "application/json",
                                                                       "Content-Encoding": coding})
        assert (status, json.loads(answer)["message"]) == (
            415, f"send the body as it is, with no Content-Encoding: katuna decodes none (got '{coding}')")
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
    connection.putrequest("POST", "/studies")
    for header, value in (("Content-Type", "application/json"), ("Transfer-Encoding", "gzip, chunked")):
        connection.putheader(header, value)
    connection.endheaders()
    chunk = coded["gzip"]
    connection.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(chunk), chunk))
    response = connection.getresponse()
    assert (response.status, json.loads(response.read())["error"]) == (415, "unsupported_media_type")
    connection.close()
    assert service.request("POST", "/studies", _study_json("coded"), {"Content-Type": "application/json",
                                                                     "Content-Encoding": "identity"})[0] == 201
    assert _studies(service).count("coded") == 1


def test_a_host_that_is_not_allowed_is_refused_with_how_to_allow_it(service: Service):
    for method, path, body in (("POST", "/studies", _study_json("rebound")), ("GET", "/studies", None),
                               ("GET", "/ui/", None)):
        headers = {"Host": f"attacker.example:{service.port}", "Content-Type": "application/json"}
        status, _, answer = service.request(method, path, body, headers)
        assert status == 400, (method, path)
        assert "KATUNA_ALLOWED_HOSTS" in json.loads(answer)["message"]
    assert "rebound" not in _studies(service)
    assert service.request("GET", "/healthz", headers={"Host": "10.1.2.3:8080"})[0] == 200, "kubelet probes"
    for host in (f"localhost:{service.port}", f"[::1]:{service.port}", "127.0.0.1"):
        assert service.request("GET", "/studies", headers={"Host": host})[0] == 200, host


@pytest.mark.parametrize("headers", [{"Origin": "http://attacker.example"}, {"Origin": "null"},
                                     {"Origin": "http://127.0.0.1:1"}, {"Sec-Fetch-Site": "cross-site"},
                                     {"Sec-Fetch-Site": "same-site"}], ids=str)
def test_a_write_from_another_origin_is_refused_without_a_token(service: Service, headers: dict[str, str]):
    status, _, body = service.request("POST", "/studies", _study_json("drive-by"),
                                      {"Content-Type": "application/json", **headers})
    assert status == 403, json.loads(body)
    assert "drive-by" not in _studies(service)


def test_a_write_from_the_dashboard_origin_or_a_script_is_served(service: Service):
    same = {"Content-Type": "application/json", "Origin": service.base}
    assert service.request("POST", "/studies", _study_json("from-page"), same)[0] == 201
    assert service.request("POST", "/studies", _study_json("from-script"), {"Content-Type": "application/json"})[0] == 201
    fetched = {"Content-Type": "application/yaml", "Sec-Fetch-Site": "same-origin"}
    assert service.request("POST", "/studies/from-page/stop", None, fetched)[0] == 200


EMBEDDED = {"image": {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"},
            "fetch": {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"},
            "frame": {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe"},
            "fetch, a browser without Fetch Metadata": {"Origin": "https://attacker.example"},
            "fetch from a sandboxed frame, a browser without Fetch Metadata": {"Origin": "null"}}
VISITS = {"link": {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"},
          "typed": {"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"},
          "own page": {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"},
          "script": {}}


@pytest.mark.parametrize("headers", EMBEDDED.values(), ids=EMBEDDED.keys())
def test_a_read_another_sites_page_embeds_or_fetches_is_refused_before_any_work(service: Service,
                                                                                 headers: dict[str, str]):
    """Any page the user opens could otherwise have the service build charts or exports for it
    with the user's own connection, again and again, its answers unread."""
    service.request("POST", "/studies", _study_json("embedded"), {"Content-Type": "application/json"})
    for path in ("/ui/studies/embedded/plots/slice?params=x", "/ui/studies/embedded/trials.csv", "/studies",
                 "/metrics"):
        status, _, body = service.request("GET", path, headers=headers)
        assert (status, json.loads(body)["error"]) == (403, "cross_origin"), path


@pytest.mark.parametrize("headers", VISITS.values(), ids=VISITS.keys())
def test_a_visit_the_dashboards_own_reads_and_scripts_are_served(service: Service, headers: dict[str, str]):
    service.request("POST", "/studies", _study_json("visited"), {"Content-Type": "application/json"})
    assert service.request("GET", "/ui/studies/visited", headers=headers)[0] == 200
    assert service.request("GET", "/studies/visited", headers=headers)[0] == 200


def test_a_read_a_browser_without_fetch_metadata_names_as_the_dashboards_own_is_served(service: Service):
    """A browser that sends no ``Sec-Fetch-*`` (Safari before 16.4) names the origin of a
    ``fetch`` another site's page makes (refused above), and of one the dashboard's own page makes
    only where it is this origin."""
    service.request("POST", "/studies", _study_json("old-browser"), {"Content-Type": "application/json"})
    assert service.request("GET", "/ui/studies/old-browser/trials.csv", headers={"Origin": service.base})[0] == 200


def test_no_other_site_may_frame_the_dashboard_or_have_its_answers_sniffed(service: Service):
    """Without a token the dashboard needs no login, so a page framing it could hide the Stop
    button or the new-study form under its own (clickjacking): every answer forbids framing."""
    service.request("POST", "/studies", _study_json("framed"), {"Content-Type": "application/json"})
    for method, path, headers in (("GET", "/ui/", {}), ("GET", "/ui/studies/framed", {}), ("GET", "/ui/new", {}),
                                  ("GET", "/studies", {}), ("GET", "/ui/", {"Host": "attacker.example"})):
        status, answer, _ = service.request(method, path, headers=headers)
        assert answer["X-Frame-Options"] == "DENY", (path, status)
        assert "frame-ancestors 'none'" in answer["Content-Security-Policy"], path
        assert answer["X-Content-Type-Options"] == "nosniff", path


def test_no_answer_but_the_static_files_is_kept_by_a_browser(service: Service):
    """Pages, fragments, charts, JSON, CSV and logs carry a study's data: a browser that kept them
    would show them again after logging out (the Back button). Scripts are cached as before."""
    service.request("POST", "/studies", _study_json("kept"), {"Content-Type": "application/json"})
    for path in ("/ui/", "/ui/studies/kept", "/ui/studies.fragment", "/ui/studies/kept/best.fragment",
                 "/ui/studies/kept/actions.fragment", "/ui/studies/kept/node-hours.fragment",
                 "/ui/studies/kept/plots/history", "/ui/studies/kept/trials.csv", "/studies", "/studies/kept",
                 "/ui/studies/none", "/healthz"):
        status, answer, _ = service.request("GET", path)
        assert answer["Cache-Control"] == "no-store", (path, status)
    assert service.request("GET", "/ui/static/katuna.js")[1]["Cache-Control"] == "no-cache"
    assert "max-age=86400" in service.request("GET", "/ui/vendor/plotly.min.js")[1]["Cache-Control"]


def test_plotly_js_goes_gzipped_to_a_client_that_takes_it_and_whole_to_one_that_does_not(service: Service):
    """The bundle is 4.8 MB: a browser (which takes gzip) gets about a third of that, the same
    bytes once decompressed, and revalidates with the compressed copy's own ETag; a client that
    takes no gzip, or refuses it, gets the file as it is. A cache keeps the two apart (``Vary``)."""
    path = "/ui/vendor/plotly.min.js"
    bundle = (Path(str(files("plotly"))) / "package_data" / "plotly.min.js").read_bytes()
    status, answer, body = service.request("GET", path, headers={"Accept-Encoding": "gzip, deflate, br"})
    assert (status, answer["Content-Encoding"], answer["Vary"]) == (200, "gzip", "Accept-Encoding")
    assert gzip.decompress(body) == bundle and int(answer["Content-Length"]) == len(body) < len(bundle) / 2
    assert "max-age=86400" in answer["Cache-Control"]
    again = service.request("GET", path, headers={"Accept-Encoding": "gzip", "If-None-Match": answer["ETag"]})
    assert (again[0], again[2]) == (304, b"")
    ranged = service.request("GET", path, headers={"Accept-Encoding": "gzip", "Range": "bytes=0-9"})
    assert (ranged[0], ranged[2]) == (200, body), "a range of the compressed copy is no range of the file"
    for accepted in ({}, {"Accept-Encoding": "gzip;q=0, br"}, {"Accept-Encoding": "identity"}):
        status, answer, whole = service.request("GET", path, headers=accepted)
        assert (status, "Content-Encoding" in answer, answer["Vary"], whole) == (200, False, "Accept-Encoding", bundle)
        assert answer["ETag"] != again[1]["ETag"], accepted


def test_json_goes_gzipped_to_a_client_that_takes_it_and_pages_and_small_answers_as_they_are(service: Service):
    """A JSON answer (the OpenAPI document, a study) goes gzipped, its ``HEAD`` saying so too; what
    holds a CSRF token (a page) never does, nor an answer too small to gain, nor an error, nor
    one to a client that refuses gzip."""
    taken = {"Accept-Encoding": "gzip"}
    whole = service.request("GET", "/openapi.json")
    status, answer, body = service.request("GET", "/openapi.json", headers=taken)
    assert (status, answer["Content-Encoding"], answer["Vary"]) == (200, "gzip", "Accept-Encoding")
    assert gzip.decompress(body) == whole[2] and int(answer["Content-Length"]) == len(body) < len(whole[2]) / 4
    assert ("Content-Encoding" in whole[1], whole[1]["Vary"]) == (False, "Accept-Encoding")
    head = service.request("HEAD", "/openapi.json", headers=taken)
    assert (head[1]["Content-Encoding"], head[1]["Content-Length"], head[2]) == ("gzip", str(len(body)), b"")
    refused = service.request("GET", "/openapi.json", headers={"Accept-Encoding": "br, gzip;q=0"})
    assert "Content-Encoding" not in refused[1] and refused[2] == whole[2]
    service.request("POST", "/studies", _study_json("squeezed"), {"Content-Type": "application/json"})
    study = service.request("GET", "/studies/squeezed", headers=taken)
    assert study[1]["Content-Encoding"] == "gzip" and json.loads(gzip.decompress(study[2]))["name"] == "squeezed"
    for path in ("/ui/", "/ui/studies/squeezed", "/healthz", "/studies/none",
                 "/studies/squeezed/trials?state=FAIL"):  # an empty list: too small to gain
        status, answer, body = service.request("GET", path, headers=taken)
        assert "Content-Encoding" not in answer and not body.startswith(GZIP_MAGIC), (path, status)


def test_a_log_and_the_csv_export_go_gzipped_as_they_stream_and_so_do_the_metrics(service: Service):
    """A log and the CSV export are compressed as they are read (no ``Content-Length``: nothing
    is held whole), and decompress to what a client that takes no gzip receives."""
    definition = study_definition(name="verbose", mode="curve", maxTrials=1, parallelism=1)
    definition["trialTemplate"]["command"] += ["--epochs", "300"]
    service.request("POST", "/studies", json.dumps(definition), {"Content-Type": "application/json"})
    service.wait_for("verbose")
    for path in ("/studies/verbose/trials/0/logs", "/ui/studies/verbose/trials.csv", "/metrics"):
        status, answer, body = service.request("GET", path, headers={"Accept-Encoding": "gzip"})
        vary = "Accept, Accept-Encoding" if path == "/metrics" else "Accept-Encoding"  # its format follows Accept
        assert (status, answer["Content-Encoding"], answer["Vary"]) == (200, "gzip", vary), path
        if path != "/metrics":  # its counters move between two requests
            assert gzip.decompress(body) == service.request("GET", path)[2], path
    log = service.request("GET", "/studies/verbose/trials/0/logs", headers={"Accept-Encoding": "gzip"})
    assert "Content-Length" not in log[1], "a log is streamed as it is read, never held whole"
    assert gzip.decompress(log[2]).count(b"\nepoch=") == 299 and len(log[2]) * 3 < len(gzip.decompress(log[2]))
    metrics = service.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})[2]
    assert b"# HELP katuna_" in gzip.decompress(metrics)


def test_allowed_hosts_match_the_host_a_client_sends_on_any_port_an_ipv6_address_with_or_without_brackets():
    allowed = Settings.from_env({"KATUNA_ALLOWED_HOSTS": "Katuna.example.org, *.example.net, [fd00::1], fd00::2"})
    assert allowed.allowed_hosts == ("Katuna.example.org", "*.example.net", "fd00::1", "fd00::2")
    for host in ("katuna.example.org:8080", "katuna.example.org", "a.example.net:443", "[fd00::1]:8080", "[fd00::2]"):
        assert host_allowed(host, allowed.allowed_hosts), host
    assert not host_allowed("example.net", allowed.allowed_hosts)


@pytest.mark.slow
@pytest.mark.parametrize("host, env", [("0.0.0.0", {}), ("192.0.2.1", {}), ("127.attacker.example", {}),
                                       (None, {"KATUNA_ALLOWED_HOSTS": "katuna.example"})])
def test_serve_refuses_to_expose_the_api_without_a_token(tmp_path: Path, host, env):
    done = refused_start(tmp_path, host=host, **env)
    assert done.returncode == 2, done.stderr
    assert "KATUNA_API_TOKEN" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_the_container_entry_point_refuses_other_hosts_without_a_token(tmp_path: Path):
    """gunicorn as the image runs it: the worker fails to boot and gunicorn stops, saying why,
    instead of restarting the worker for ever."""
    env = {k: v for k, v in os.environ.items() if k != "KATUNA_API_TOKEN"}
    env.update(KATUNA_DB=str(tmp_path / "katuna.db"), KATUNA_ALLOWED_HOSTS="katuna.katuna.svc")
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    done = subprocess.run([gunicorn, "--bind", f"127.0.0.1:{free_port()}", "--workers", "1",
                           "functions.runtime:from_environment()"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "KATUNA_API_TOKEN" in done.stderr
    assert done.stderr.count("Booting worker") == 1


def test_a_body_over_the_limit_reaches_the_client_as_a_413(service: Service):
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
    body = b"# " + b"x" * (16 << 20)
    connection.request("POST", "/studies", body=body, headers={"Content-Type": "application/yaml"})
    response = connection.getresponse()
    assert response.status == 413
    assert "KATUNA_MAX_BODY" in json.loads(response.read())["message"]
    connection.close()


def test_a_chunked_body_is_read_whole_and_held_to_the_same_limit(service: Service):
    for chunks, expected in (([_study_json("chunked").encode()], 201), ([b"x" * 65536] * 64, 413)):
        connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
        connection.request("POST", "/studies", body=iter(chunks), headers={"Content-Type": "application/json"},
                           encode_chunked=True)
        assert connection.getresponse().status == expected
        connection.close()
    assert "chunked" in _studies(service)


def test_a_refused_body_is_read_before_the_answer(service: Service):
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
    connection.request("POST", "/studies", body=b"x" * 60000, headers={"Content-Type": "text/plain"})
    response = connection.getresponse()
    assert response.status == 415 and json.loads(response.read())["error"] == "unsupported_media_type"
    connection.close()


def test_huge_or_negative_trial_numbers_and_pages_are_clean_4xx(service: Service):
    assert service.request("POST", "/studies", _study_json("numbers"), {"Content-Type": "application/json"})[0] == 201
    for path in (f"/ui/studies/numbers/trials/{HUGE}", f"/ui/studies/numbers/trials/{HUGE}/log"):
        assert service.request("GET", path)[0] == 400, path
    for path in (f"/studies/numbers/trials/{HUGE}", f"/studies/numbers/trials/{HUGE}/logs",
                 "/studies/numbers/trials/-1"):
        status, _, body = service.request("GET", path)
        assert status == 400 and json.loads(body)["message"].startswith("number: expected a whole number"), path
    for page in (HUGE, str((1 << 63) // 50 + 1), "-1", "0"):
        for path in ("/ui/studies/numbers/trials", "/ui/studies/numbers/trials.csv"):
            status, _, body = service.request("GET", f"{path}?page={page}")
            assert status == 400 and b"page" in body, (path, page)
    assert service.request("GET", "/ui/studies/numbers/trials?page=1")[0] == 200


def test_csv_export_neutralises_spreadsheet_formulas():
    definition = study_definition(name="sheet", parameters=[
        {"name": "c", "type": "categorical", "values": ["=HYPERLINK(\"http://x\")", "+1", "-1", "@SUM(A1)", "\tx",
                                                        "\rx", "plain"]}])
    definition["trialTemplate"]["command"][3] = "${trialParameters.c}"
    spec = parse_study(definition)
    trials = [TrialRecord(study="sheet", number=n, state="FAILED", params={"c": value}, reason="=cmd|' /C calc'!A0")
              for n, value in enumerate(spec.parameters[0].values)]
    rows = list(csv.reader(io.StringIO("".join(trial_csv.csv_rows(spec, trials)))))[1:]
    header = next(csv.reader(io.StringIO(next(trial_csv.csv_rows(spec, [])))))
    cells = [row[header.index("c")] for row in rows]
    assert cells == ["'=HYPERLINK(\"http://x\")", "'+1", "'-1", "'@SUM(A1)", "'\tx", "'\rx", "plain"]
    assert {row[header.index("reason")] for row in rows} == {"'=cmd|' /C calc'!A0"}


def test_csv_export_neutralises_a_parameter_name_a_spreadsheet_would_run():
    """A parameter's name is any printable text but ``=``: one starting ``@`` or ``+`` heads its column quoted."""
    definition = study_definition(name="sheet", parameters=[{"name": "@SUM(A1)", "type": "float", "min": 0, "max": 1}])
    definition["trialTemplate"]["command"][3] = "${trialParameters.@SUM(A1)}"
    header = next(csv.reader(io.StringIO(next(trial_csv.csv_rows(parse_study(definition), [])))))
    assert "'@SUM(A1)" in header and "@SUM(A1)" not in header


def test_csv_export_neutralises_formulas_behind_blanks_line_breaks_or_full_width_signs():
    """A cell a spreadsheet may still run: one whose first character but blanks (spaces, a
    no-break or ideographic space, NUL) starts a formula, as an import that trims spaces sees it,
    one starting with a line break or NUL, or with a full-width ＝＋－＠. A value that only
    holds such a sign, or starts with a blank before plain text, is left as it is."""
    values = [" =1+1", "\u00a0+1", "\u3000@SUM(A1)", "\n=1", "\uff1d1+1", "\uff0b1", "\uff0d1", "\uff20SUM(A1)",
              " plain", "a=b", "plain"]
    definition = study_definition(name="sheet", parameters=[{"name": "c", "type": "categorical", "values": values}])
    definition["trialTemplate"]["command"][3] = "${trialParameters.c}"
    spec = parse_study(definition)
    trials = [TrialRecord(study="sheet", number=n, state="FAILED", params={"c": value}, reason="\0=cmd|' /C calc'!A0")
              for n, value in enumerate(values)]
    rows = list(csv.reader(io.StringIO("".join(trial_csv.csv_rows(spec, trials)))))[1:]
    header = next(csv.reader(io.StringIO(next(trial_csv.csv_rows(spec, [])))))
    assert [row[header.index("c")] for row in rows] == ["'" + value for value in values[:8]] + values[8:]
    assert {row[header.index("reason")] for row in rows} == {"'\0=cmd|' /C calc'!A0"}
