"""What ``kubectl apply -k knative/`` installs, with and without the EKS component (storage, and
trial pods kept from the instance metadata service).

kustomize itself may not be installed, so :func:`render` is a small renderer of exactly the
kustomize features the manifests and the documented overlays use (resources, a base folder as a
resource, components, JSON 6902 patches with a target, the namespace, and the ServiceAccount a
binding's subject names) that refuses anything else, and the kustomize rule that a kustomization may not load a folder that
contains it (an overlay inside ``knative/`` cannot build on ``knative/``). A kustomization's
``namespace`` applies to what it builds only: an overlay without one leaves its base's objects
where the base put them and its components' objects where they say. The rendered objects are
then validated as in ``test_knative.py``.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonpatch
import jsonpointer
import jsonschema
import pytest
import yaml
from doc_blocks import block
from kube_versions import validate_strictly
from test_deploy import selects
from test_knative import crd_schema, strict

from functions.core.job import render_job
from functions.core.launch import TrialLaunch

KNATIVE = Path(__file__).parent.parent / "knative"

KINDS = {"Kustomization": ("kustomize.config.k8s.io/v1beta1", {"namespace", "resources", "components", "patches"}),
         "Component": ("kustomize.config.k8s.io/v1alpha1", {"resources", "patches"})}
"""Each kind of kustomization the renderer takes: its apiVersion and the fields it may use."""

CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "StorageClass", "ClusterRole", "ClusterRoleBinding"}


class Unsupported(Exception):
    """A kustomization uses something this renderer does not model (kustomize might take it)."""


def render(folder: Path, kind: str = "Kustomization", components: tuple[str, ...] = ()) -> list[dict]:
    """The objects the kustomization in ``folder`` makes; ``components`` are added as a user's
    ``components:`` list would add them."""
    spec = yaml.load((folder / "kustomization.yaml").read_text(), Loader=yaml.CSafeLoader)
    api_version, allowed = KINDS[kind]
    if spec.get("kind", "Kustomization") != kind or spec.get("apiVersion") != api_version:
        raise Unsupported(f"{folder}: expected a {kind} of {api_version}")
    unknown = set(spec) - allowed - {"apiVersion", "kind"}
    if unknown:
        raise Unsupported(f"{folder}: fields {sorted(unknown)} are not modelled")
    objects = [doc for entry in spec.get("resources", []) for doc in _load(folder, entry)]
    for entry in [*spec.get("components", []), *components]:
        component = _inside(folder, entry)
        added = render(component, "Component")
        objects += added
        component_spec = yaml.load((component / "kustomization.yaml").read_text(), Loader=yaml.CSafeLoader)
        for patch in component_spec.get("patches", []):
            _patch(objects, patch)
    if kind == "Kustomization":
        for patch in spec.get("patches", []):
            _patch(objects, patch)
    accounts = _accounts_named(objects)
    if spec.get("namespace"):
        for doc in objects:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = spec["namespace"]
    for subject, account in accounts:
        if "namespace" in account["metadata"]:
            subject["namespace"] = account["metadata"]["namespace"]
    return objects


def _accounts_named(objects: list[dict]) -> list[tuple[dict, dict]]:
    """Each ServiceAccount subject of a binding with the ServiceAccount among ``objects`` it names:
    kustomize's name references, by which a subject follows its account's namespace (a subject
    naming no account there keeps its own, or none)."""
    pairs = []
    for binding in objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        for subject in binding.get("subjects", []):
            if subject.get("kind") != "ServiceAccount":
                continue
            if subject["name"] == "default":
                raise Unsupported("the namespace transformer's handling of a subject named default")
            found = [doc for doc in objects if doc["kind"] == "ServiceAccount" and doc["metadata"]["name"] ==
                     subject["name"] and subject.get("namespace", doc["metadata"].get("namespace")) ==
                     doc["metadata"].get("namespace")]
            if len(found) > 1:
                raise Unsupported(f"subject {subject} names {len(found)} ServiceAccounts")
            pairs += [(subject, account) for account in found]
    return pairs


def _inside(folder: Path, entry: str) -> Path:
    """The folder ``entry`` names, refused as kustomize refuses a root containing the current one."""
    target = (folder / entry).resolve()
    if folder.resolve().is_relative_to(target):
        raise Unsupported(f"cycle detected: candidate root {target} contains visited root {folder.resolve()}")
    return target


def _documents(text: str) -> list[dict]:
    """The non-empty YAML documents of ``text``, each call its own copy (the renderer patches
    them in place). The tests render the same few files tens of times: each text is parsed once,
    by libyaml's parser (``yaml.CSafeLoader``: the same documents as ``yaml.safe_load_all`` at a
    tenth of its CPU; other modules render overlays as they are collected, in every test process)."""
    return copy.deepcopy(_parsed(text))


@functools.cache
def _parsed(text: str) -> list[dict]:
    return [doc for doc in yaml.load_all(text, Loader=yaml.CSafeLoader) if doc]


def _load(folder: Path, entry: str) -> list[dict]:
    """A resource file inside ``folder``, or a folder anywhere holding a kustomization (a base)."""
    path = (folder / entry).resolve()
    if (path / "kustomization.yaml").is_file():
        return render(_inside(folder, entry))
    if not path.is_relative_to(folder.resolve()):
        raise Unsupported(f"file {path} is not in or below {folder.resolve()}")
    if path.is_dir():
        raise Unsupported(f"{path}: only files are modelled as resources")
    return _documents(path.read_text())


def _patch(objects: list[dict], patch: dict[str, Any]) -> None:
    """A JSON 6902 patch (``add`` and ``replace`` only) on the objects its target names, or a
    strategic merge patch that is ``$patch: delete`` alone, which removes them."""
    if set(patch) != {"target", "patch"} or not set(patch["target"]) <= {"kind", "name"}:
        raise Unsupported(f"patch {patch}: only an inline JSON 6902 patch with a kind/name target is modelled")
    matched = [doc for doc in objects if all(_field(doc, key) == value for key, value in patch["target"].items())]
    if not matched:
        raise Unsupported(f"patch target {patch['target']} matches no object")
    operations = yaml.load(patch["patch"], Loader=yaml.CSafeLoader)
    if isinstance(operations, dict):
        _delete(objects, matched, operations)
        return
    for operation in operations:
        if operation["op"] not in ("add", "replace"):
            raise Unsupported(f"JSON patch op {operation['op']!r}")
        for doc in matched:
            try:
                jsonpatch.apply_patch(doc, [operation], in_place=True)
            except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
                raise Unsupported(f"{operation['op']} of missing {operation['path']}: {exc}") from exc


def _delete(objects: list[dict], matched: list[dict], patch: dict[str, Any]) -> None:
    """kustomize's ``$patch: delete``: the object the patch names (kind and name, matching the
    target's) is left out of the output."""
    names = {(patch.get("kind"), (patch.get("metadata") or {}).get("name"))}
    if patch.get("$patch") != "delete" or set(patch) - {"$patch", "apiVersion", "kind", "metadata"} \
            or {(doc["kind"], doc["metadata"]["name"]) for doc in matched} != names:
        raise Unsupported(f"strategic merge patch {patch}: only $patch: delete of its target is modelled")
    objects[:] = [doc for doc in objects if not any(doc is found for found in matched)]


