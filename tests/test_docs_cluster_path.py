"""docs/knative.md's cluster path, followed as a new user follows it: the image built for the
nodes' processors, the API reached through the forwarded port with the token the install put in
its Secret (the page's own commands, run with the real kubectl offline and a real ``katuna
serve``), and the uninstall, in an order that leaves nothing running or billed."""

from __future__ import annotations

import base64
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from doc_blocks import ROOT, block, blocks
from http_helpers import Service
from kube_versions import VERSIONS, validate_strictly

from functions.core.eks_ami import ARM, ami_type

PAGE = "docs/knative.md"
KNATIVE = ROOT / "knative"
PAGES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")) + ["README.md", "CONTRIBUTING.md"]
NAMESPACE = yaml.safe_load((KNATIVE / "kustomization.yaml").read_text())["namespace"]


def install() -> list[str]:
    """The Install block's commands, one a line (continued lines joined), comments left out."""
    text = block(PAGE, "Install", "sh").replace("\\\n", " ")
    return [line.split("   #")[0].rstrip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def section(heading: str) -> str:
    """The prose and blocks under ``## heading`` of the page, up to the next heading of its level."""
    return (ROOT / PAGE).read_text().split(f"\n## {heading}\n")[1].split("\n## ")[0]


def service_secret() -> tuple[str, str]:
    """The Secret and key ``knative/service.yaml`` passes to the service as its API token."""
    service = yaml.safe_load((KNATIVE / "service.yaml").read_text())
    [container] = service["spec"]["template"]["spec"]["containers"]
    [token] = [env for env in container["env"] if env["name"] == "KATUNA_API_TOKEN"]
    ref = token["valueFrom"]["secretKeyRef"]
    return ref["name"], ref["key"]


# the image


def test_every_image_build_names_the_processors_of_the_nodes_it_runs_on():
    """docker builds for the machine it runs on: on an Apple-silicon Mac an arm64 image, which
    x86 nodes cannot run (``exec format error``), so every build a page or Dockerfile shows
    names its platform."""
    shown = [line for page in PAGES for b in blocks(page) if b.language == "sh"
             for line in b.text.splitlines() if re.match(r"docker (buildx )?build ", line)]
    shown += [line.lstrip("# ") for path in (KNATIVE / "Dockerfile", ROOT / "examples/trial-image/Dockerfile")
              for line in path.read_text().splitlines() if "docker build " in line]
    assert len(shown) >= 3
    for line in shown:
        assert re.search(r"--platform linux/(amd64|arm64)\b", line), line


def test_the_install_says_which_image_arm_nodes_need():
    """katuna gives a study's EKS pool of Graviton types an Arm AMI: the katuna image its trials
    run must then be built for arm64, as the page says, with a build of both platforms."""
    assert ami_type("m7g.xlarge") == ARM
    prose = section("Install").split("### ")[0]
    assert "`m7g`" in prose and "`linux/arm64`" in prose
    both = re.search(r"`(docker buildx build --platform linux/amd64,linux/arm64 [^`]+)`", prose)
    assert both and both.group(1).endswith(" --push .")
    single = next(line for line in install() if line.startswith("docker build "))
    def option(words: list[str], name: str) -> str:
        return words[words.index(name) + 1]

    assert [option(shlex.split(both.group(1)), name) for name in ("-f", "-t")] == \
        [option(shlex.split(single), name) for name in ("-f", "-t")], "the same Dockerfile and tag"


# the API through the forwarded port


def test_the_install_reads_back_the_token_its_secret_holds_from_the_secret_the_service_reads():
    lines = install()
    create = next(line for line in lines if " create secret generic " in line)
    read = next(line for line in lines if " get secret " in line)
    name, key = service_secret()
    assert re.search(rf"kubectl -n {NAMESPACE} create secret generic {name} --from-literal={key}=", create)
    assert re.search(rf"kubectl -n {NAMESPACE} get secret {name} -o jsonpath='\{{\.data\.{key}\}}' \| base64 -d", read)
    forward = next(index for index, line in enumerate(lines) if " port-forward " in line)
    assert lines[forward].endswith(" &"), "the forward runs on while the next commands use it"
    uses = [index for index, line in enumerate(lines) if line.startswith("curl ")]
    assert uses and min(uses) > forward
    assert all('-H "Authorization: Bearer $KATUNA_API_TOKEN"' in lines[index] for index in uses)


@pytest.mark.skipif(not all(shutil.which(tool) for tool in ("kubectl", "curl", "openssl", "base64")),
                    reason="the page's commands run kubectl, curl, openssl and base64")
def test_the_token_the_install_creates_is_read_back_and_opens_the_api_through_the_forwarded_port(tmp_path: Path):
    """The page's commands as written: its ``create secret`` made offline by the real kubectl
    (``--dry-run=client``), its read of the token evaluated by kubectl's own jsonpath on that
    Secret and decoded by its pipeline, and its curl against a ``katuna serve`` holding the
    token, as the service's pod does, at the forwarded port."""
    lines = install()
    kubectl = {"KUBECONFIG": str(tmp_path / "no-cluster")}
    made = subprocess.run(["bash", "-c", next(line for line in lines if " create secret " in line)
                           + " --dry-run=client -o json"], capture_output=True, text=True, env=_env(kubectl), check=True)
    secret = json.loads(made.stdout)
    (tmp_path / "secret.json").write_text(made.stdout)
    _, key = service_secret()
    token = base64.b64decode(secret["data"][key]).decode()
    assert re.fullmatch(r"[0-9a-f]{64}", token), "openssl's 32 random bytes, in hex"
    read = next(line for line in lines if " get secret " in line)
    local = re.sub(r"kubectl -n \S+ get secret \S+ ",
                   f"kubectl patch --local -f {tmp_path / 'secret.json'} --type merge -p '{{}}' ", read)
    curl = next(line for line in lines if line.startswith("curl "))
    service = Service(tmp_path, workers=1, KATUNA_API_TOKEN=token)
    try:
        script = f"{local}\n{curl.replace('localhost:8080', f'localhost:{service.port}')} --fail -s\n"
        run = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=_env(kubectl), timeout=60)
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout) == []
        bare = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                               f"localhost:{service.port}/studies"], capture_output=True, text=True, timeout=60)
        assert bare.stdout == "401", "the token is what opened it"
    finally:
        service.close()


