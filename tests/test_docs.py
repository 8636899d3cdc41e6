"""The pages under docs/ are checked where they show code: each block, found by its heading, is
run or validated, and every link between pages leads to a file and heading that exist."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner
from conftest import study_definition
from doc_blocks import ROOT, anchor, block, blocks, command_lines, headings, local_links
from http_helpers import run_katuna

from functions.adapters.trial_ends import finished_event
from functions.cli import main
from functions.core.errors import InvalidStudy
from functions.core.field_lines import field_lines, located
from functions.core.formats import load_study
from functions.core.launch import TrialLaunch
from functions.core.metrics import parse_text
from functions.core.records import StudyRecord
from functions.core.validate import parse_study
from functions.handlers import HANDLERS
from functions.handlers.collect import _verdict as trial_verdict
from functions.handlers.prune import _verdict as prune_verdict

PAGES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")) + [
    "README.md",
    "CONTRIBUTING.md",
    "CHANGELOG.md",
]


def _study_format_example() -> str:
    return block("docs/study-format.md", "The study format", "yaml")


def _assert_cli_usage(lines: list[list[str]]) -> None:
    """Each ``katuna`` command exists and takes the options written after it."""
    assert lines
    for words in lines:
        result = CliRunner().invoke(main, [words[1], "--help"])
        assert result.exit_code == 0, result.output
        for option in re.findall(r"--[a-z-]+", " ".join(words)):
            assert option in result.output, f"{option} of katuna {words[1]}"


SHOWN_COMMAND = re.compile(r"^(?:\$ )?(?:[A-Z_]+=\S+ )*katuna ([^#]*)")
"""A line of a code block that runs ``katuna`` (``KATUNA_LOOKAHEAD=0 katuna run study.yaml``), its
comment left out."""


def _katuna_usages(page: str) -> list[tuple[str, list[str]]]:
    """Each ``katuna`` command ``page`` shows, as where it is and its words after ``katuna``: the
    lines of its code blocks that run it, and its inline code that starts with a command's name
    (``katuna logs NAME N --terminal``; ``katuna cannot start: ...`` is a message, not a command)."""
    from functions.cli import COMMANDS

    found = []
    for shown in blocks(page):
        for line in shown.text.replace("\\\n", " ").splitlines():
            if match := SHOWN_COMMAND.match(line.strip()):
                found.append((f"{shown.heading!r}: {line.strip()}", re.split(r"\||;|&&", match.group(1))[0].split()))
    prose = re.sub(r"```.*?```", "", (ROOT / page).read_text(), flags=re.S)
    for code in re.findall(r"`(katuna [^`]+)`", " ".join(prose.split())):
        words = re.split(r"\||;|&&", code)[0].split()[1:]
        if words[0] in COMMANDS or words[0].startswith("-"):
            found.append((code, words))
    return found


def _options(command: click.Command) -> set[str]:
    return {name for param in command.params if isinstance(param, click.Option)
            for name in (*param.opts, *param.secondary_opts)}


@pytest.mark.parametrize("page", [page for page in PAGES if page != "CHANGELOG.md"])
def test_every_katuna_command_a_page_shows_is_a_command_with_those_options(page: str):
    """Every ``katuna`` line of a page's code blocks, and every command in its text, names one of
    the commands and only options that command takes, long or short (``-f``), as click has them:
    a renamed command or option fails here, wherever a page shows it."""
    from functions.cli import COMMANDS

    context = click.Context(main)
    for where, words in _katuna_usages(page):
        if words[0].startswith("-"):
            command, given = main, words
        else:
            assert words[0] in COMMANDS, f"{page}: {where}: no command {words[0]!r}"
            command, given = main.get_command(context, words[0]), words[1:]
        options = _options(command) | {"--help", "-h"}
        for option in re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", " ".join(given)):
            assert option in options, f"{page}: {where}: {option}"


@pytest.mark.parametrize("page", PAGES)
def test_every_link_leads_to_a_file_and_heading_that_exist(page: str):
    for link in local_links(page):
        target, _, fragment = link.partition("#")
        path = (ROOT / page).parent / target if target else ROOT / page
        assert path.exists(), f"{page}: {link}"
        if fragment and path.suffix == ".md":
            assert fragment in {anchor(h) for h in headings(str(path.resolve().relative_to(ROOT)))}, f"{page}: {link}"


REPOSITORY_PATH = re.compile(r"(?<![\w/.-])((?:functions|tests|infra|knative|examples|benchmarks|docs)/[\w./*-]*[\w/*])")
OTHER_REPOSITORIES = {"examples/v1beta1/": "Katib's", "tests/storages_tests/test_storages.py": "Optuna's",
                      "tests/storages_tests/journal_tests": "Optuna's"}
"""Paths the pages name in another project's repository."""


@pytest.mark.parametrize("page", PAGES)
def test_every_path_of_the_repository_a_page_names_exists(page: str):
    """A file or folder named in the text (``functions/handlers/spawn.py``,
    ``knative/trial-kinds/``, ``tests/test_kube_standin*.py``), not only in a link, is where it
    says; a folder git ignores is made by what writes it."""
    ignored = set(re.findall(r"^(\S+/)$", (ROOT / ".gitignore").read_text(), flags=re.M))
    named = {path.rstrip(".") for path in REPOSITORY_PATH.findall((ROOT / page).read_text())}
    missing = sorted(path for path in named - set(OTHER_REPOSITORIES) - ignored
                     if not any(ROOT.glob(path.rstrip("/"))))
    assert missing == []


def test_every_page_but_the_readme_is_linked_from_the_readme():
    linked = {link.split("#")[0] for link in local_links("README.md")}
    assert {p for p in PAGES if p.startswith("docs/")} <= linked


# docs/study-format.md


def test_the_study_format_example_is_a_valid_study():
    spec, definition = load_study(_study_format_example())
    assert spec.name == "digits-mlp"
    assert set(definition) == {
        "name",
        "objective",
        "parameters",
        "algorithm",
        "parallelism",
        "maxTrials",
        "maxFailedTrials",
        "timeBudget",
        "trialTemplate",
        "metricsCollector",
        "description",
    }