def _field(doc: dict, key: str) -> str:
    return doc["kind"] if key == "kind" else doc["metadata"][key]


def validate(objects: list[dict], tmp_path: Path) -> None:
    """Knative objects against their strict CRD schemas, the rest with kubernetes-validate."""
    core = [doc for doc in objects if "knative.dev" not in doc["apiVersion"]]
    for doc in objects:
        if "knative.dev" in doc["apiVersion"]:
            jsonschema.validate(doc, strict(crd_schema(doc["apiVersion"], doc["kind"])))
    files = []
    for number, doc in enumerate(core):
        files.append(tmp_path / f"{number}.yaml")
        files[-1].write_text(yaml.safe_dump(doc))
    validate_strictly(list(map(str, files)))


def claim(objects: list[dict]) -> dict:
    return next(doc for doc in objects if doc["kind"] == "PersistentVolumeClaim")


@pytest.mark.slow
def test_the_base_uses_the_clusters_default_storage_class(tmp_path):
    objects = render(KNATIVE)
    validate(objects, tmp_path)
    assert "storageClassName" not in claim(objects)["spec"]
    assert not [doc for doc in objects if doc["kind"] == "StorageClass"]
    assert {doc["metadata"].get("namespace") for doc in objects if doc["kind"] not in CLUSTER_SCOPED} == {"katuna"}


