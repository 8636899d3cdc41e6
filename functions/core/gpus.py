"""Which GKE machine types can carry which GPUs, so a study asking for an impossible pair is
refused when it is submitted rather than when GKE refuses its node pool.

Compute Engine attaches GPUs to N1 machine types (not the shared-core ones) and to the
accelerator-optimized series, which come with one GPU model each: G2 with L4, A2 with A100,
A3 with H100 or H200, A4 with B200. Every other series takes none. An N1 machine type takes a
model's GPUs only in the counts it comes in, and only up to so many vCPUs beside each count
(:data:`N1_MOST_VCPUS`). Only what is known to be impossible is refused: a series katuna does not
know is left for GKE to judge.
"""

from __future__ import annotations

import re

N1_GPUS = ("nvidia-tesla-t4", "nvidia-tesla-v100", "nvidia-tesla-p100", "nvidia-tesla-p4")
"""The GPU models that attach to N1 machine types."""

BUILT_IN = {"g2-standard": "nvidia-l4", "a2-highgpu": "nvidia-tesla-a100", "a2-megagpu": "nvidia-tesla-a100",
            "a2-ultragpu": "nvidia-a100-80gb", "a3-highgpu": "nvidia-h100-80gb", "a3-edgegpu": "nvidia-h100-80gb",
            "a3-megagpu": "nvidia-h100-mega-80gb", "a3-ultragpu": "nvidia-h200-141gb", "a4-highgpu": "nvidia-b200"}
"""The GPU model each accelerator-optimized machine family comes with, by ``<series>-<family>``."""

N1_COUNTS = {"nvidia-tesla-t4": (1, 2, 4), "nvidia-tesla-p4": (1, 2, 4), "nvidia-tesla-p100": (1, 2, 4),
             "nvidia-tesla-v100": (1, 2, 4, 8)}
"""How many of each GPU model an N1 machine type takes at a time (Compute Engine's GPU machine
types page)."""
N1_MOST_VCPUS = {"nvidia-tesla-t4": {1: 48, 2: 48, 4: 96}, "nvidia-tesla-p4": {1: 24, 2: 48, 4: 96},
                 "nvidia-tesla-p100": {1: 16, 2: 32, 4: 96}, "nvidia-tesla-v100": {1: 12, 2: 24, 4: 48, 8: 96}}
"""The most vCPUs an N1 machine type may have beside each count of each model (Compute Engine's
GPU machine types page; it refuses an instance with more: "At most 12 vCPUs can be used along
with 1 accelerator cards in an instance"). Four P100s take 64 in some zones, 96 in others: 96."""
_N1_VCPUS = re.compile(r"n1-(?:standard|highmem|highcpu)-(\d+)|(?:n1-)?custom-(\d+)-\d+(?:-ext)?")
"""An N1 machine type that takes GPUs, predefined (``n1-standard-32``) or custom (``custom-24-92160``), and its vCPUs."""
G2_COUNTS = {"g2-standard-4": 1, "g2-standard-8": 1, "g2-standard-12": 1, "g2-standard-16": 1, "g2-standard-24": 2,
             "g2-standard-32": 1, "g2-standard-48": 4, "g2-standard-96": 8}
"""The L4 GPUs each G2 machine type comes with; an A-series type says its count in its name
(``a2-highgpu-4g``: 4)."""
_NAMED_COUNT = re.compile(r"a\d+-[a-z]+gpu-(\d+)g")

NO_GPUS = frozenset({"e2", "n2", "n2d", "n4", "n4d", "c2", "c2d", "c3", "c3d", "c4", "c4a", "c4d", "t2a", "t2d",
                     "m1", "m2", "m3", "m4", "h3", "z3", "f1", "g1"})
"""Machine series that take no GPU (``f1-micro`` and ``g1-small`` are N1's shared-core types)."""


def accelerator_problem(machine: str, accelerator: str) -> str | None:
    """Why a GKE node of ``machine`` cannot carry ``accelerator``; None when it can or when
    the machine series is one katuna does not know."""
    series = machine.split("-", 1)[0]
    family = "-".join(machine.split("-")[:2])
    if series in NO_GPUS:
        return (f"machine type {machine} takes no GPU: GPUs attach to n1 machine types ({', '.join(N1_GPUS)}), "
                "or come with the accelerator-optimized ones (g2: nvidia-l4, a2: nvidia-tesla-a100, "
                "a3: nvidia-h100-80gb)")
    if series == "n1" and accelerator not in N1_GPUS:
        return f"n1 machine types take {', '.join(N1_GPUS)}, not {accelerator}"
    if family in BUILT_IN and accelerator != BUILT_IN[family]:
        return f"machine type {machine} comes with {BUILT_IN[family]}, not {accelerator}"
    return None


def built_in_count(machine: str) -> int | None:
    """How many GPUs the accelerator-optimized ``machine`` comes with; None for another type, or
    one katuna does not know."""
    if "-".join(machine.split("-")[:2]) not in BUILT_IN:
        return None
    named = _NAMED_COUNT.fullmatch(machine)
    return int(named[1]) if named else G2_COUNTS.get(machine)


def n1_vcpus(machine: str) -> int | None:
    """The vCPUs of ``machine``, an N1 machine type that takes GPUs; None for another type."""
    found = _N1_VCPUS.fullmatch(machine)
    return None if found is None else int(found[1] or found[2])