def test_the_study_format_page_names_every_field_a_study_takes_at_its_top():
    from functions.core.validate import TOP_FIELDS

    text = (ROOT / "docs/study-format.md").read_text()
    head = text[: text.index("\n## ", text.index("```yaml"))]
    assert [field for field in sorted(TOP_FIELDS) if not re.search(rf"^{field}:|`{field}`", head, re.M)] == []


@pytest.mark.parametrize("page, heading, kind", [
    ("docs/study-format.md", "Metrics", "tfevent"),
    ("docs/trials.md", "JSON lines on standard output", "stdout"),
    ("docs/trials.md", "A file", "file"),
])
def test_each_metrics_collector_example_is_valid_in_the_study_formats_example(page: str, heading: str, kind: str):
    example = _study_format_example()
    without = example[: example.index("metricsCollector:")]
    spec, _ = load_study(without + block(page, heading, "yaml"))
    assert spec.metrics_collector.kind == kind


def test_the_early_stopping_example_is_valid():
    section = block("docs/study-format.md", "Early stopping", "yaml")
    spec, _ = load_study(_study_format_example() + section)
    assert spec.early_stopping.algorithm == "median" and spec.early_stopping.patience == 2


def test_the_several_objectives_example_is_valid():
    section = yaml.safe_load(block("docs/study-format.md", "Several objectives", "yaml"))
    example = yaml.safe_load(_study_format_example())
    spec, _ = load_study(yaml.safe_dump({**example, **section}))
    assert [(o.metric, o.direction, o.goal) for o in spec.objectives] == [
        ("accuracy", "maximize", None), ("latency", "minimize", 0.05), ("size", "minimize", None)]
    assert spec.additional_metrics == ("loss",) and spec.algorithm.name == "nsga2"


def _stop_rules() -> str:
    """The first paragraph of the study format's Stop rules, on one line."""
    section = (ROOT / "docs/study-format.md").read_text().split("\n## Stop rules\n", 1)[1]
    return " ".join(section.strip().split("\n\n", 1)[0].split())


def test_three_trials_that_could_not_start_end_a_study_whatever_its_max_failed_trials(embedded, tmp_path: Path):
    """The stop rule of trials that cannot start holds beside ``maxFailedTrials`` (the page once
    gave it only to studies without one): a study allowing 5 failures whose program is on no PATH
    ends failed after 3 of them."""
    from conftest import run_study

    from functions.core.start_failures import UNSTARTABLE_TRIALS

    rules = _stop_rules()
    assert "without `maxFailedTrials`" not in rules
    assert f"{UNSTARTABLE_TRIALS} trials failed, none completed, that [could not start]" in rules
    assert "whatever `maxFailedTrials`" in rules
    definition = study_definition(name="typo", maxTrials=8, parallelism=1, maxFailedTrials=5)
    definition["trialTemplate"]["command"] = ["no-such-program-k7", "${trialParameters.x}"]
    record = run_study(embedded, definition, tmp_path)
    assert (record.status, embedded.store.count_trials("typo").failed) == ("failed", UNSTARTABLE_TRIALS)
    assert record.reason.startswith("every trial could not start:"), record.reason


def test_the_stop_rules_give_the_rule_of_a_misspelt_objective_and_what_is_no_sign_of_one():
    from functions.core.unreported import UNREPORTED_TRIALS

    rules = _stop_rules()
    assert (f"the first {UNREPORTED_TRIALS} trials to end all failed never reporting the same objective while their "
            "last lines report other metrics, none completed (`failed`, whatever `maxFailedTrials`") in rules
    assert "`spec.objective.objectiveMetricName`; a trial that exited non-zero or printed nothing metric-like is " \
           "no such sign, nor one that reports only the study's other objectives" in rules
    assert (f"the first {UNREPORTED_TRIALS} trials to end all failed printing the same objective only with a colon, "
            "as Keras prints it (`- loss: 0.3`)") in rules
    assert "its reason beginning `every trial printed its objective with a colon`" in rules


# docs/kubernetes.md


def test_the_node_pool_example_is_valid():
    section = block("docs/kubernetes.md", "Node pools on GKE and EKS", "yaml")
    spec, _ = load_study(_study_format_example() + section)
    pool = spec.node_pool
    assert (pool.provider, pool.capacity, pool.machine_types, pool.max_nodes) == ("gke", "spot", ("g2-standard-8",), 8)
    assert dict(spec.trial_cluster.node_selector) == {"cloud.google.com/gke-nodepool": "katuna-digits"}


def test_every_provisioning_command_uses_flags_the_script_has():
    from infra.provision import main as provision

    lines = [
        line.split()
        for line in block("docs/kubernetes.md", "The provisioning script", "sh").splitlines()
        if line.startswith("python -m infra.provision ")
    ]
    assert {tuple(words[3:5]) for words in lines} >= {("gke", "up"), ("gke", "status"), ("eks", "up"), ("eks", "down")}
    for words in lines:
        result = CliRunner().invoke(provision, [*words[3:5], "--help"])
        assert result.exit_code == 0, result.output
        for option in re.findall(r"--[a-z-]+", " ".join(words)):
            assert option in result.output, f"{option} of {' '.join(words[3:5])}"


def test_every_provisioning_commands_help_ends_with_the_exit_codes_the_docs_list():
    """The exit codes were in the docs alone; each ``--help`` lists them, as the docs do."""
    from infra.provision import main as provision

    text = (ROOT / "docs" / "kubernetes.md").read_text()
    documented = dict(re.findall(r"^  \| (\d+) \| (.+?) \|$", text.split("## The provisioning script")[1], re.M))
    assert set(documented) == {"0", "1", "2", "130", "143"}, documented
    for command in ([], ["gke"], ["eks"], *([cloud, verb] for cloud in ("gke", "eks") for verb in ("up", "down",
                                                                                                  "status"))):
        helped = CliRunner().invoke(provision, [*command, "--help"]).output
        listed = dict(re.findall(r"^    (\d+) +(.+(?:\n {9}.+)*)", helped.split("Exit codes:")[1], re.M))
        assert {code: " ".join(words.split()) for code, words in listed.items()} == {
            code: words.replace("`--timeout`", "--timeout").replace("`--dry-run`", "--dry-run")
            for code, words in documented.items()}, command