@pytest.mark.slow
def test_the_eks_component_gives_the_claim_a_gp3_class_of_the_ebs_csi_driver(tmp_path):
    objects = render(KNATIVE, components=("eks",))
    validate(objects, tmp_path)
    [storage_class] = [doc for doc in objects if doc["kind"] == "StorageClass"]
    assert claim(objects)["spec"]["storageClassName"] == storage_class["metadata"]["name"]
    assert storage_class["provisioner"] == "ebs.csi.aws.com" and storage_class["parameters"]["type"] == "gp3"
    assert storage_class["volumeBindingMode"] == "WaitForFirstConsumer"
    assert "namespace" not in storage_class["metadata"]


@pytest.mark.slow
def test_the_base_with_every_component_matches_the_crd_schemas_and_kubernetes_validate(tmp_path):
    """Every object ``kubectl apply -k`` would send with all the components listed (the
    trial-kinds' Triggers and patched sources, katib-api's, oidc's EventPolicies): the Knative
    kinds against their strict CRD schemas, the rest with kubernetes-validate."""
    validate(render(KNATIVE, components=COMPONENTS), tmp_path)


def _reaches(policy: dict, address: str) -> bool:
    """Whether the egress rules of ``policy`` let a selected pod reach ``address`` outside the
    cluster's pods (a peer's ipBlock holds it and none of its exceptions does)."""
    ip = ipaddress.ip_address(address)
    blocks = [peer["ipBlock"] for rule in policy["spec"]["egress"] for peer in rule["to"] if "ipBlock" in peer]
    return any(ip.version == ipaddress.ip_network(b["cidr"]).version and ip in ipaddress.ip_network(b["cidr"])
               and not any(ip in ipaddress.ip_network(e) for e in b.get("except", [])
                           if ipaddress.ip_network(e).version == ip.version) for b in blocks)


def test_the_eks_component_keeps_trial_pods_from_the_instance_metadata_service_and_nothing_else():
    objects = render(KNATIVE, components=("eks",))
    [policy] = [doc for doc in objects if doc["kind"] == "NetworkPolicy" and doc["metadata"]["name"] != "katuna"]
    assert (policy["metadata"]["namespace"], policy["spec"]["policyTypes"]) == ("katuna", ["Egress"])
    launch = TrialLaunch("digits", "u1", 3, 1, "digits-3", ["python", "t.py"], {}, ".", None, image="python:3.12")
    trial_pod = render_job(launch)["spec"]["template"]["metadata"]["labels"]
    assert selects(policy["spec"]["podSelector"], trial_pod)
    service = render(KNATIVE)
    service_pod = next(d for d in service if d["kind"] == "Service" and "serving" in d["apiVersion"])
    assert not selects(policy["spec"]["podSelector"], {**service_pod["spec"]["template"].get("metadata", {}).get(
        "labels", {}), "serving.knative.dev/service": "katuna"})
    assert not any(_reaches(policy, ip) for ip in ("169.254.169.254", "fd00:ec2::254"))
    assert all(_reaches(policy, ip) for ip in ("169.254.170.23", "fd00:ec2::23", "10.100.0.10", "52.94.133.131",
                                              "2600:1f18:4b2:b300::1"))
    assert {"namespaceSelector": {}} in [peer for rule in policy["spec"]["egress"] for peer in rule["to"]], \
        "pods in every namespace (DNS, the broker, a distributed trial's other pods), whatever the plugin's ipBlocks"
    assert not [doc for doc in render(KNATIVE) if doc["kind"] == "NetworkPolicy" and doc["metadata"]["name"] != "katuna"]