def count_problem(machine: str, accelerator: str, count: int) -> str | None:
    """Why a GKE node of ``machine`` cannot carry ``count`` of ``accelerator`` (a model it takes):
    an accelerator-optimized type comes with its own number, an N1 type takes 1, 2, 4 (or 8) of
    a model, with no more vCPUs than :data:`N1_MOST_VCPUS` allows beside them; None when it can,
    or where katuna does not know."""
    expected = built_in_count(machine)
    if expected is not None and count != expected:
        return f"machine type {machine} comes with {expected} {accelerator}, not {count}"
    n1 = machine.startswith("n1-") or n1_vcpus(machine) is not None
    if n1 and count not in N1_COUNTS.get(accelerator, (count,)):
        takes = ", ".join(map(str, N1_COUNTS[accelerator]))
        return f"an n1 machine type takes {takes} of {accelerator} at a time, not {count}"
    return _vcpus_problem(machine, accelerator, count)


def _vcpus_problem(machine: str, accelerator: str, count: int) -> str | None:
    """Why an N1 ``machine`` has too many vCPUs for ``count`` of ``accelerator``, and the fewest
    of them that would take it; None when it has not, or is no N1 type that takes GPUs."""
    cpus, most = n1_vcpus(machine), N1_MOST_VCPUS.get(accelerator, {}).get(count)
    if cpus is None or most is None or cpus <= most:
        return None
    more = next((n for n, bound in sorted(N1_MOST_VCPUS[accelerator].items()) if n > count and bound >= cpus), None)
    expected = f"a machine type of at most {most} vCPUs" + (f", or {more} {accelerator}" if more else "")
    return (f"{count} {accelerator} attach to an n1 machine type of at most {most} vCPUs, not {machine}'s {cpus}: "
            f"expected {expected}")


A_COUNTS = {"a2-highgpu": (1, 2, 4, 8), "a2-megagpu": (16,), "a2-ultragpu": (1, 2, 4, 8), "a3-highgpu": (1, 2, 4, 8),
            "a3-edgegpu": (8,), "a3-megagpu": (8,), "a3-ultragpu": (8,), "a4-highgpu": (8,)}
"""The GPU counts the machine types of each A-series family come with (``a2-highgpu-2g``: 2)."""


def fitting_machine(machine: str, count: int) -> str | None:
    """The machine type of accelerator-optimized ``machine``'s family that comes with the fewest
    GPUs, at least ``count``, and how many (``a2-highgpu-2g: 2 nvidia-tesla-a100``); None where
    no type of the family has that many, or ``machine`` is of no such family."""
    family = "-".join(machine.split("-")[:2])
    if family not in BUILT_IN:
        return None
    types = G2_COUNTS if family == "g2-standard" else {f"{family}-{n}g": n for n in A_COUNTS.get(family, ())}
    found = next(((name, n) for name, n in sorted(types.items(), key=lambda item: item[1]) if n >= count), None)
    return None if found is None else f"{found[0]}: {found[1]} {BUILT_IN[family]}"


def n1_attached(count: int) -> str | None:
    """The fewest GPUs, at least ``count``, that attach to an n1 machine type in a count it
    takes, of the N1 model that needs the fewest (``4 nvidia-tesla-t4``); None where none does."""
    found = n1_fit(count)
    return None if found is None else f"{found[0]} {found[1]}"


def n1_fit(count: int, model: str | None = None, cpus: int | None = None) -> tuple[int, str] | None:
    """The fewest GPUs, at least ``count``, that attach to an n1 machine type of ``cpus`` vCPUs
    (of any, where None) in a count it takes beside them (:data:`N1_COUNTS`,
    :data:`N1_MOST_VCPUS`: 1 T4 beside at most 48 vCPUs, so ``n1-standard-64`` takes 4), and their
    model: ``model`` where it is given and attaches so many, else the N1 model that needs the
    fewest; None where none does."""
    def fewest(each: str) -> int | None:
        bounds = N1_MOST_VCPUS[each]
        return min((n for n in N1_COUNTS[each] if n >= count and (cpus is None or bounds[n] >= cpus)), default=None)
    found = [(n, each) for each in N1_COUNTS if (n := fewest(each)) is not None]
    given = [(n, each) for n, each in found if each == model]
    ranked = given or sorted(found, key=lambda pair: pair[0])
    return ranked[0] if ranked else None


def gpu_machines(count: int) -> str:
    """Where ``count`` GPUs in one GKE node come from, as a refusal's expected words: an n1
    machine type with accelerators (:func:`n1_attached`), and the accelerator-optimized machine
    type with the fewest GPUs that are enough."""
    attached = n1_attached(count)
    built_in = fitting_machine("g2-standard-4", count) or fitting_machine("a2-megagpu-16g", count)
    ways = [f"an n1 machine type with accelerators ({attached}, say)" if attached else "",
            f"an accelerator-optimized machine type that comes with them ({built_in})" if built_in else ""]
    return " or ".join(way for way in ways if way) or \
        f"a machine type with {count} GPUs, which GKE has none of (a2-megagpu-16g has the most: 16)"


def node_gpus(machine: str, accelerators: tuple[tuple[str, int], ...]) -> int | None:
    """How many GPUs a GKE node of ``machine`` with ``accelerators`` offers its pods: their
    counts together, else those an accelerator-optimized type comes with, else none for a type
    that takes no GPU without them (N1's, the series of :data:`NO_GPUS`); None where katuna does
    not know."""
    if accelerators:
        return sum(count for _, count in accelerators)
    built_in = built_in_count(machine)
    if built_in is not None:
        return built_in
    return 0 if machine.split("-", 1)[0] in NO_GPUS | {"n1"} else None
