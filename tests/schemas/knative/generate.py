"""Make the offline schemas that ``tests/test_knative.py`` validates the manifests against.

Reads Knative's CustomResourceDefinitions (YAML files from the Knative Serving and Eventing
repositories), keeps each served version's ``openAPIV3Schema`` with every ``description``
stripped, and writes one JSON file per resource beside this script, recording where it came
from. Run it again when a newer Knative release is targeted::

    python tests/schemas/knative/generate.py --release "serving 1.23 (98e5ef90)" CRD.yaml [CRD.yaml ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent


def structure(node: Any) -> Any:
    """The schema without its prose: ``description`` keys dropped at every depth."""
    if isinstance(node, dict):
        return {key: structure(value) for key, value in node.items() if key != "description"}
    if isinstance(node, list):
        return [structure(value) for value in node]
    return node


def schemas(crd: dict[str, Any], release: str, source: str) -> list[tuple[str, dict[str, Any]]]:
    """(file name, content) for every version the CRD serves."""
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    found = []
    for version in crd["spec"]["versions"]:
        if not version.get("served", True):
            continue
        api_version = f"{group}/{version['name']}"
        found.append((f"{group}_{version['name']}_{kind}.json".lower(), {
            "apiVersion": api_version, "kind": kind, "release": release, "source": source,
            "schema": structure(version["schema"]["openAPIV3Schema"]),
        }))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", required=True, help="the upstream release and commit the CRDs come from")
    parser.add_argument("crds", nargs="+", type=Path, help="CRD YAML files")
    args = parser.parse_args()
    for path in args.crds:
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            for name, content in schemas(doc, args.release, path.name):
                (HERE / name).write_text(json.dumps(content, indent=1, sort_keys=True) + "\n")
                print(name)


if __name__ == "__main__":
    main()