def test_an_overlay_inside_knative_could_not_build_on_it(tmp_path):
    """Why the storage class is a component: kustomize refuses a base that contains the overlay."""
    with pytest.raises(Unsupported, match="cycle detected"):
        _inside(KNATIVE / "eks", "..")


def test_the_renderer_refuses_what_it_does_not_model(tmp_path):
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namePrefix": "x-"}))
    with pytest.raises(Unsupported, match="namePrefix"):
        render(tmp_path)
    objects = [{"kind": "PersistentVolumeClaim", "metadata": {"name": "katuna-data"}, "spec": {}}]
    with pytest.raises(Unsupported, match="matches no object"):
        _patch(objects, {"target": {"kind": "PersistentVolumeClaim", "name": "katuna-dta"}, "patch": "[]"})


def test_the_knative_serving_flags_stay_out_of_the_katuna_namespace():
    """The feature flags live in Knative's namespace, which the kustomization's namespace would rewrite."""
    listed = yaml.safe_load((KNATIVE / "kustomization.yaml").read_text())["resources"]
    assert not [entry for entry in listed if "knative-serving" in entry]
    features = yaml.safe_load((KNATIVE / "knative-serving" / "config-features.yaml").read_text())
    assert (features["kind"], features["metadata"]) == ("ConfigMap", {"name": "config-features",
                                                                       "namespace": "knative-serving"})


@pytest.mark.slow
def test_the_documented_storage_class_patch_sets_the_claims_class(tmp_path):
    [patch] = yaml.safe_load(block("docs/knative.md", "Storage", "yaml"))["patches"]
    objects = render(KNATIVE)
    _patch(objects, patch)
    validate(objects, tmp_path)
    assert claim(objects)["spec"]["storageClassName"] == "premium-rwo"


def _kubectl(page: str, heading: str) -> list[list[str]]:
    """The ``kubectl`` commands of the ``sh`` block under ``heading``, continuation lines joined."""
    text = block(page, heading, "sh").replace("\\\n", " ")
    return [shlex.split(line) for line in text.splitlines() if line.startswith("kubectl ")]


@pytest.mark.slow
def test_the_documented_namespaced_jobs_source_reads_trial_namespaces_only(tmp_path):
    """docs/katib.md's overlay and commands for the katib-api component: the source's account may
    get, list and watch Jobs in each namespace its selector takes (as the ApiServerSource
    controller checks before it runs), and reads none elsewhere; the objects stay valid."""
    from kube_standin.rbac import Authorizer, Request

    heading = "Watching only the namespaces trials run in"
    overlay = yaml.safe_load(block("docs/katib.md", heading, "yaml"))
    assert (overlay["resources"], overlay["components"]) == (["../katuna/knative"], ["../katuna/knative/katib-api"])
    objects = render(KNATIVE, components=("katib-api",))
    for patch in overlay["patches"]:
        _patch(objects, patch)
    validate(objects, tmp_path)
    assert not [doc for doc in objects if doc["kind"] == "ClusterRoleBinding"
                and doc["metadata"]["name"] == "katuna-jobs-source"]
    authorizer = Authorizer([doc for doc in objects if doc["kind"] in ("Role", "ClusterRole", "RoleBinding",
                                                                       "ClusterRoleBinding")])
    labelled = set()
    for command in _kubectl("docs/katib.md", heading):
        if command[1:3] == ["label", "namespace"]:
            assert command[4] == "katuna.dev/trials=true"
            labelled.add(command[3])
        else:
            assert command[1:3] == ["create", "rolebinding"]
            options = dict(option.removeprefix("--").split("=", 1) for option in command[6:])
            authorizer.bind(options["clusterrole"], command[5], *options["serviceaccount"].split(":"))
    [source] = [doc for doc in objects if doc["kind"] == "ApiServerSource" and doc["metadata"]["name"] == "katuna-jobs"]
    assert source["spec"]["namespaceSelector"] == {"matchLabels": {"katuna.dev/trials": "true"}}
    assert labelled == {"katuna", "team"}
    account = f"system:serviceaccount:katuna:{source['spec']['serviceAccountName']}"

    def reads(namespace: str) -> list[str]:
        return [verb for verb in ("get", "list", "watch")
                if authorizer.allows(Request(account, verb, "batch", "jobs", namespace=namespace))]

    assert [reads(namespace) for namespace in sorted(labelled)] == [["get", "list", "watch"]] * 2
    assert reads("kube-system") == [] and reads("other") == []
    assert not authorizer.allows(Request(account, "list", "batch", "jobs")), "no cluster-wide read"


