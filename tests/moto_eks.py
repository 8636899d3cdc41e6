"""moto's EKS, taught the ``DescribeUpdate`` call that EKS has and moto 5 lacks.

moto answers ``update_nodegroup_config`` with an Update (``Successful`` at once: it applies the
change at once) but keeps none, so katuna's check of that Update would reach a call moto does
not route. :func:`teach` makes moto keep every node group Update it answers with and serve
``DescribeUpdate`` for it as EKS does: the Update as answered, ``ResourceNotFoundException``
for an id it never gave or given for another group. In this process that is for ``mock_aws``;
``python tests/moto_eks.py -p PORT`` runs moto's server with the same.

What moto cannot show (an Update in progress, or failed with its errors) is tested with
botocore's Stubber (tests/test_nodepools_eks.py).
"""

from __future__ import annotations

import sys
from typing import Any

from moto.core.responses import ActionResult
from moto.eks import urls
from moto.eks.exceptions import ResourceNotFoundException
from moto.eks.models import EKSBackend
from moto.eks.responses import EKSResponse

UPDATE_PATH = "{0}/clusters/(?P<name>[^/]+)/updates/(?P<updateId>[^/]+)$"


def _kept(backend: EKSBackend) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The backend's node group Updates by cluster, group and id (emptied with the backend)."""
    return backend.__dict__.setdefault("katuna_updates", {})


def _update_nodegroup_config(answer: Any) -> Any:
    def update_nodegroup_config(self: EKSBackend, cluster_name: str, nodegroup_name: str,
                                **changes: Any) -> dict[str, Any]:
        update = answer(self, cluster_name, nodegroup_name, **changes)
        _kept(self)[(cluster_name, nodegroup_name, update["id"])] = update
        return update

    return update_nodegroup_config


def describe_update(self: EKSBackend, cluster_name: str, update_id: str, nodegroup_name: str | None) -> dict:
    """The Update as moto answered it, as EKS's ``DescribeUpdate`` gives it."""
    update = _kept(self).get((cluster_name, nodegroup_name or "", update_id))
    if update is None:
        raise ResourceNotFoundException(clusterName=cluster_name, nodegroupName=nodegroup_name,
                                        fargateProfileName=None, addonName=None,
                                        message=f"No update found for ID: {update_id}")
    return update


def _describe_update(self: EKSResponse) -> ActionResult:
    update = self.eks_backend.describe_update(self._get_param("name"), self._get_param("updateId"),
                                              self._get_param("nodegroupName"))
    return ActionResult({"update": update})


def teach() -> None:
    """Teach moto's EKS ``DescribeUpdate`` in this process (once)."""
    if hasattr(EKSBackend, "describe_update"):
        return
    EKSBackend.update_nodegroup_config = _update_nodegroup_config(EKSBackend.update_nodegroup_config)
    EKSBackend.describe_update = describe_update
    EKSResponse.describe_update = _describe_update
    urls.url_paths[UPDATE_PATH] = urls.response.dispatch


if __name__ == "__main__":
    from moto.server import main

    teach()
    main(sys.argv[1:])