def _env(extra: dict[str, str]) -> dict[str, str]:
    import os

    return {**os.environ, **extra}


# the uninstall


def uninstall() -> list[str]:
    return [line.split("   #")[0].strip() for line in block(PAGE, "Uninstall", "sh").replace("\\\n", " ").splitlines()
            if line.strip() and not line.startswith("#")]


def test_the_uninstall_stops_every_study_then_gives_back_the_pools_before_deleting_the_service():
    """Deleting ``knative/`` while studies run would leave the node pools katuna made for them
    (nothing is left to delete them): the studies go first, then the pools they used are waited
    for, then a pool the provisioning script made, and the service last."""
    lines = uninstall()
    crds = [doc for doc in yaml.safe_load_all((KNATIVE / "crds.yaml").read_text()) if doc]
    kinds = ",".join(sorted(f"{crd['spec']['names']['plural']}.{crd['spec']['group']}" for crd in crds))
    studies = next(index for index, line in enumerate(lines) if line.startswith("kubectl ") and " delete " in line
                   and "--all" in line)
    words = lines[studies].split()
    assert words[:4] == ["kubectl", "-n", NAMESPACE, "delete"]
    assert ",".join(sorted(words[4].split(","))) == kinds
    wait = next(index for index, line in enumerate(lines) if line.startswith("curl "))
    assert "/studies" in lines[wait] and '-H "Authorization: Bearer $KATUNA_API_TOKEN"' in lines[wait]
    assert "`released`" in section("Uninstall") and "`nodePool`" in section("Uninstall")
    pools = [index for index, line in enumerate(lines) if line.startswith("python -m infra.provision ")]
    assert pools and all(lines[index].split()[4] == "down" for index in pools)
    last = lines[-1]
    assert last == "kubectl delete -k knative/"
    assert studies < wait < min(pools) < len(lines) - 1


def test_the_uninstalls_pool_commands_use_flags_the_script_has():
    from infra.provision import main as provision

    for line in uninstall():
        if line.startswith("python -m infra.provision "):
            words = line.split()
            result = CliRunner().invoke(provision, [*words[3:5], "--help"])
            assert result.exit_code == 0, result.output
            for option in re.findall(r"--[a-z-]+", line):
                assert option in result.output, f"{option} of {' '.join(words[3:5])}"


def test_the_uninstall_says_what_the_volume_of_each_storage_class_leaves_behind():
    """The EKS component's class keeps its volumes (``Retain``): deleting the claim leaves the
    PersistentVolume and its EBS volume, billed, until deleted by hand; the cluster's default
    class (GKE's ``standard-rwo``) deletes the database with the claim, so it is backed up first."""
    storage = yaml.safe_load((KNATIVE / "eks" / "storageclass.yaml").read_text())
    text = " ".join(section("Uninstall").split())
    if storage["reclaimPolicy"] == "Retain":
        assert f"`{storage['metadata']['name']}`" in text and "`reclaimPolicy: Retain`" in text
        assert "kubectl get pv" in text
    assert "[back it up](#downgrades)" in text


def _built_in(group: str) -> bool:
    """Whether an apiVersion's group is Kubernetes' own (the core group, ``*.k8s.io``), not
    kustomize's."""
    return "." not in group or (group.endswith(".k8s.io") and group != "kustomize.config.k8s.io")


def _documented_objects() -> list[tuple[str, dict]]:
    """Every Kubernetes object of a built-in kind that a page gives as YAML for the reader to apply
    (a claim, a ClusterRole and its binding), by where it is; kustomizations, study resources and
    other projects' kinds (Prometheus Operator's PodMonitor) are checked elsewhere or not ours."""
    found = []
    for page in PAGES:
        for number, code in enumerate(b for b in blocks(page) if b.language == "yaml"):
            for doc in yaml.safe_load_all(code.text):
                group = str(doc.get("apiVersion", "")).rpartition("/")[0] if isinstance(doc, dict) else ""
                if isinstance(doc, dict) and "kind" in doc and _built_in(group):
                    found.append((f"{page} ({code.heading}, block {number})", doc))
    return found


def test_every_built_in_object_the_pages_give_passes_kubernetes_validate_strictly(tmp_path: Path):
    """The objects the pages tell the reader to apply are what the API server takes, as the
    manifests are (``tests/test_knative.py``): a misspelt field or a wrong type fails here."""
    documented = _documented_objects()
    assert {doc["kind"] for _, doc in documented} >= {"PersistentVolumeClaim", "ClusterRole", "ClusterRoleBinding"}
    files = []
    for number, (_, doc) in enumerate(documented):
        files.append(tmp_path / f"{number}.yaml")
        files[-1].write_text(yaml.safe_dump(doc))
    outputs = validate_strictly(list(map(str, files)))
    assert [output.count("passed") for output in outputs] == [len(documented)] * len(VERSIONS), \
        "\n".join(where for where, _ in documented)