COMPONENTS = ("eks", "oidc", "katib-api", *(f"trial-kinds/{kind.name}" for kind in sorted((KNATIVE / "trial-kinds").iterdir())))
"""Every component, in the order a user might list them."""

NAMESPACE = "katuna"


def _checkout_beside(tmp_path: Path) -> Path:
    """The repository checked out at ``tmp_path/katuna``, for an overlay of one's own beside it."""
    (tmp_path / "katuna").symlink_to(KNATIVE.parent, target_is_directory=True)
    (tmp_path / "deploy").mkdir()
    return tmp_path / "deploy"


def _misplaced(objects: list[dict]) -> list[str]:
    """Namespaced objects outside katuna's namespace, and ServiceAccount subjects that name no
    namespace (the API server refuses a ClusterRoleBinding with one) or another."""
    return [f"{doc['kind']} {doc['metadata']['name']} in {doc['metadata'].get('namespace')}" for doc in objects
            if doc["kind"] not in CLUSTER_SCOPED and doc["metadata"].get("namespace") != NAMESPACE] + \
        [f"{doc['kind']} {doc['metadata']['name']} subject {subject}" for doc in objects
         if doc["kind"] in ("RoleBinding", "ClusterRoleBinding") for subject in doc["subjects"]
         if subject["kind"] == "ServiceAccount" and subject.get("namespace") != NAMESPACE]


def test_components_listed_by_an_overlay_of_ones_own_land_in_katunas_namespace(tmp_path):
    """``components:`` of an overlay beside the checkout, which sets no namespace: the overlay's
    namespace (none) is all that applies to the components' objects, so each must name its own.
    The result is what listing them in ``knative/kustomization.yaml`` makes."""
    overlay = _checkout_beside(tmp_path)
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": ["../katuna/knative"], "components": [f"../katuna/knative/{name}" for name in COMPONENTS]}))
    objects = render(overlay)
    assert _misplaced(objects) == []
    assert objects == render(KNATIVE, components=COMPONENTS)
    accounts = {doc["metadata"]["name"] for doc in objects if doc["kind"] == "ServiceAccount"}
    assert {s["name"] for doc in objects if doc["kind"] in ("RoleBinding", "ClusterRoleBinding")
            for s in doc["subjects"]} <= accounts, "every subject is an account the manifests make"


def test_the_renderer_applies_an_overlays_namespace_to_what_it_builds_only(tmp_path):
    """As kustomize: a base's namespace stays on the base's objects, an object of a component
    without one stays without, and a subject follows the namespace of the account it names."""
    for name, kind in (("base", "Kustomization"), ("component", "Component")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "kustomization.yaml").write_text(yaml.safe_dump({
            "apiVersion": KINDS[kind][0], "kind": kind, "resources": ["objects.yaml"],
            **({"namespace": "there"} if kind == "Kustomization" else {})}))
    (tmp_path / "base" / "objects.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "a"}}))
    (tmp_path / "component" / "objects.yaml").write_text(yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "b"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "c"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "r"},
         "subjects": [{"kind": "ServiceAccount", "name": "a"}, {"kind": "ServiceAccount", "name": "b"}]}]))
    (tmp_path / "overlay").mkdir()
    (tmp_path / "overlay" / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": KINDS["Kustomization"][0], "kind": "Kustomization", "resources": ["../base"],
        "components": ["../component"]}))
    account_a, account_b, binding = render(tmp_path / "overlay")
    assert (account_a["metadata"]["namespace"], "namespace" in account_b["metadata"]) == ("there", False)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "a", "namespace": "there"},
                                   {"kind": "ServiceAccount", "name": "b"}]
    with pytest.raises(Unsupported, match="not in or below"):
        (tmp_path / "overlay" / "kustomization.yaml").write_text(yaml.safe_dump({
            "apiVersion": KINDS["Kustomization"][0], "kind": "Kustomization", "resources": ["../base/objects.yaml"]}))
        render(tmp_path / "overlay")


