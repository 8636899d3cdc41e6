"""Make the offline schemas the loopback Kubernetes stand-in checks operators' workloads against
(:mod:`kube_standin.operator_schemas`), as the API server checks a custom resource against its
CustomResourceDefinition: fields pruned or refused, values validated.

Reads operators' CRDs (YAML files from their repositories), keeps each served version's
``openAPIV3Schema`` with every ``description`` stripped, and writes one JSON file per kind and
version beside this script, recording where it came from. The pod templates a release's CRDs
embed (the core ``PodTemplateSpec`` of the ``k8s.io/api`` it builds with, the same in each of
its kinds) are kept once, in ``podtemplate_<shared>.json``, and each place holding one says
``{"$ref": "podtemplate_<shared>.json"}``. Run it again when a newer release is targeted::

    python tests/schemas/operators/generate.py --shared training-operator \\
        --release "kubeflow/training-operator v1.9.0 (k8s.io/api v0.31.3)" CRD.yaml [CRD.yaml ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))  # run as a script: its shared part is beside its folder

from crd_schema import served_versions, structure  # noqa: E402


def is_pod_template(node: dict[str, Any]) -> bool:
    """Whether ``node`` is the schema of a ``PodTemplateSpec`` (its ``metadata`` and a pod ``spec``)."""
    properties = node.get("properties") or {}
    return "metadata" in properties and "containers" in ((properties.get("spec") or {}).get("properties") or {})


def shared_out(node: Any, ref: str, found: list[Any]) -> Any:
    """``node`` with each pod template replaced by ``{"$ref": ref}``, the templates put in ``found``."""
    if isinstance(node, dict):
        if is_pod_template(node):
            found.append(node)
            return {"$ref": ref}
        return {key: shared_out(value, ref, found) for key, value in node.items()}
    if isinstance(node, list):
        return [shared_out(value, ref, found) for value in node]
    return node


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", required=True, help="the upstream release (and k8s.io/api) the CRDs come from")
    parser.add_argument("--shared", required=True, help="the name of the release's shared pod template file")
    parser.add_argument("crds", nargs="+", type=Path, help="CRD YAML files")
    args = parser.parse_args()
    ref, templates = f"podtemplate_{args.shared}.json", []
    for path, crd, version in served_versions(args.crds):
        group, names = crd["spec"]["group"], crd["spec"]["names"]
        name = f"{group}_{version['name']}_{names['kind']}.json".lower()
        schema = shared_out(structure(version["schema"]["openAPIV3Schema"]), ref, templates)
        content = {"apiVersion": f"{group}/{version['name']}", "kind": names["kind"], "plural": names["plural"],
                   "release": args.release, "source": path.name, "schema": schema}
        (HERE / name).write_text(json.dumps(content, indent=1, sort_keys=True) + "\n")
        print(name)
    if templates:
        if any(template != templates[0] for template in templates):
            raise SystemExit(f"the pod templates of {args.release} differ; give each CRD its own --shared name")
        (HERE / ref).write_text(json.dumps({"release": args.release, "schema": templates[0]}, indent=1,
                                           sort_keys=True) + "\n")
        print(ref)


if __name__ == "__main__":
    main()
