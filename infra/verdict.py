"""What ``ensure`` would do with a pool, decided from reads alone (:class:`Verdict`): the one
judgement the adapters' ``ensure`` acts on and the provisioning script's ``--dry-run`` tells,
so that the plan printed is the change ``up`` then asks for, refused in the same words."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from functions.core.nodepool import PoolChange


@dataclass(frozen=True)
class Verdict:
    """``whose``: the pool's owner as :meth:`ensure` tells it, with the operation to wait for
    when the pool is found still being created (a token of the adapter's own). ``call`` and
    ``request``: the change it asks for (a create, a raised maximum, an EKS group's missing
    autoscaler tags), None when there is nothing to change; ``first``: a call sent before it
    (the launch template of an EKS group to create, unless it exists)."""

    whose: PoolChange
    call: str | None = None
    request: dict[str, Any] | None = None
    first: tuple[str, dict[str, Any]] | None = None
