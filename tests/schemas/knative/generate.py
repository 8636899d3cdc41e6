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
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))  # run as a script: its shared part is beside its folder

from crd_schema import served_versions, structure  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", required=True, help="the upstream release and commit the CRDs come from")
    parser.add_argument("crds", nargs="+", type=Path, help="CRD YAML files")
    args = parser.parse_args()
    for path, crd, version in served_versions(args.crds):
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        name = f"{group}_{version['name']}_{kind}.json".lower()
        content = {"apiVersion": f"{group}/{version['name']}", "kind": kind, "release": args.release,
                   "source": path.name, "schema": structure(version["schema"]["openAPIV3Schema"])}
        (HERE / name).write_text(json.dumps(content, indent=1, sort_keys=True) + "\n")
        print(name)


if __name__ == "__main__":
    main()