def test_the_documented_overlay_of_ones_own_puts_its_components_in_katunas_namespace(tmp_path):
    overlay = _checkout_beside(tmp_path)
    text = block("docs/knative.md", "An overlay of your own", "yaml")
    (overlay / "kustomization.yaml").write_text(text)
    spec = yaml.safe_load(text)
    assert "namespace" not in spec
    objects = render(overlay)
    assert _misplaced(objects) == []
    listed = tuple(entry.removeprefix("../katuna/knative/") for entry in spec["components"])
    assert objects == render(KNATIVE, components=listed)
    assert {"NetworkPolicy", "EventPolicy", "SinkBinding"} <= {doc["kind"] for doc in objects}


@pytest.mark.parametrize("components", [(), ("katib-api",), COMPONENTS], ids=["base", "katib-api", "every-component"])
def test_the_sources_accounts_record_events_in_their_sources_namespace_only(components):
    """An ApiServerSource's adapter records Events about its own source; its account may create
    and patch them there (katuna's namespace), and nowhere else, even where katib-api has it
    watch every namespace."""
    from kube_standin.rbac import RBAC_KINDS, Authorizer, Request

    objects = render(KNATIVE, components=components)
    authorizer = Authorizer([doc for doc in objects if doc["kind"] in RBAC_KINDS])
    sources = [doc for doc in objects if doc["kind"] == "ApiServerSource"]
    assert len(sources) == (3 if "katib-api" in components else 2)
    for source in sources:
        home, account = source["metadata"]["namespace"], source["spec"]["serviceAccountName"]
        user = f"system:serviceaccount:{home}:{account}"
        for verb in ("create", "patch"):
            assert authorizer.allows(Request(user, verb, "", "events", namespace=home)), (account, verb)
            assert not [where for where in ("kube-system", "default", "team-a", "")
                        if authorizer.allows(Request(user, verb, "", "events", namespace=where))], (account, verb)


IDENTITIES = {"IAM on GKE": "iam.gke.io/gcp-service-account", "IAM on EKS": "eks.amazonaws.com/role-arn"}
"""The cloud identity each page section gives the service's account, by its annotation."""


def _overlay(tmp_path: Path, **fields: Any) -> Path:
    """An overlay of one's own beside the checkout, building on ``knative/``, with ``fields``."""
    overlay = _checkout_beside(tmp_path)
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": ["../katuna/knative"], **fields}))
    return overlay


@pytest.mark.parametrize("heading", sorted(IDENTITIES))
def test_the_documented_cloud_identity_is_a_patch_of_the_kustomization_that_owns_the_account(tmp_path, heading):
    """``kubectl apply -k`` owns the ServiceAccount ``katuna``: an annotation a separate ``kubectl
    apply -f`` added is deleted by its next run (the three-way merge drops what the last applied
    configuration had and the new one lacks), so the docs give it as the kustomization's patch."""
    patches = yaml.safe_load(block("docs/kubernetes.md", heading, "yaml"))["patches"]
    objects = render(_overlay(tmp_path, patches=patches))
    [account] = [doc for doc in objects if doc["kind"] == "ServiceAccount" and doc["metadata"]["name"] == "katuna"]
    assert set(account["metadata"]["annotations"]) == {IDENTITIES[heading]}
    assert account["metadata"]["namespace"] == NAMESPACE
    assert [doc for doc in objects if doc is not account] == [doc for doc in render(KNATIVE) if not (
        doc["kind"] == "ServiceAccount" and doc["metadata"]["name"] == "katuna")]


KUBECTL = shutil.which("kubectl")


