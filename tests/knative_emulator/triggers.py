"""The Triggers of a Broker in ``knative/``: each one's filter, subscriber address, delivery and
dead-letter sink, with refs resolved to loopback addresses."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .delivery import Delivery
from .filters import Filter, trigger_filter

CLASS_ANNOTATION = "eventing.knative.dev/broker.class"
EMULATED_CLASS = "MTChannelBasedBroker"
"""The broker class emulated (:mod:`.broker`); one without the annotation gets the cluster's
default, Knative's own default being this one (config-br-defaults)."""


@dataclass(frozen=True)
class Trigger:
    name: str
    check: Filter
    subscriber: str
    delivery: Delivery
    dead_letter: str | None


@dataclass
class Attempt:
    """One POST to a subscriber or a dead-letter sink, as the emulator records it."""

    trigger: str
    event_type: str
    event_id: str
    url: str
    status: int | None
    at: float = field(default_factory=time.monotonic)


class Addresses:
    """Where a Destination points: a ``ref``, looked up by ``apiVersion/kind/name``, with a relative
    ``uri`` resolved against its address; or an absolute ``uri`` alone. What Knative's webhook
    refuses (knative.dev/pkg duck/v1 ``ValidateDestination``) is refused: neither, an absolute
    ``uri`` beside a ``ref``, a relative one (or one without a host) alone."""

    def __init__(self, refs: Mapping[str, str]) -> None:
        self.refs = dict(refs)

    def resolve(self, destination: Mapping[str, Any], where: str) -> str:
        ref, uri = destination.get("ref"), destination.get("uri", "")
        absolute = urllib.parse.urlsplit(uri)
        if ref is None:
            if not (absolute.scheme and absolute.netloc):
                raise ValueError(f"{where}: a destination without ref needs an absolute uri with a host, got {uri!r}")
            return uri
        if absolute.scheme:
            raise ValueError(f"{where}: an absolute uri ({uri!r}) is not allowed beside a ref")
        key = f"{ref['apiVersion']}/{ref['kind']}/{ref['name']}"
        if key not in self.refs:
            raise ValueError(f"{where}: no address for {key} (known: {sorted(self.refs)})")
        return urllib.parse.urljoin(self.refs[key], uri)


def load_triggers(manifests: Path | Sequence[Mapping[str, Any]], broker_name: str,
                  addresses: Addresses) -> list[Trigger]:
    """The Triggers of ``broker_name`` in ``manifests`` (a folder of manifests, or the objects a
    kustomization renders). The Broker's delivery is the default of a Trigger that has none (the
    Trigger reconciler gives its Subscription the Broker's), and its dead-letter sink that of a
    Trigger whose delivery names none (the Subscription reconciler falls back to the Broker's
    channel's: ``resolveDeadLetterSink``); retries and back-off are never mixed."""
    docs = manifests if not isinstance(manifests, Path) else [
        doc for path in sorted(manifests.glob("*.yaml"))
        for doc in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader) if doc]
    brokers = [d for d in docs if d.get("kind") == "Broker" and d["metadata"]["name"] == broker_name]
    if len(brokers) != 1:
        raise ValueError(f"expected one Broker named {broker_name!r} in the manifests")
    broker_class = (brokers[0]["metadata"].get("annotations") or {}).get(CLASS_ANNOTATION, EMULATED_CLASS)
    if broker_class != EMULATED_CLASS:
        raise ValueError(f"Broker {broker_name}: {CLASS_ANNOTATION} {broker_class!r} is not emulated: only "
                         f"{EMULATED_CLASS}, Knative's default class")
    default = brokers[0].get("spec", {}).get("delivery")
    triggers = []
    for doc in (d for d in docs if d.get("kind") == "Trigger" and d["spec"]["broker"] == broker_name):
        name, spec = doc["metadata"]["name"], doc["spec"]
        delivery = Delivery.from_spec(spec.get("delivery") or default)
        sink = delivery.dead_letter or (default or {}).get("deadLetterSink")
        triggers.append(Trigger(name, trigger_filter(spec), addresses.resolve(spec["subscriber"], name), delivery,
                                None if sink is None else addresses.resolve(sink, f"{name} deadLetterSink")))
    return triggers
