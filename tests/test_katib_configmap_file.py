"""A study file holding a Katib Experiment and the ConfigMap its trial template is read from, as
``kubectl apply -f`` takes them: the template is read from the file's ConfigMap as Katib reads it
(the key ``templatePath``, its YAML read after the placeholders are filled), before any cluster,
and the study runs as if the template had been inline: with ``katuna run``, and posted to a real
``katuna serve``. Anything else in the file is refused naming the document by its line. The
files are Katib's own (``tests/data/katib_examples/shipped/``): the Experiment
``trial-configmap-source.yaml`` with the ``trial-templates`` ConfigMap appended."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from conftest import app_client
from http_helpers import Service, run_katuna

from functions.core import yaml_bounds, yaml_documents
from functions.core.cluster_templates import ClusterTemplates
from functions.core.errors import InvalidStudy, UnparseableStudy
from functions.core.study_file import parse_file
from functions.core.template_sources import load

SHIPPED = Path(__file__).parent / "data" / "katib_examples" / "shipped"
TRIALS = Path(__file__).parent / "trials"
EXPERIMENT = (SHIPPED / "trial-configmap-source.yaml").read_text()
TEMPLATES = (SHIPPED / "trial-templates.yaml").read_text()
NAME = "trial-configmap-source"
SOURCE = "ConfigMap kubeflow/trial-templates, key defaultTrialTemplate.yaml, given in the submitted file"
CONFIG_MAP = "spec.trialTemplate.configMap"


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("KATUNA_")}


def as_shipped() -> str:
    """Katib's Experiment with Katib's ConfigMap appended, one file as ``kubectl apply -f`` takes it."""
    return EXPERIMENT + TEMPLATES


def runnable() -> str:
    """The same file with the ConfigMap's default template running what the Experiment was
    written for: Katib's webhook refuses the two as shipped (the template passes
    ``${trialParameters.momentum}``, which the Experiment does not declare, and neither of its
    ``numberLayers`` and ``optimizer``); the template passes those three to a stand-in of the
    ``mxnet-mnist`` script (``tests/trials/katib_mxnet_mnist.py``) as Katib's earlier one did."""
    old = ('- "/opt/pytorch-mnist/mnist.py"\n                - "--epochs=1"\n                - "--batch-size=16"\n'
           '                - "--lr=${trialParameters.learningRate}"\n'
           '                - "--momentum=${trialParameters.momentum}"')
    new = (f'- "{TRIALS}/katib_mxnet_mnist.py"\n                - "--epochs=1"\n                - "--batch-size=16"\n'
           '                - "--lr=${trialParameters.learningRate}"\n'
           '                - "--num-layers=${trialParameters.numberLayers}"\n'
           '                - "--optimizer=${trialParameters.optimizer}"')
    assert TEMPLATES.count(old) == 1
    return EXPERIMENT + TEMPLATES.replace(old, new)