# docs/api.md


def test_every_endpoint_on_the_api_page_is_in_the_openapi_document():
    from functions.adapters.web.openapi import document

    paths = document()["paths"]
    table = "\n".join(line for line in (ROOT / "docs/api.md").read_text().splitlines() if line.startswith("| `"))
    rows = re.findall(r"`(GET|POST|DELETE) (/[^`\[]*)", table)
    assert len(rows) >= 15
    for method, path in rows:
        path = path.replace("{n}", "{number}")  # the page's short name for a trial's number
        assert method.lower() in paths.get(path, {}), f"{method} {path}"
    for line in block("docs/api.md", "The HTTP API and CloudEvent functions", "sh").splitlines():
        if line.startswith("curl "):
            method = re.search(r"-X (\w+)", line)
            path = re.sub(
                r"/quickstart\b",
                "/{name}",
                re.sub(r"/trials/\d+", "/trials/{number}", line.split("localhost:8080")[1].split()[0]),
            )
            assert (method.group(1) if method else ("POST" if "--data" in line else "GET")).lower() in paths[path], line
            if "@" in line:
                assert (ROOT / line.split("@")[1].split()[0]).is_file(), line


def _operation(document: dict, method: str, path: str) -> tuple[str, set[str]] | None:
    """The OpenAPI path a request's ``path`` matches, and the query parameters its ``method``'s
    operation takes; None without one."""
    for template, item in document["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in item:
            parameters = [*item.get("parameters", []), *item[method.lower()].get("parameters", [])]
            return template, {parameter["name"] for parameter in parameters if parameter.get("in") == "query"}
    return None


@pytest.mark.parametrize("page", [page for page in PAGES if page != "CHANGELOG.md"])
def test_every_request_a_page_shows_with_curl_is_an_operation_with_those_parameters(page: str):
    """Each ``curl`` of a page's code blocks asks for a path and method the OpenAPI document has,
    with query parameters its operation takes (``param:optimizer`` is the ``param`` family)."""
    from urllib.parse import parse_qsl, urlsplit

    from functions.adapters.web.openapi import document

    spec = document()
    for shown in blocks(page):
        for line in shown.text.replace("\\\n", " ").splitlines():
            if not line.strip().startswith("curl "):
                continue
            if re.search(r"(?:localhost|127\.0\.0\.1)(?::\d+)?\$", line):
                continue  # a path the script reads from the service (the paging loop, run as written)
            address = re.search(r"(?:https?://[^/\s'\"]+|localhost(?::\d+)?|127\.0\.0\.1(?::\d+)?)(/[^\s'\"]*)", line)
            assert address, f"{page}: {line}"
            method = re.search(r"-X (\w+)", line)
            method = method.group(1) if method else ("POST" if re.search(r"--data|-d ", line) else "GET")
            url = urlsplit(address.group(1))
            found = _operation(spec, method, url.path)
            assert found, f"{page}: {method} {url.path}: no such operation"
            for name, _ in parse_qsl(url.query, keep_blank_values=True):
                assert name.split(":")[0] in found[1], f"{page}: {line}: {name} ({found[0]} takes {sorted(found[1])})"


def test_every_function_the_api_page_names_is_a_handler():
    text = (ROOT / "docs/api.md").read_text()
    names = re.search(r"POST /functions/\{([a-z]+,[a-z,]+)\}", text).group(1).split(",")
    assert sorted(names) == sorted(HANDLERS)
    assert all((ROOT / f"functions/handlers/{name}.py").is_file() for name in names), names


def _outside_parentheses(text: str) -> str:
    """``text`` without what its parentheses hold, nested ones included."""
    kept, depth = [], 0
    for char in text:
        depth += char == "("
        if depth == 0:
            kept.append(char)
        depth -= char == ")" and depth > 0
    return "".join(kept)


def _error_table() -> dict[str, int | None]:
    """The ``error`` codes the errors table of docs/api.md names, each with its row's status
    (None for the row of other statuses); a row of two statuses pairs them with its codes in turn."""
    from functions.adapters.web.openapi import ERROR_CODES

    table = (ROOT / "docs/api.md").read_text().split("| status | `error` |", 1)[1].split("\n\n", 1)[0]
    codes: dict[str, int | None] = {}
    for row in table.splitlines()[2:]:
        statuses, named = row.strip("|").split("|", 1)
        numbers = [int(status) for status in re.findall(r"`(\d{3})`", statuses)] or [None]
        found = [code for code in re.findall(r"`([a-z_]+)`", _outside_parentheses(named)) if code in ERROR_CODES
                 or "_" in code]
        assert len(numbers) in (1, len(found)), row
        codes.update({code: numbers[i] if len(numbers) > 1 else numbers[0] for i, code in enumerate(found)})
    return codes


def _katuna_errors() -> dict[str, type]:
    """Every error class of katuna's, by the ``error`` code its answer carries."""
    import functions
    from functions.adapters.web.errors import error_code
    from functions.core.errors import KatunaError

    for module in pkgutil.walk_packages(functions.__path__, "functions."):  # some import lazily (PyJWT's)
        if module.name != "functions.__main__":
            importlib.import_module(module.name)
    found, todo = {}, [KatunaError]
    while todo:
        kind = todo.pop()
        found[error_code(kind.__new__(kind))] = kind
        todo.extend(kind.__subclasses__())
    return found


def test_the_error_codes_the_api_page_names_are_the_services_with_their_statuses():
    """Each code of the page's errors table is one the service answers with, in the row of the
    status it comes with; a code the table leaves out is a permanent error, the ``422`` of "a
    handler's permanent errors", and every temporary one is in the ``503`` row (a study resource
    waiting for room among the studies not ended, in the ``429`` row: Knative retries both)."""
    from functions.adapters.web.errors import status_of
    from functions.adapters.web.openapi import ERROR_CODES
    from functions.core.errors import PermanentError, TemporaryError

    table, errors = _error_table(), _katuna_errors()
    assert sorted(code for code in table if code not in ERROR_CODES) == [], "codes the service never answers with"
    assert {code: status for code, status in table.items() if code in errors} == {
        code: status_of(errors[code].__new__(errors[code])) for code in table if code in errors}
    left_out = [code for code in ERROR_CODES if code not in table]
    assert [code for code in left_out if not issubclass(errors.get(code, TemporaryError), PermanentError)
            or status_of(errors[code].__new__(errors[code])) != 422] == [], "codes of no row"
    assert sorted(code for code, kind in errors.items() if issubclass(kind, TemporaryError)
                  and table.get(code) not in (503, 429)) == [], "temporary errors outside the 503 and 429 rows"


def _documented_tree() -> dict[str, str | None]:
    """The exception tree the docstring of :mod:`functions.core.errors` draws: each class named
    at the start of a line under ``KatunaError``, by its parent (the class a level less indented)."""
    import functions.core.errors

    doc = functions.core.errors.__doc__ or ""
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in doc[doc.index("\n``KatunaError``\n"):].splitlines():
        found = re.match(r"( *)``(\w+)``", line)
        if not found:
            continue
        depth = len(found[1])
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[found[2]] = stack[-1][1] if stack else None
        stack.append((depth, found[2]))
    return parents


def test_the_exception_tree_the_errors_module_draws_is_katunas_with_each_class_under_its_parent():
    """The one page that says which of katuna's errors to catch and which say "retry": every
    class of the tree, wherever it is defined, is drawn there under the class it derives from,
    and nothing else is, with the HTTP status it is answered with where that is not its branch's."""
    import functions.core.errors
    from functions.adapters.web.errors import status_of
    from functions.core.errors import KatunaError

    kinds = {kind.__name__: kind for kind in _katuna_errors().values()
             if kind.__module__.startswith("functions.")}  # not the provisioning script's (infra/)
    actual = {name: next((base.__name__ for base in kind.__bases__ if issubclass(base, KatunaError)), None)
              for name, kind in kinds.items()}
    assert _documented_tree() == actual
    doc = functions.core.errors.__doc__ or ""
    for name, kind in kinds.items():
        status = status_of(kind.__new__(kind))
        line = next(line for line in doc.splitlines() if line.strip().startswith(f"``{name}``"))
        said = re.findall(r"\((\d{3})[;)]|HTTP (\d{3})", line)
        branch = 503 if kind.retryable else 422
        assert (status == branch and not said) or str(status) in {number for pair in said for number in pair}, line


def test_the_serve_command_on_the_api_page_exists():
    _assert_cli_usage(command_lines(block("docs/api.md", "The HTTP API and CloudEvent functions", "sh"), "katuna"))


# docs/dashboard.md


def test_the_optuna_dashboard_commands_exist():
    text = block("docs/dashboard.md", "optuna-dashboard", "sh")
    _assert_cli_usage(command_lines(text, "katuna"))
    makefile = (ROOT / "Makefile").read_text()
    for target in re.findall(r"^make (\w+)", text, flags=re.M):
        assert re.search(rf"^{target}: \$\(STAMP\)", makefile, flags=re.M), f"make {target} sets up .venv"
    assert re.search(r"^\t.*uv pip sync .*requirements\.lock$", makefile, flags=re.M), ".venv is the lock's"
    assert re.search(r"^optuna-dashboard==", (ROOT / "requirements.lock").read_text(), flags=re.M)
    page = (ROOT / "docs/dashboard.md").read_text()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    installs = re.findall(r"pip install -e '\.\[(\w+)\]'", page)
    assert installs, "how a katuna installed from the checkout gets the dashboard"
    for extra in installs:
        assert any(requirement.startswith("optuna-dashboard") for requirement in extras[extra])


# docs/knative.md


def test_the_knative_install_commands_name_files_and_secrets_that_exist():
    text = block("docs/knative.md", "Install", "sh")
    dockerfile, version = re.search(r"docker build --platform \S+ -f (\S+) -t \S+:(\S+) \.", text).groups()
    assert (ROOT / dockerfile).is_file()
    assert version == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert "kubectl apply -k knative/" in text and (ROOT / "knative/kustomization.yaml").is_file()
    secret = re.search(r"create secret generic (\S+)", text).group(1)
    assert secret in (ROOT / "knative/service.yaml").read_text()


def test_the_install_waits_for_the_service_then_forwards_to_one_of_its_pods():
    """Right after ``kubectl apply -k`` there is no pod yet (it waits for the Secret and its
    database), and during a rollout there are two: ``kubectl port-forward`` takes one pod name,
    so the commands wait for the Service, as long as its revision may take, and pick one."""
    text = block("docs/knative.md", "Install", "sh").replace("\\\n", " ")
    lines = [line.split("#")[0].strip() for line in text.splitlines() if line.startswith("kubectl ")]
    service = yaml.safe_load((ROOT / "knative/service.yaml").read_text())
    wait = next(index for index, line in enumerate(lines) if " wait " in line)
    forward = next(index for index, line in enumerate(lines) if " port-forward " in line)
    secret = next(index for index, line in enumerate(lines) if "create secret" in line)
    assert secret < wait < forward
    assert f"ksvc/{service['metadata']['name']} --for=condition=Ready" in lines[wait]
    timeout = int(re.search(r"--timeout=(\d+)m", lines[wait]).group(1)) * 60
    deadline = service["spec"]["template"]["metadata"]["annotations"]["serving.knative.dev/progress-deadline"]
    assert timeout >= int(deadline.removesuffix("s"))
    assert "-o name | head -n 1)" in lines[forward]
    port = service["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
    assert lines[forward].endswith(f" 8080:{port} &")


def test_the_kubectl_example_applies_a_study_resource_the_cli_reads():
    text = block("docs/knative.md", "Run a study with kubectl", "sh")
    files = set(re.findall(r"-f (examples/\S+)", text))
    assert files == {"examples/digits-study.yaml"}
    resource = yaml.safe_load((ROOT / "examples/digits-study.yaml").read_text())
    assert (resource["apiVersion"], resource["kind"], resource["metadata"]["name"]) == (
        "katuna.dev/v1",
        "Study",
        "digits",
    )
    assert "-n katuna" in text
    image = resource["spec"]["trialTemplate"]["image"]
    assert image in block("docs/knative.md", "Install", "sh"), "the image the Install builds and pushes"
    section = (ROOT / "docs/knative.md").read_text().split("## Run a study with kubectl")[1].split("\n## ")[0]
    assert "`trialTemplate.image`" in section and "`REGISTRY`" in section, "the docs say to set the placeholder"
    converted = CliRunner().invoke(main, ["convert", str(ROOT / "examples/digits-study.yaml")])
    assert converted.exit_code == 0, converted.output
    assert load_study(converted.output)[0].name == "digits"


# docs/katib.md


@pytest.mark.parametrize("example", ["examples/katib-experiment.yaml", "examples/studyjob.yaml"])
def test_the_katib_examples_convert_to_valid_studies(example: str):
    assert example in local_links("docs/katib.md") or f"../{example}" in local_links("docs/katib.md")
    converted = CliRunner().invoke(main, ["convert", str(ROOT / example)])
    assert converted.exit_code == 0, converted.output
    load_study(converted.output)


# docs/architecture.md


def test_the_architecture_pages_event_table_is_the_routing_table():
    """Each row names event types and the handler module that receives them; together they are
    :data:`functions.core.events.ROUTES`, ``dev.knative.apiserver.resource.*`` standing for each
    change the ApiServerSource sends."""
    from functions.core.events import APISERVER_EVENTS, ROUTES

    text = (ROOT / "docs/architecture.md").read_text()
    table = text.split("| event | handler | does |", 1)[1].split("\n\n", 1)[0]
    routes: dict[str, set[str]] = {}
    for row in table.splitlines()[2:]:
        events, handler = row.strip("|").split("|")[:2]
        module = re.fullmatch(r" `functions/handlers/(\w+)\.py` ", handler)
        assert module, row
        for event in re.findall(r"`([\w.*]+)`", events):
            for each in APISERVER_EVENTS if event == "dev.knative.apiserver.resource.*" else (event,):
                routes.setdefault(each, set()).add(module.group(1))
    assert routes == {event: set(handlers) for event, handlers in ROUTES.items()}


def test_the_layout_names_every_function_module():
    row = next(line for line in (ROOT / "docs/architecture.md").read_text().splitlines()
               if line.startswith("| `functions/handlers/` |"))
    functions = row.split("one module per function:", 1)[1].split("; and", 1)[0]
    assert sorted(re.findall(r"`(\w+)`", functions)) == sorted(HANDLERS)


@pytest.mark.slow
def test_optuna_reads_a_study_as_the_architecture_page_shows(tmp_path: Path):
    study = {
        "name": "quickstart",
        "objective": {"metric": "accuracy", "direction": "maximize"},
        "parameters": [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
        "maxTrials": 1,
        "parallelism": 1,
        "trialTemplate": {"command": ["python", "-c", "print('accuracy=0.5')", "${trialParameters.x}"]},
    }
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    run = run_katuna("run", "study.yaml", cwd=tmp_path, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    code = block("docs/architecture.md", "Reading a study with Optuna", "python")
    read = subprocess.run(
        [sys.executable, "-c", code + "print(study.best_value, len(study.trials))"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert read.returncode == 0, read.stderr
    assert read.stdout.split() == ["0.5", "1"]


# docs/performance.md


def test_the_benchmarks_on_the_performance_page_are_the_ones_make_bench_runs():
    text = (ROOT / "docs/performance.md").read_text()
    named = set(re.findall(r"benchmarks/(\w+)\.py", text))
    makefile = (ROOT / "Makefile").read_text()
    assert named == set(re.search(r"^BENCHMARKS := (.+)$", makefile, flags=re.M).group(1).split())
    counts = re.findall(r"(?:`make bench` runs|#) all (\w+) at full size", " ".join(text.split()))
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
             "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
    assert counts and set(counts) == {words[len(named)]}, "the page counts the benchmarks make bench runs"
    assert all((ROOT / f"benchmarks/{name}.py").is_file() for name in named)
    commands = block("docs/performance.md", "Running the benchmarks", "sh")
    assert re.search(r"^bench:", makefile, flags=re.M) and "make bench" in commands
    for script in set(re.findall(r"(benchmarks/\w+\.py) --quick", commands)):
        usage = subprocess.run(
            [sys.executable, str(ROOT / script), "--help"], capture_output=True, text=True, timeout=60
        )
        assert usage.returncode == 0 and "--quick" in usage.stdout, usage.stderr


RESULTS = ROOT / "benchmarks/results"


def _held_figures() -> dict[str, list[tuple[str, float]]]:
    """Each number a committed result file holds at its top level or in its ``figures``, by name
    (what its script's closing ``name=value`` lines print), with the file's name."""
    held: dict[str, list[tuple[str, float]]] = {}
    for path in sorted(RESULTS.glob("*.json")):
        result = json.loads(path.read_text())
        for name, value in [*result.items(), *(result.get("figures") or {}).items()]:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                held.setdefault(name, []).append((path.name, float(value)))
    return held


def test_the_figures_the_performance_page_quotes_are_those_of_its_result_files():
    """In the page's Figures table, the first ``name=value`` of a name in each row is the result
    file's, as rounded on the page (later ones in a row are earlier runs, said to be); a name
    several result files hold (a script run on each cloud) is that of the file the row's script
    writes by default."""
    text = (ROOT / "docs/performance.md").read_text()
    table = text.split("\n## Figures\n", 1)[1].split("\n## ", 1)[0]
    held = _held_figures()
    checked = 0
    for row in (line for line in table.splitlines() if line.startswith("| ")):
        seen: set[str] = set()
        script = re.search(r"benchmarks/(\w+)\.py", row)
        for name, written in re.findall(r"`(\w+)=(-?\d+(?:\.\d+)?)", row):
            if name in seen or name not in held:
                continue
            seen.add(name)
            found = held[name] if len(held[name]) == 1 or script is None else \
                [(file, value) for file, value in held[name] if file == f"{script[1]}.json"]
            assert len(found) == 1, f"{name} is in several result files: {held[name]}"
            file, value = found[0]
            decimals = len(written.partition(".")[2])
            assert abs(value - float(written)) <= 0.5 * 10 ** -decimals + 1e-9, \
                f"the page says {name}={written}; benchmarks/results/{file} holds {value}"
            checked += 1
    assert checked >= 20, checked


def test_the_performance_page_names_the_cpu_each_result_file_ran_on():
    intro = (ROOT / "docs/performance.md").read_text().split("\n## ", 1)[0]
    listed = {name: cpu for cpu, names in re.findall(r"^\| ([^|`]+?) \| ((?:`\w+`(?:, )?)+) \|$", intro, re.M)
              for name in re.findall(r"`(\w+)`", names)}
    assert set(listed) == {path.stem for path in RESULTS.glob("*.json")}
    for name, cpu in listed.items():
        recorded = json.loads((RESULTS / f"{name}.json").read_text())["machine"]["cpu"].replace("(R)", "")
        assert set(cpu.split()) <= set(recorded.split()), f"{name}: the page says {cpu}, the file {recorded}"


def _figures_rows() -> list[list[str]]:
    """The cells of each row of the performance page's Figures table."""
    text = (ROOT / "docs/performance.md").read_text()
    table = text.split("\n## Figures\n", 1)[1].split("\n## ", 1)[0]
    rows = [[cell.strip() for cell in line[2:-2].split(" | ")] for line in table.splitlines() if line.startswith("| ")]
    return rows[2:]


def _cpus() -> set[str]:
    """The CPUs the performance page's first table names."""
    intro = (ROOT / "docs/performance.md").read_text().split("\n## ", 1)[0]
    return set(re.findall(r"^\| ([^|`]+?) \| `", intro, re.M))


def test_each_figure_row_is_short_with_its_machine_date_and_verdict_and_links_to_its_section():
    """A row gives the current figure, the CPU and the day it ran, and whether it meets a target,
    in a sentence or two; its history is in the benchmark's own section, which the row links to."""
    cpus = _cpus()
    rows = _figures_rows()
    assert len(rows) >= 15
    for benchmark, target, result in rows:
        assert len(result) <= 500, f"{benchmark}: a result cell of {len(result)} characters"
        named = re.findall("|".join(map(re.escape, cpus)), result)
        assert named, f"{benchmark}: no CPU named"
        script = re.search(r"benchmarks/(\w+)\.py", benchmark)
        if script and (RESULTS / f"{script[1]}.json").exists():
            recorded = json.loads((RESULTS / f"{script[1]}.json").read_text())["machine"]["cpu"].replace("(R)", "")
            assert set(named[0].split()) <= set(recorded.split()), f"{benchmark}: {named[0]}, the file {recorded}"
        assert re.search(r"\b20\d\d-\d\d-\d\d\b", result), f"{benchmark}: no date"
        verdict = target == "none: figures" or re.search(r"\*\*(?:not )?met\*\*", result)
        assert verdict, f"{benchmark}: no verdict"
        assert re.search(r"\]\(#[\w-]+\)", result), f"{benchmark}: no link to its section"


def test_each_figure_rows_verdict_follows_from_its_figures_and_target():
    """Where a target bounds figures a result file holds (``name`` ≤ or ≥ a number), the row's
    first verdict is **met** exactly when the file's figures are within every bound."""
    held = _held_figures()
    checked = 0
    for benchmark, target, result in _figures_rows():
        bounds = re.findall(r"`(\w+)` ([≤≥]) (\d+(?:\.\d+)?)", target)
        script = re.search(r"benchmarks/(\w+)\.py", benchmark)
        if not bounds or script is None or not all(name in held for name, _, _ in bounds):
            continue
        within = []
        for name, sign, bound in bounds:
            (value,) = [v for file, v in held[name] if file == f"{script[1]}.json"]
            within.append(value <= float(bound) if sign == "≤" else value >= float(bound))
        verdict = re.search(r"\*\*(not met|met)\*\*", result)
        assert verdict and (verdict[1] == "met") == all(within), f"{benchmark}: {verdict and verdict[1]}"
        checked += 1
    assert checked >= 4, checked


def test_the_peers_table_is_the_result_files_run():
    """The table of katuna beside its peers gives the medians of ``benchmarks/results/overhead.json``:
    each tuner's wall time, and its wall time per trial (over the trials each ran: Ray runs fewer)."""
    result = json.loads((RESULTS / "overhead.json").read_text())
    section = (ROOT / "docs/performance.md").read_text().split("\n## Beside Optuna's RDB storage and Ray Tune\n")[1]
    table = section.split("\n\n| tuner |", 1)[1].split("\n\n", 1)[0]
    names = {"katuna": "katuna", "in-memory": "optuna", "journal": "optuna+journal", "RDB": "optuna+rdb",
             "tuned": "ray+tuned", "defaults": "ray+default"}
    rows = [line[2:-2].split(" | ") for line in table.splitlines()[2:]]
    assert len(rows) == len(names)
    for tuner, wall, per_trial, _ in rows:
        (run,) = [run for word, run in names.items() if word in tuner]
        median = sorted(r[0] for r in result["runs"][run])[len(result["runs"][run]) // 2]
        trials = result["ray_trials"] if run.startswith("ray") else result["trials"]
        assert float(wall) == round(median, 2), f"{tuner}: {wall}, the file {median}"
        written = per_trial.replace(",", "")
        decimals = len(written.partition(".")[2])
        assert abs(float(written) - median / trials * 1000) <= 0.5 * 10 ** -decimals + 1e-9, f"{tuner}: {per_trial}"


def test_the_readme_cost_figures_are_the_result_files_with_their_machine():
    """README.md's cost of the reference study on each cloud is that of the cloud's result file,
    with the CPU that file ran on."""
    readme = " ".join((ROOT / "README.md").read_text().split())
    for cloud, file in (("GKE", "cluster_cost"), ("EKS", "cluster_cost_eks")):
        result = json.loads((RESULTS / f"{file}.json").read_text())
        found = re.search(rf"On {cloud} \(([^)]*)\),.*?(\d\.\d\d)(?: of the fixed pool)? at (\d\.\d\d\d?)×", readme)
        assert found, cloud
        cpu = result["machine"]["cpu"].replace("(R)", "")
        assert any(set(name.split()) <= set(cpu.split()) and name in found[1] for name in _cpus()), \
            f"{cloud}: {found[1]}, the file {cpu}"
        figures = result["figures"]
        shown = len(found[3].partition(".")[2])  # three digits where two would round past a target
        assert (float(found[2]), float(found[3])) == (round(figures["cost_ratio_vs_fixed"], 2),
                                                      round(figures["makespan_ratio_vs_fixed"], shown)), cloud


# docs/reliability.md


def test_the_pages_give_the_test_processes_make_runs():
    """CONTRIBUTING.md and the reliability page say how many pytest-xdist processes ``make test``
    and ``make check`` run: the Makefile's ``-n``."""
    makefile = (ROOT / "Makefile").read_text()
    runs = {target: int(re.search(r"^\t.*-m pytest.* -n (\d+)", recipe, flags=re.M).group(1))
            for target, recipe in re.findall(r"^(test|check):.*\n((?:\t.*\n)+)", makefile, flags=re.M)}
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight"]
    contributing = " ".join((ROOT / "CONTRIBUTING.md").read_text().split())
    reliability = " ".join((ROOT / "docs/reliability.md").read_text().split())
    said = {"test": [*re.findall(r"(\w+) for `make test`", contributing),
                     *re.findall(r"`make test`,[^)]*? (\w+) pytest-xdist processes", reliability)],
            "check": re.findall(r"(\w+) for `make check`", contributing)}
    assert {target: [words.index(word) for word in found] for target, found in said.items()} == \
        {"test": [runs["test"]] * 2, "check": [runs["check"]]}


def test_every_suite_the_reliability_page_runs_exists():
    text = block("docs/reliability.md", "Reliability: what katuna was put through, and what held", "sh")
    files = re.findall(r"tests/test_\w+\.py", text)
    assert len(files) >= 10
    assert all((ROOT / f).is_file() for f in files), files


# docs/trials.md


def test_the_text_metric_line_is_read_as_katuna_reads_output():
    line = block("docs/trials.md", "Text lines on standard output", "text")
    observations = parse_text(line.splitlines(), ["accuracy", "loss"])
    assert {(o.metric, o.value, o.step) for o in observations} == {("accuracy", 0.9422, 3), ("loss", 0.1873, 3)}


def test_the_commands_to_run_a_trial_locally_exist():
    text = block("docs/trials.md", "Run it locally first", "sh")
    lines = command_lines(text, "katuna")
    _assert_cli_usage(lines)
    for words in lines:
        for word in words:
            if word.endswith(".yaml"):
                assert (ROOT / word).is_file(), word


def test_the_trial_image_runs_its_script_as_a_non_root_user_on_a_slim_python():
    build = block("docs/trials.md", "Build and push the image", "sh")
    dockerfile = re.search(r"docker build --platform \S+ -f (\S+) -t (\S+) \.$", build, flags=re.M)
    assert dockerfile and f"docker push {dockerfile.group(2)}" in build
    instructions = [line.split(None, 1) for line in _dockerfile_lines(ROOT / dockerfile.group(1))]
    assert instructions[0][0] == "FROM" and re.fullmatch(r"python:3\.\d+-slim", instructions[0][1])
    user = [args for op, args in instructions if op == "USER"]
    assert user and user[-1].split(":")[0] not in {"0", "root"}
    copied = [args.split() for op, args in instructions if op == "COPY"]
    assert copied and all((ROOT / source).is_file() for args in copied for source in args[:-1])
    ignore = _dockerfile_lines(ROOT / (dockerfile.group(1) + ".dockerignore"))
    assert ignore[0] == "*" and sorted(ignore[1:]) == sorted(f"!{source}" for args in copied for source in args[:-1])
    workdir = [args for op, args in instructions if op == "WORKDIR"][-1]
    study = yaml.safe_load((ROOT / "examples/trial-image/study.yaml").read_text())
    script = study["trialTemplate"]["command"][1]
    assert any(f"{workdir}/{Path(script).parent}/" == args[-1] for args in copied), "the script keeps its path"
    assert study["trialTemplate"]["image"] == dockerfile.group(2)


def test_the_trial_image_study_renders_the_job_of_its_image():
    rendered = CliRunner().invoke(
        main,
        ["render", str(ROOT / "examples/trial-image/study.yaml"), "--params", "alpha=0.001", "--params", "lr=0.05"],
    )
    assert rendered.exit_code == 0, rendered.output
    job = yaml.safe_load(rendered.output[rendered.output.index("apiVersion") :])
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "REGISTRY/digits-trial:1"
    assert container["command"][:4] == ["python", "examples/trial-image/train.py", "--alpha=0.001", "--lr=0.05"]


def _rendered_pod(study: dict, tmp_path: Path) -> dict:
    """The pod template of the Job ``katuna render`` prints for ``study``."""
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    rendered = CliRunner().invoke(main, ["render", str(tmp_path / "study.yaml")])
    assert rendered.exit_code == 0, rendered.output
    return yaml.safe_load(rendered.output[rendered.output.index("apiVersion"):])["spec"]["template"]["spec"]


def test_a_metrics_file_on_a_cluster_is_read_as_the_trials_page_says(tmp_path: Path):
    """The trials page's file collector works on a cluster too (the page once said files were
    read for local trials only): the trial image's study with it renders a Job whose command is
    wrapped in ``sh``; the absolute path the page advises gets an ``emptyDir`` at its folder, which
    the image's non-root user can write, where the relative one stays in the image's working
    directory, which the image's user cannot."""
    section = (ROOT / "docs/trials.md").read_text().split("\n### A file\n", 1)[1].split("\n## ", 1)[0]
    prose = " ".join(section.split("```", 1)[0].split())
    study = yaml.safe_load((ROOT / "examples/trial-image/study.yaml").read_text())
    study.update(yaml.safe_load(block("docs/trials.md", "A file", "yaml")))
    relative = _rendered_pod(study, tmp_path)
    assert relative["containers"][0]["command"][:2] == ["sh", "-c"] and not relative.get("volumes")
    (advised,) = re.findall(r"such as `(/[^`]+)`", prose)
    study["metricsCollector"]["path"] = advised
    absolute = _rendered_pod(study, tmp_path)
    assert absolute["containers"][0]["command"][:2] == ["sh", "-c"]
    assert [mount["mountPath"] for mount in absolute["containers"][0]["volumeMounts"]] == [str(Path(advised).parent)]
    assert [volume.get("emptyDir") for volume in absolute["volumes"]] == [{}]
    dockerfile = _dockerfile_lines(ROOT / "examples/trial-image/Dockerfile")
    assert [line for line in dockerfile if line.startswith("USER ")][-1] != "USER root", "the page's non-root image"
    assert "local trials only" not in prose
    for said in ("the image needs `sh`", "an `emptyDir` at its folder", "an image running as a non-root user"):
        assert said.lower() in prose.lower(), said


@pytest.mark.slow
def test_the_trial_image_script_runs_as_a_trial_reporting_json_lines_to_a_file(tmp_path: Path):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    study = yaml.safe_load((ROOT / "examples/trial-image/study.yaml").read_text())
    template = study["trialTemplate"]
    template["command"] = [
        *template["command"][:4],
        "--epochs=2",
        "--format=json",
        "--metrics-file=metrics-${trialSpec.Name}.jsonl",
    ]
    study.update(yaml.safe_load(block("docs/trials.md", "A file", "yaml")), maxTrials=1, parallelism=1)
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KATUNA_")}
    run = run_katuna("run", "study.yaml", "--db", "k.db", cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "metrics-digits-sgd-0.jsonl").read_text().count("\n") == 2
    trials = json.loads(run_katuna("trials", "digits-sgd", "--db", "k.db", "--json", cwd=tmp_path, env=env).stdout)
    assert [t["state"] for t in trials] == ["COMPLETE"]
    assert 0.5 < trials[0]["metrics"]["accuracy"] <= 1.0 and trials[0]["metrics"]["loss"] > 0


def _dockerfile_lines(path: Path) -> list[str]:
    """A Dockerfile's instructions, continuation lines joined, comments left out."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_convert_help_names_every_kind_of_document_it_converts():
    """README.md and docs/knative.md use ``katuna convert`` on Experiments, StudyJobs and Study resources."""
    usage = " ".join(CliRunner().invoke(main, ["convert", "--help"]).output.split())
    for kind in ("Katib Experiment (kubeflow.org/v1beta1)", "Katib StudyJob (kubeflow.org/v1alpha1)",
                 "katuna.dev/v1 Study resource", "native study"):
        assert kind in usage


def test_the_test_counts_the_reliability_page_gives_are_the_files_own():
    """Each ``tests/<file>.py`` (N tests) the page names holds N tests, as pytest collects them."""
    counted = dict(re.findall(r"`tests/(test_\w+\.py)`,? \(?(\d+) tests", (ROOT / "docs/reliability.md").read_text()))
    assert len(counted) >= 10
    collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                                *(f"tests/{name}" for name in counted)], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout
    found = {name: sum(line.startswith(f"tests/{name}::") for line in collected.splitlines()) for name in counted}
    assert found == {name: int(count) for name, count in counted.items()}


def _quoted(page: str) -> str:
    """The text of ``page`` with its line breaks and runs of spaces as one space, as a quote
    wrapped over lines reads."""
    return " ".join((ROOT / page).read_text().split())


def test_the_trial_reasons_the_study_format_page_quotes_are_the_ones_katuna_gives():
    """Each reason the page quotes is a part of the reason katuna gives for that end, so a
    change of wording in either shows here (the ends are the handlers' own verdicts on an
    attempt's end, without running a trial)."""
    record = StudyRecord(parse_study(study_definition()), study_definition(), ".", "uid-1")
    exited = {"outcome": "exited", "exitCode": 0, "attempt": 1}
    timeout = finished_event(TrialLaunch("demo", "uid-1", 0, 1, "demo-0", ["train"], {}, ".", timeout=600),
                             -9, timed_out=True).data
    reasons = {
        "pruned at step 3 by the median rule (loss=0.41)": prune_verdict(record, "median", True, 3, 0.41),
        "pruned at step 2: loss=nan is not a finite number, which fails the trial":
            prune_verdict(record, "median", False, 2, float("nan")),
        "lines like loss=<number> on its output": trial_verdict(record, exited, {}, ["Validation-loss=0.3"])[2],
        "its last lines report Validation-loss: is the name in objective.metric misspelt?":
            trial_verdict(record, exited, {}, ["epoch=3 Validation-loss=0.3"])[2],
        "its last lines print loss with a colon (loss: 0.3), which is no name=value: print loss=0.3, or give "
        "metricsCollector.filters a rule that reads it": trial_verdict(record, exited, {}, ["1/1 - loss: 0.3"])[2],
        "objective is not a finite number": trial_verdict(record, exited, {"loss": float("nan")}, [])[2],
        "timed out: ran past its timeout of 600s (trialTemplate.timeout sets it: raise it for a trial that "
        "needs longer)": trial_verdict(record, {**timeout, "attempt": 1}, {}, [])[2],
    }
    page = _quoted("docs/study-format.md")
    for quote, reason in reasons.items():
        assert quote in page, f"docs/study-format.md no longer quotes {quote!r}"
        assert reason is not None and quote in reason, (quote, reason)
    assert trial_verdict(record, exited, {}, [])[2].startswith("metrics unavailable: objective 'loss' never reported")


def test_the_readme_names_the_path_and_line_of_a_bound_the_wrong_way_round():
    """The README's example of a refused study: its study with the third parameter's bounds
    swapped is refused naming ``parameters[2].max (line 6)``, as ``katuna run`` places a
    problem of a file."""
    text = block("README.md", "A study", "yaml")
    line = text.splitlines()[5]
    assert line.strip() == "- {name: lr, type: float, min: 1.0e-4, max: 1.0e-1, log: true}"
    swapped = text.replace(line, line.replace("min: 1.0e-4, max: 1.0e-1", "min: 1.0e-1, max: 1.0e-4"))
    with pytest.raises(InvalidStudy) as refused:
        load_study(swapped)
    lines = field_lines(swapped)
    assert [located(problem, lines) for problem in refused.value.problems] == [
        "parameters[2].max (line 6): expected >= min (0.1), got 0.0001"]
    assert "(`parameters[2].max (line 6)`)" in _quoted("README.md")