def _kubectl_kustomize(folder: Path) -> subprocess.CompletedProcess:
    """``kubectl kustomize`` (kustomize itself, built into kubectl) run on ``folder``, no cluster named."""
    assert KUBECTL is not None
    return subprocess.run([KUBECTL, "kustomize", str(folder)], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "KUBECONFIG": "/dev/null", "HOME": str(folder.parent)})


def kustomize(folder: Path) -> list[dict]:
    """What kustomize makes of ``folder``."""
    built = _kubectl_kustomize(folder)
    assert built.returncode == 0, built.stderr
    return _documents(built.stdout)


def _by_name(objects: list[dict]) -> dict[tuple[str, str | None, str], dict]:
    """The objects by kind, namespace and name (kustomize sorts them; the renderer keeps file order)."""
    keyed = {(doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"]): doc for doc in objects}
    assert len(keyed) == len(objects)
    return keyed


def _documented_overlays() -> dict[str, dict[str, Any]]:
    """Every overlay of one's own the docs give, by where."""
    katib = yaml.safe_load(block("docs/katib.md", "Watching only the namespaces trials run in", "yaml"))
    own = yaml.safe_load(block("docs/knative.md", "An overlay of your own", "yaml"))
    storage = yaml.safe_load(block("docs/knative.md", "Storage", "yaml"))
    identities = {heading: yaml.safe_load(block("docs/kubernetes.md", heading, "yaml")) for heading in IDENTITIES}
    overlays = {"knative.md: An overlay of your own": own, "katib.md: namespaced jobs source": katib,
                "knative.md: Storage": {"resources": ["../katuna/knative"], **storage},
                "every component": {"resources": ["../katuna/knative"],
                                    "components": [f"../katuna/knative/{name}" for name in COMPONENTS]},
                **{f"kubernetes.md: {heading}": {"resources": ["../katuna/knative"], **identities[heading]}
                   for heading in IDENTITIES}}
    return {name: {key: value for key, value in spec.items() if key not in ("apiVersion", "kind")}
            for name, spec in overlays.items()}


@pytest.mark.skipif(KUBECTL is None, reason="kubectl (with its built-in kustomize) is not installed")
@pytest.mark.parametrize("components", [(), *((name,) for name in COMPONENTS)], ids=["base", *COMPONENTS])
def test_the_renderer_makes_what_kustomize_makes_of_knative_with_a_component_listed(tmp_path, components):
    """The renderer stands in for kustomize where kubectl is missing: where it is installed, both
    build ``knative/``, with each component added to its ``components:`` as the docs say, alike."""
    shutil.copytree(KNATIVE, tmp_path / "knative")
    kustomization = tmp_path / "knative" / "kustomization.yaml"
    spec = yaml.safe_load(kustomization.read_text())
    kustomization.write_text(yaml.safe_dump({**spec, "components": list(components)} if components else spec))
    assert _by_name(kustomize(tmp_path / "knative")) == _by_name(render(tmp_path / "knative"))


@pytest.mark.skipif(KUBECTL is None, reason="kubectl (with its built-in kustomize) is not installed")
@pytest.mark.parametrize("name", sorted(_documented_overlays()))
def test_the_renderer_makes_what_kustomize_makes_of_each_documented_overlay(tmp_path, name):
    overlay = _overlay(tmp_path, **_documented_overlays()[name])
    assert _by_name(kustomize(overlay)) == _by_name(render(overlay))


@pytest.mark.skipif(KUBECTL is None, reason="kubectl (with its built-in kustomize) is not installed")
def test_kustomize_refuses_an_overlay_inside_knative_as_the_renderer_does(tmp_path):
    shutil.copytree(KNATIVE, tmp_path / "knative")
    (tmp_path / "knative" / "mine").mkdir()
    (tmp_path / "knative" / "mine" / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": [".."]}))
    built = _kubectl_kustomize(tmp_path / "knative" / "mine")
    assert built.returncode != 0 and "cycle detected" in built.stderr
    with pytest.raises(Unsupported, match="cycle detected"):
        render(tmp_path / "knative" / "mine")