def _stand_in() -> ModuleType:
    """The stand-in script, loaded for the values it prints."""
    spec = importlib.util.spec_from_file_location("katib_mxnet_mnist", TRIALS / "katib_mxnet_mnist.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cluster_of(text: str) -> ClusterTemplates:
    """A cluster holding the ConfigMap of Katib's ``trial-templates.yaml`` (``text``), as
    ``kubectl apply -f`` of it leaves it there."""
    config_map = yaml.safe_load(text)
    where = (config_map["metadata"]["namespace"], config_map["metadata"]["name"])
    return ClusterTemplates(lambda namespace, name: config_map["data"] if (namespace, name) == where else None,
                            "katuna")


def _loaded(text: str, cluster: ClusterTemplates | None = None):
    definition, given = parse_file(text)
    return load(definition, cluster, given=given)


def _problems(text: str) -> dict[str, str]:
    with pytest.raises(InvalidStudy) as refused:
        _loaded(text)
    return {problem.path: problem.message for problem in refused.value.problems}


@pytest.mark.parametrize("order", ["experiment first", "configmap first"])
def test_katibs_files_in_one_file_are_refused_as_katibs_webhook_refuses_them(order: str, tmp_path: Path):
    """Katib's files as shipped: the template is read from the file's ConfigMap, and refused
    exactly as the same ConfigMap read from the cluster is (Katib's webhook refuses it too),
    never as a file of several documents or a template there is no cluster to read."""
    text = as_shipped() if order == "experiment first" else TEMPLATES + EXPERIMENT
    with pytest.raises(InvalidStudy) as from_cluster:
        load(yaml.safe_load(EXPERIMENT), _cluster_of(TEMPLATES))
    with pytest.raises(InvalidStudy) as from_file:
        _loaded(text)
    assert from_file.value.problems == from_cluster.value.problems
    assert [p.path for p in from_file.value.problems] == [
        "spec.trialTemplate.trialParameters[1].name", "spec.trialTemplate.trialParameters[2].name",
        "spec.trialTemplate.trialSpec"]
    file = tmp_path / "experiment.yaml"
    file.write_text(text)
    done = run_katuna("run", str(file), "--db", str(tmp_path / "k.db"), cwd=tmp_path, env=_environ())
    assert done.returncode == 2, done
    line = 1 + EXPERIMENT.splitlines().index("      - name: numberLayers") + \
        (len(TEMPLATES.splitlines()) if order == "configmap first" else 0)
    assert f"spec.trialTemplate.trialParameters[1].name (line {line}): " in done.stderr
    assert "several" not in done.stderr and "more than one YAML document" not in done.stderr
    assert not (tmp_path / "k.db").exists()


def test_the_template_is_read_as_from_the_cluster_and_stored_inline():
    """The stored definition is the one a cluster's ConfigMap gives, but for where it came from."""
    _, from_file = _loaded(runnable())
    _, from_cluster = load(yaml.safe_load(EXPERIMENT), _cluster_of(runnable()[len(EXPERIMENT):]))
    annotations = from_file["metadata"].pop("annotations")
    assert annotations == {**from_cluster["metadata"].pop("annotations"),
                           "katuna.dev/trial-template-source": SOURCE}
    assert from_file == from_cluster
    assert "configMap" not in from_file["spec"]["trialTemplate"]
    assert from_file["spec"]["trialTemplate"]["trialSpec"]["kind"] == "Job"


def _check_ran(db: Path) -> None:
    """The study in ``db`` completed its ten trials, each with the metrics the template's script printed."""
    stand_in = _stand_in()
    with app_client(db) as client:
        study = client.get(f"/studies/{NAME}").get_json()
        trials = client.get(f"/studies/{NAME}/trials").get_json()
    assert study["status"] == "completed", study
    assert study["trialTemplateSource"] == SOURCE
    assert len(trials) == 10 and {trial["state"] for trial in trials} == {"COMPLETE"}
    for trial in trials:
        params = trial["params"]
        train, validation = stand_in.accuracies(float(params["lr"]), int(params["num-layers"]), params["optimizer"])
        assert trial["values"] == [validation], trial
        assert trial["metrics"]["Train-accuracy"] == train, trial


def test_katuna_run_runs_the_file_with_the_template_of_its_configmap(tmp_path: Path):
    file = tmp_path / "experiment.yaml"
    file.write_text(runnable())
    done = run_katuna("run", str(file), "--db", str(tmp_path / "k.db"), cwd=tmp_path, env=_environ())
    assert done.returncode == 0, done
    _check_ran(tmp_path / "k.db")
    converted = run_katuna("convert", str(file), cwd=tmp_path, env=_environ())
    assert converted.returncode == 0, converted
    assert f"{TRIALS}/katib_mxnet_mnist.py" in converted.stdout


@pytest.mark.slow
def test_the_file_posted_to_a_service_runs_and_posting_it_again_changes_nothing(tmp_path: Path):
    service = Service(tmp_path, workers=2)
    try:
        headers = {"Content-Type": "application/yaml"}
        status, _, body = service.request("POST", "/studies", runnable(), headers)
        assert status == 201, body
        assert service.wait_for(NAME, timeout=120)["status"] == "completed"
        status, _, body = service.request("POST", "/studies", runnable(), headers)
        assert status == 200, body
    finally:
        service.close()
    _check_ran(tmp_path / "katuna.db")


def _line_of(text: str, line: str, after: int = 0) -> int:
    """The number (from 1) of the first line of ``text`` past line ``after`` that is ``line``."""
    return next(number for number, found in enumerate(text.splitlines(), 1) if number > after and found == line)


def _second_start(text: str) -> int:
    return _line_of(text, "---", after=1)


def _refusal(text: str) -> list[str]:
    with pytest.raises(UnparseableStudy) as refused:
        parse_file(text)
    assert {problem.path for problem in refused.value.problems} == {""}
    return [problem.message for problem in refused.value.problems]


def test_a_second_study_in_the_file_is_refused_naming_its_line():
    text = runnable() + EXPERIMENT.replace(f"name: {NAME}", "name: again")
    second = _line_of(text, "---", after=_second_start(text))
    [message] = _refusal(text)
    assert message.startswith(f"the document beginning at line {second} is a second study (apiVersion "
                              "'kubeflow.org/v1beta1' kind 'Experiment' named 'again'; the first begins at line 1)")


def test_a_document_of_another_kind_is_refused_naming_its_line_and_kind():
    text = runnable() + "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: token\nstringData:\n  a: b\n"
    [message] = _refusal(text)
    assert message.startswith(f"the document beginning at line {len(runnable().splitlines()) + 1} is apiVersion "
                              "'v1' kind 'Secret' named 'token', which katuna does not read")
    assert _refusal(runnable() + "---\n- a list\n") == [
        f"the document beginning at line {len(runnable().splitlines()) + 1} holds a list: expected a mapping; a study "
        "file holds one study and the ConfigMap its trial template is read from (spec.trialTemplate.configMap)"]


def _other_map(name: str = "other-templates", namespace: str | None = "kubeflow", data: str = "  a.yaml: x\n") -> str:
    metadata = f"  name: {name}\n" + (f"  namespace: {namespace}\n" if namespace else "")
    return f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n{metadata}data:\n{data}"


def test_a_configmap_the_experiment_does_not_read_is_refused_naming_it_and_the_one_it_reads():
    text = runnable() + _other_map()
    line = len(runnable().splitlines()) + 1
    assert _problems(text) == {"": f"ConfigMap kubeflow/other-templates (line {line}) is not the ConfigMap the study "
                                   "reads its trial template from (spec.trialTemplate.configMap names "
                                   "kubeflow/trial-templates); a study file holds one study and the ConfigMap its "
                                   "trial template is read from (spec.trialTemplate.configMap): apply the other with "
                                   "kubectl"}
    alone = EXPERIMENT + _other_map()
    problems = _problems(alone)
    assert problems[f"{CONFIG_MAP}.configMapName"] == (
        f"names ConfigMap kubeflow/trial-templates, which the file does not give: it gives ConfigMap "
        f"kubeflow/other-templates (line {len(EXPERIMENT.splitlines()) + 1})")


def test_a_configmap_beside_a_study_that_reads_none_is_refused():
    inline = (SHIPPED / "random.yaml").read_text()
    [message] = _problems(inline + TEMPLATES).values()
    assert message.startswith(f"ConfigMap kubeflow/trial-templates (line {len(inline.splitlines()) + 1}): the study "
                              "reads no trial template from a ConfigMap (its spec.trialTemplate gives the trialSpec "
                              "inline)")
    native = "name: native\nobjective: {metric: loss}\n"
    assert "only a Katib Experiment's spec.trialTemplate.configMap names one" in _problems(native + TEMPLATES)[""]


def test_a_key_the_configmap_lacks_is_refused_naming_the_key_and_the_keys_it_has():
    text = as_shipped().replace("templatePath: defaultTrialTemplate.yaml", "templatePath: missing.yaml")
    line = _second_start(text)
    assert _problems(text) == {f"{CONFIG_MAP}.templatePath": (
        f"ConfigMap kubeflow/trial-templates (line {line} of the file) has no key 'missing.yaml'; its keys: "
        "defaultTrialTemplate.yaml, enasCPUTemplate, pytorchJobTemplate")}


def test_a_configmap_naming_no_namespace_is_in_the_experiments():
    """kubectl puts a ConfigMap that names no namespace where it applies the file: the
    Experiment's namespace where that is given (``kubectl apply -n``), which the reference must
    name; where the Experiment names none either, both land in one, the reference's."""
    unnamed = runnable().replace("  namespace: kubeflow\n  labels:", "  labels:")
    assert _loaded(unnamed)[1]["metadata"]["annotations"]["katuna.dev/trial-template-source"] == SOURCE
    no_namespace = unnamed.replace("  namespace: kubeflow\n  name: trial-configmap-source",
                                   "  name: trial-configmap-source")
    assert _loaded(no_namespace)[0].name == NAME
    elsewhere = unnamed.replace("  namespace: kubeflow\n  name: trial-configmap-source",
                                "  namespace: team\n  name: trial-configmap-source")
    problems = _problems(elsewhere)
    assert "; naming no namespace, it lands in the Experiment's, team: give it metadata.namespace" in problems[""]
    another = runnable().replace("  namespace: kubeflow\n  labels:", "  namespace: team\n  labels:")
    assert f"{CONFIG_MAP}.configMapName" in _problems(another)


def test_the_configmap_given_twice_is_refused():
    text = runnable() + TEMPLATES
    first, second = _second_start(text), _line_of(text, "---", after=_second_start(text))
    assert _problems(text)[f"{CONFIG_MAP}.configMapName"] == (
        f"the file gives ConfigMap kubeflow/trial-templates more than once (lines {first} and {second}): kubectl "
        "applies each over the one before; give it once")


def test_a_configmap_the_api_server_would_refuse_is_refused():
    messages = _refusal(runnable() + _other_map(name="", data="  flag: true\n  n: 3\n"))
    assert [m.split(": ", 1)[1] for m in messages] == [
        "metadata.name: required, the name the Experiment's spec.trialTemplate.configMap.configMapName gives",
        "data.flag: expected text, got a bool: 'True' (quote it: the API server takes only strings in a ConfigMap's "
        "data)",
        "data.n: expected text, got a int: '3' (quote it: the API server takes only strings in a ConfigMap's data)"]


def test_documents_past_the_bound_are_refused():
    text = runnable() + _other_map() * yaml_documents.MAX_DOCUMENTS
    [message] = _refusal(text)
    assert message.startswith(f"holds more than {yaml_documents.MAX_DOCUMENTS} YAML documents (the next begins at "
                              "line ")


def test_documents_together_past_the_bound_on_values_are_refused(monkeypatch: pytest.MonkeyPatch):
    """Each document within the bound of one, all of them together past it (the bound lowered
    to 2,000 values: the YAML reader takes seconds to compose a hundred thousand)."""
    monkeypatch.setattr(yaml_bounds, "MAX_NODES", 2_000)
    half = "".join(f"  k{i}: v\n" for i in range(yaml_bounds.MAX_NODES // 5))
    text = runnable() + _other_map(data=half) + _other_map(name="third", data=half) + \
        _other_map(name="fourth", data=half)
    [message] = _refusal(text)
    assert message == (f"too large to read: the document stands for more than {yaml_bounds.MAX_NODES:,} values in "
                       "all its documents together")


def test_an_alias_bomb_in_a_later_document_is_refused():
    bomb = "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for level in "bcdefgh":
        previous = chr(ord(level) - 1)
        bomb += f"  {level}: &{level} [*{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}]\n"
    [message] = _refusal(runnable() + bomb)
    assert message.startswith("too large to read: the document stands for more than")


@pytest.mark.parametrize("before", ["", "third"])
def test_a_later_documents_yaml_error_names_its_line(before: str):
    """Second or third, a document's YAML error names the line it begins at, never a field of the study."""
    first = runnable() if before else EXPERIMENT
    for bad in ("---\napiVersion: v1\nkind: ConfigMap\ndata:\n  a: b\n  a: c\n",
                "---\napiVersion: v1\nkind: ConfigMap\ndata:\n  a: yes\n"):
        [message] = _refusal(first + bad)
        assert message.startswith(f"the document beginning at line {len(first.splitlines()) + 1}: data.a: "), message


def test_a_posted_file_is_refused_with_the_same_problems(tmp_path: Path):
    text = runnable() + _other_map()
    with app_client(tmp_path / "served.db") as client:
        answer = client.post("/studies", data=text.encode(), content_type="application/yaml")
        assert answer.status_code in (400, 422), answer.get_data(as_text=True)
        posted = {p["path"]: p["message"] for p in answer.get_json()["problems"]}
        assert posted == _problems(text)
        assert "is not the ConfigMap the study reads its trial template from" in posted[""]
        assert client.get(f"/studies/{NAME}").status_code == 404


@pytest.mark.parametrize("metadata,field", [("name: Trial_Templates", "metadata.name"),
                                            ("name: t\n  namespace: Kube Flow", "metadata.namespace"),
                                            ("name: t\n  namespace: 7", "metadata.namespace")])
def test_a_configmap_name_the_api_server_would_refuse_is_refused_naming_it(metadata: str, field: str):
    text = runnable() + f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  {metadata}\ndata: {{}}\n"
    [message] = _refusal(text)
    assert message.startswith(f"the ConfigMap beginning at line {len(runnable().splitlines()) + 1}: {field}: expected ")
