"""What a module's moto tests start from, made once and given to each test afresh.

Making a test's AWS world through boto3 and moto (a VPC and its subnets, an IAM role, an EKS
cluster: :func:`moto_cluster.make_cluster`) cost each test about 0.15 CPU-s, most of an
in-process EKS test's set-up, for the same world every time. A :class:`Baseline` makes it once,
in a mock of its own, and keeps moto's backends (every service's, every account's and
region's) as pickled bytes. :meth:`Baseline.restored` is a test's own ``mock_aws`` as before
(moto's patching, credentials and default boto3 session started and stopped with the test,
its backends emptied at each start and stop), into which the backends are loaded from those
bytes: objects made anew for each test, so nothing one test writes, even in place (a subnet's
attribute, a cluster's tags, a quota kept on a backend), is there for the next
(tests/test_moto_world.py).
"""

from __future__ import annotations

import io
import pickle  # noqa: S403  (bytes this process wrote itself, never read from elsewhere)
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from moto import mock_aws
from moto.core.base_backend import AccountSpecificBackend, BackendDict

T = TypeVar("T")


class _Pickler(pickle.Pickler):
    """Refuses what refers to moto's registry of backends: that is emptied at each mock's start,
    so a copy would be of a registry no call reaches."""

    def persistent_id(self, obj: Any) -> None:
        if isinstance(obj, (BackendDict, AccountSpecificBackend)):
            raise TypeError(f"a moto backend refers to moto's registry ({type(obj).__name__}): it cannot be copied")
        return None


def _backends() -> list[BackendDict]:
    """Every service's backends moto has made in this mock."""
    return list(BackendDict._instances)


class Baseline(Generic[T]):
    """The world ``make`` makes in moto (its answer kept as :attr:`made`), for tests to start from."""

    def __init__(self, make: Callable[[], T]) -> None:
        with mock_aws():
            self.made = make()
            self._services = _backends()
            kept = io.BytesIO()
            _Pickler(kept, pickle.HIGHEST_PROTOCOL).dump(
                [{account: dict(regions) for account, regions in service.items()} for service in self._services])
            self._kept = kept.getvalue()

    @contextmanager
    def restored(self) -> Iterator[T]:
        """A mock of moto in which the world is as ``make`` left it (and :attr:`made`)."""
        with mock_aws():
            copies = pickle.loads(self._kept)  # noqa: S301  (written by __init__ above)
            for service, accounts in zip(self._services, copies, strict=True):
                for account, regions in accounts.items():
                    service[account].update(regions)
            yield self.made
